"""The engine's own PostgreSQL connections (db/base.py: PgConnections): kept between statements, replaced when
the server ended them, never shared with a forked child, and usable again after a transaction that failed."""

from __future__ import annotations

import multiprocessing
import uuid

import psycopg
import pytest

from agentops.db import base, close_stores, open_store


@pytest.fixture
def pg_store(pg_server):  # type: ignore[no-untyped-def]
    name = f"t_{uuid.uuid4().hex[:12]}"
    store = open_store(pg_server.create_database(name))
    yield store, name
    close_stores()


def _backends(pg_server, name: str) -> list[int]:  # type: ignore[no-untyped-def]
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as admin:
        return [r[0] for r in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]


def test_a_connection_the_server_ended_is_replaced_when_checked_out_after_idling(pg_server, pg_store,
                                                                                 monkeypatch) -> None:
    store, name = pg_store
    assert store.get_run("nope") is None
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as admin:
        ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                              (name,)).fetchone()
    assert ended is not None and ended[0] >= 1
    monkeypatch.setattr(base, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert store.get_run("nope") is None  # the ping found it gone; a new connection answered
    assert store.runnable_run_ids() == []


def test_a_failed_transaction_is_rolled_back_and_its_connection_serves_the_next(pg_store) -> None:
    store, _ = pg_store
    with pytest.raises(RuntimeError), store._write_sql() as tx:
        tx.execute("INSERT INTO task_cache (key, value, created_at) VALUES ('k', 'v', 1)")
        raise RuntimeError("after the insert")
    with pytest.raises(psycopg.errors.UniqueViolation), store._write_sql() as tx:
        tx.execute("INSERT INTO task_cache (key, value, created_at) VALUES ('k2', 'v', 1)")
        tx.execute("INSERT INTO task_cache (key, value, created_at) VALUES ('k2', 'v', 1)")
    assert store.cache_get("k", 2) is None and store.cache_get("k2", 2) is None
    store.cache_put("k", "v", 1, None)
    assert store.cache_get("k", 2) == "v"


def _child_reads(store) -> None:  # type: ignore[no-untyped-def]
    assert store.get_run("nope") is None


def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(pg_server, pg_store) -> None:
    store, name = pg_store
    assert store.get_run("nope") is None
    before = set(_backends(pg_server, name))
    child = multiprocessing.get_context("fork").Process(target=_child_reads, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert store.get_run("nope") is None  # the parent's kept connection still works: the child never used it
    assert before <= set(_backends(pg_server, name))

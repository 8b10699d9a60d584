"""Schedules and the scheduler: fire times in a timezone, exactly-once runs, catch-up, leases and takeover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agentops.core.ledger import verify_rows
from agentops.engine.worker import Worker
from agentops.errors import NotFoundError, ParameterError, PermissionDenied, ScheduleError, UnknownFlowError
from agentops.governance.users import add_user
from agentops.scheduling import schedules
from agentops.scheduling.scheduler import LEASE_NAME, Scheduler
from agentops.scheduling.schedules import Cadence

FLOW = '''
from agentops import flow


@flow
def report(region: str = "all") -> str:
    return f"report for {region}"
'''

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def sched_project(project: Path, store) -> Path:  # type: ignore[no-untyped-def]
    (project / "flows" / "report.py").write_text(FLOW)
    from agentops.engine.project import load_project

    load_project()
    add_user(store, "olga", "operator", "olga-operates")
    add_user(store, "vic", "viewer", "vic-views-it")
    return project


def berlin(*parts: int) -> float:
    return datetime(*parts, tzinfo=BERLIN).timestamp()  # type: ignore[misc]


def test_cron_fires_at_local_time_across_daylight_saving() -> None:
    weekdays_at_nine = Cadence("0 9 * * 1-5", None, "Europe/Berlin", anchor=0.0)
    friday_before_dst = berlin(2026, 3, 27, 9, 0)
    monday_after_dst = weekdays_at_nine.next_after(friday_before_dst)
    assert monday_after_dst == berlin(2026, 3, 30, 9, 0)
    assert monday_after_dst - friday_before_dst == 3 * 86400 - 3600, "the weekend lost an hour to DST"
    assert datetime.fromtimestamp(monday_after_dst, ZoneInfo("UTC")).hour == 7


def test_interval_fires_on_its_anchor_grid() -> None:
    every_minute = Cadence(None, 60.0, "UTC", anchor=1000.0)
    assert every_minute.first_fire() == 1000.0
    assert every_minute.next_after(1000.0) == 1060.0
    assert every_minute.next_after(1059.9) == 1060.0
    assert list(every_minute.fires_between(1000.0, 1200.0)) == [1000.0, 1060.0, 1120.0, 1180.0]
    assert list(every_minute.fires_between(1000.0, 10**9, limit=2))[-1] <= 10**9


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"cron": "61 * * * *"}, ScheduleError, "not a cron expression"),
    ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, ScheduleError, "unknown timezone"),
    ({"interval_seconds": 0.5}, ScheduleError, "at least 1 s"),
    ({}, ScheduleError, "exactly one of"),
    ({"cron": "0 9 * * *", "interval_seconds": 60.0}, ScheduleError, "exactly one of"),
    ({"interval_seconds": 60.0, "catchup": "all"}, ScheduleError, "skip, once"),
    ({"interval_seconds": 60.0, "parameters": {"bogus": 1}}, ParameterError, "unknown parameter 'bogus'"),
])
def test_bad_schedules_are_refused_and_leave_no_row(sched_project: Path, store, kwargs, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        schedules.add_schedule("report", user="olga", **kwargs)
    with pytest.raises(UnknownFlowError):
        schedules.add_schedule("no_such_flow", interval_seconds=60.0, user="olga")
    assert store.list_schedules() == []


def test_only_operators_manage_schedules(sched_project: Path, store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied, match="role 'viewer'"):
        schedules.add_schedule("report", interval_seconds=60.0, user="vic")
    sid = schedules.add_schedule("report", interval_seconds=60.0, user="olga")
    with pytest.raises(PermissionDenied):
        schedules.pause_schedule(sid, user="vic")
    with pytest.raises(NotFoundError):
        schedules.delete_schedule(sid + 100, user="olga")
    actions = [e.action for e in store.search_ledger(limit=50)]
    assert "schedule.created" in actions


def test_each_due_run_is_created_once_across_ticks_restarts_and_rivals(sched_project: Path, store) -> None:  # type: ignore[no-untyped-def]
    sid = schedules.add_schedule("report", interval_seconds=60.0, parameters={"region": "north"}, user="olga")
    anchor = store.get_schedule(sid).next_fire_at
    first = Scheduler(store, "first", lease_ttl=120.0)
    created = first.tick(now=anchor + 0.2)
    assert len(created) == 1 and first.tick(now=anchor + 0.3) == []
    rival = Scheduler(store, "rival", lease_ttl=120.0)
    assert rival.tick(now=anchor + 60.5) == [] and not rival.active, "the lease is held by the first scheduler"
    restarted = Scheduler(store, "first", lease_ttl=120.0)
    assert len(restarted.tick(now=anchor + 60.5)) == 1
    runs = store.runs_for_schedule(sid, limit=10)
    assert sorted(r.scheduled_for for r in runs) == [anchor, anchor + 60.0]
    assert {r.trigger for r in runs} == {"schedule"} and all('"north"' in r.parameters for r in runs)
    assert Worker(store, poll_seconds=0.01).run(burst=True) == 2
    assert {store.get_run(r.id).state for r in runs} == {"COMPLETED"}
    assert verify_rows(store.iter_ledger()).ok


def test_a_replayed_plan_creates_nothing(sched_project: Path, store) -> None:  # type: ignore[no-untyped-def]
    sid = schedules.add_schedule("report", interval_seconds=60.0, user="olga")
    schedule = store.get_schedule(sid)
    scheduler = Scheduler(store, "s")
    plan = scheduler.plan(schedule, schedule.next_fire_at + 1)
    assert store.fire_schedules([plan]) == [sid]
    assert store.fire_schedules([plan]) == [], "compare-and-set on next_fire_at refuses the second fire"
    assert len(store.runs_for_schedule(sid)) == 1


@pytest.mark.parametrize(("catchup", "expected_runs"), [("skip", 0), ("once", 1)])
def test_missed_fire_times_follow_the_catch_up_policy(sched_project: Path, store, catchup, expected_runs) -> None:  # type: ignore[no-untyped-def]
    sid = schedules.add_schedule("report", interval_seconds=60.0, catchup=catchup, user="olga")
    anchor = store.get_schedule(sid).next_fire_at
    down_until = anchor + 600 + 45
    created = Scheduler(store, "s", misfire_grace=30.0).tick(now=down_until)
    assert len(created) == expected_runs
    if expected_runs:
        assert store.runs_for_schedule(sid)[0].scheduled_for == anchor + 600
    assert store.get_schedule(sid).next_fire_at == anchor + 660
    fired = [e for e in store.search_ledger(action="schedule.fired", limit=5)]
    assert fired[0].payload and '"missed":' in fired[0].payload


def test_paused_schedules_do_not_fire_and_resume_from_now(sched_project: Path, store) -> None:  # type: ignore[no-untyped-def]
    sid = schedules.add_schedule("report", interval_seconds=3600.0, user="olga")
    schedules.pause_schedule(sid, user="olga")
    assert Scheduler(store, "s").tick(now=time.time() + 7200) == []
    schedules.resume_schedule(sid, user="olga")
    resumed = store.get_schedule(sid)
    assert not resumed.paused and time.time() < resumed.next_fire_at <= time.time() + 3600


def test_a_schedule_whose_flow_vanished_is_recorded_and_advanced(sched_project: Path, store) -> None:  # type: ignore[no-untyped-def]
    sid = schedules.add_schedule("report", interval_seconds=60.0, user="olga")
    store.update_schedule(sid, {"flow_name": "retired_flow"}, [])
    anchor = store.get_schedule(sid).next_fire_at
    assert Scheduler(store, "s").tick(now=anchor + 1) == []
    assert store.get_schedule(sid).next_fire_at == anchor + 60
    failed = store.search_ledger(action="schedule.failed", limit=5)
    assert failed and "unknown flow 'retired_flow'" in failed[0].payload


def _agentops(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "agentops.cli", *args], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_standby_scheduler_takes_over_when_the_active_one_is_killed(sqlite_project: Path) -> None:
    (sqlite_project / "flows" / "report.py").write_text(FLOW)
    from agentops.db import open_store
    from agentops.engine.project import load_project

    load_project()
    store = open_store()
    add_user(store, "olga", "operator", "olga-operates")
    sid = schedules.add_schedule("report", interval_seconds=1.0, user="olga")
    started = [_agentops("scheduler", "--tick", "0.1", "--lease-ttl", "1.5")]
    try:
        _wait_for(lambda: store.lease_holder(LEASE_NAME, time.time()) is not None)
        active = store.lease_holder(LEASE_NAME, time.time())
        started.append(_agentops("scheduler", "--tick", "0.1", "--lease-ttl", "1.5"))
        _wait_for(lambda: len(store.runs_for_schedule(sid, limit=100)) >= 2)
        os.kill(started[0].pid, signal.SIGKILL)
        started[0].wait(10)
        killed_at = time.time()
        _wait_for(lambda: store.lease_holder(LEASE_NAME, time.time()) not in (None, active))
        _wait_for(lambda: any(r.scheduled_for > killed_at + 1.5 for r in store.runs_for_schedule(sid, limit=100)))
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
    fire_times = [r.scheduled_for for r in store.runs_for_schedule(sid, limit=1000)]
    assert len(fire_times) == len(set(fire_times)), "no fire time was run twice"
    assert all(abs(t - round(t - fire_times[0]) - fire_times[0]) < 1e-6 for t in fire_times), "on the 1 s grid"


def test_a_schedule_rewound_onto_an_existing_run_advances_without_blocking_others(sched_project: Path, store) -> None:  # type: ignore[no-untyped-def]
    rewound = schedules.add_schedule("report", interval_seconds=60.0, user="olga")
    anchor = store.get_schedule(rewound).next_fire_at
    scheduler = Scheduler(store, "s")
    assert len(scheduler.tick(now=anchor + 1)) == 1
    other = schedules.add_schedule("report", interval_seconds=60.0, user="olga")
    store.update_schedule(rewound, {"next_fire_at": anchor}, [])
    store.update_schedule(other, {"created_at": anchor, "next_fire_at": anchor}, [])
    created = scheduler.tick(now=anchor + 2)
    assert [store.get_run(r).schedule_id for r in created] == [other]
    assert len(store.runs_for_schedule(rewound)) == 1
    assert store.get_schedule(rewound).next_fire_at == anchor + 60

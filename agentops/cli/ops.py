"""CLI commands for schedules and the scheduler."""

from __future__ import annotations

import signal
import threading
import typing
from typing import Annotated

import typer

from agentops import service
from agentops.cli.support import AsUser, JsonOpt, Listing, console, emit_json, fmt_time, one_line_json, parse_params
from agentops.engine.project import load_project
from agentops.engine.registry import find_flow
from agentops.service import schedules

schedules_app = typer.Typer(help="Cron and interval schedules.", no_args_is_help=True)



@schedules_app.command("add")
def schedules_add(
    flow_name: Annotated[str, typer.Argument(metavar="FLOW")],
    cron: Annotated[str | None, typer.Option("--cron", help='e.g. "0 9 * * 1-5"')] = None,
    interval: Annotated[float | None, typer.Option("--interval", help="Seconds between runs.")] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA timezone the cron is read in.")] = "UTC",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=value")] = None,
    catchup: Annotated[str, typer.Option("--catchup", help="Missed fire times: skip, or run once.")] = "skip",
    user: AsUser = None,
) -> None:
    """Add a schedule for FLOW."""
    hints = typing.get_type_hints(find_flow(flow_name).fn)
    schedule_id = schedules.add_schedule(flow_name, cron=cron, interval_seconds=interval, timezone=tz,
                                         parameters=parse_params(param, hints), catchup=catchup, user=user)
    created = schedules.get_schedule(schedule_id)
    console.print(f"schedule {schedule_id}: {flow_name}, {schedules.Cadence.of(created).describe()}, "
                     f"next at {fmt_time(created.next_fire_at, created.timezone)}", highlight=False)


@schedules_app.command("list")
def schedules_list(as_json: JsonOpt = False) -> None:
    """List schedules with their next fire time."""
    rows = [schedules.describe(s) for s in schedules.list_schedules()]
    if as_json:
        emit_json(rows)
        return
    grid = Listing("id", "flow", "when", "parameters", "catch-up", "next fire", "last fire", "state")
    for r in rows:
        shown = one_line_json(schedules.set_parameters(r["flow"], r["parameters"]))
        grid.add_row(str(r["id"]), r["flow"], r["when"], shown, r["catchup"],
                     fmt_time(r["next_fire_at"], r["timezone"]), fmt_time(r["last_fire_at"], r["timezone"]),
                     "paused" if r["paused"] else "active")
    grid.print()


@schedules_app.command("pause")
def schedules_pause(schedule_id: int, user: AsUser = None) -> None:
    """Stop firing until resumed."""
    schedules.pause_schedule(schedule_id, user=user)
    console.print(f"schedule {schedule_id} paused")


@schedules_app.command("resume")
def schedules_resume(schedule_id: int, user: AsUser = None) -> None:
    """Fire again, from now on (fire times missed while paused are skipped)."""
    schedules.resume_schedule(schedule_id, user=user)
    resumed = schedules.get_schedule(schedule_id)
    console.print(f"schedule {schedule_id} resumed; next at {fmt_time(resumed.next_fire_at, resumed.timezone)}",
                  highlight=False)


@schedules_app.command("delete")
def schedules_delete(schedule_id: int, user: AsUser = None) -> None:
    """Delete a schedule (its past runs stay)."""
    schedules.delete_schedule(schedule_id, user=user)
    console.print(f"schedule {schedule_id} deleted")


def scheduler(
    tick: Annotated[float, typer.Option("--tick", help="Seconds between passes.")] = 0.25,
    lease_ttl: Annotated[float, typer.Option("--lease-ttl", help="A standby takes over this long after "
                                                               "the active scheduler stops.")] = 10.0,
) -> None:
    """Run the scheduler (one is active under a database lease; others stand by)."""
    load_project()
    instance = service.new_scheduler(tick_seconds=tick, lease_ttl=lease_ttl)
    console.print(f"scheduler {instance.holder} started")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    try:
        instance.run(stop)
    except KeyboardInterrupt:
        stop.set()
    console.print(f"scheduler {instance.holder} stopped")


def register(app: typer.Typer) -> None:
    app.add_typer(schedules_app, name="schedules")
    app.command("scheduler")(scheduler)

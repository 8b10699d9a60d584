"""The `agentops` command line (typer). Errors print one line and exit with code 2."""

from __future__ import annotations

import os
import sys
import threading
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from agentops import service
from agentops.cli import api as cli_api
from agentops.cli import demo as demo_mod
from agentops.cli import demo_prometheus as demo_prom
from agentops.cli import governance as cli_governance
from agentops.cli import ops as cli_ops
from agentops.cli.mcp import mcp_app
from agentops.cli.serve import Services, require_free_port, start_app
from agentops.cli.support import (
    AsUser,
    JsonOpt,
    Listing,
    console,
    emit_json,
    fmt_duration,
    fmt_time,
    parse_params,
    styled_state,
)
from agentops.core.redaction import default_redactor
from agentops.core.terminal import visible
from agentops.engine.project import project_root
from agentops.errors import AgentOpsError, ConfigError
from agentops.service.setup import checkpoint_line, init_project, lay_demo_database
from agentops.settings import reset_settings

app = typer.Typer(help="agentops: durable flows, governed LLM agents, approvals and an audit ledger.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
runs_app = typer.Typer(help="Inspect and control runs.", no_args_is_help=True)
flows_app = typer.Typer(help="The project's flows.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(flows_app, name="flows")


@app.callback()
def _global(project: Annotated[Path | None, typer.Option("--project", help="Project root directory.")] = None) -> None:
    if project is not None:
        if not project.is_dir():
            raise ConfigError(f"--project '{project}' is not a directory")
        os.environ["AGENTOPS_PROJECT_DIR"] = str(project.resolve())
        reset_settings()


@app.command()
def init() -> None:
    """Create or migrate the database and seed the embedded backends. Running it again changes nothing."""
    for line in init_project():
        console.print(line)


@app.command()
def run(
    flow: Annotated[str, typer.Argument(help="Flow name (see `agentops flows list`).")],
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help="key=value; repeatable.")] = None,
    queue: Annotated[bool, typer.Option("--queue", help="Queue for a worker instead of running now.")] = False,
    user: AsUser = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a flow now (or queue it for a worker)."""
    target = service.find_flow(flow)
    params = parse_params(param, typing.get_type_hints(target.fn))
    run_id = service.start_run(flow, params, user=user, queue=queue)
    if queue:
        emit_json({"run_id": run_id, "state": "PENDING"}) if as_json else console.print(
            f"queued run [bold]{run_id}[/bold] of flow {flow}")
        return
    outcome = _with_progress(run_id, lambda: service.execute_here(run_id), quiet=as_json)
    if as_json:
        described = service.run_outcome(run_id)
        emit_json({"run_id": run_id, "state": outcome.state, "result": outcome.result, "error": outcome.error,
                   "outcome": described.words, "note": described.note})
    else:
        _print_run(run_id)
    if outcome.state == "FAILED":
        raise typer.Exit(1)


def _with_progress(run_id: str, work: Any, *, quiet: bool) -> Any:
    """Execute `work` while a live display shows the run's steps as they complete (on a terminal)."""
    if quiet or not sys.stdout.isatty():
        return work()
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("outcome", work()), daemon=True)
    with console.status(f"running {run_id[:12]}…") as status:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            steps = service.run_steps(run_id)
            if steps:
                last = steps[-1]
                status.update(f"run {run_id[:12]}: {len(steps)} steps, last: {last.name} {last.state}")
    return result["outcome"]


def _print_run(run_id: str) -> None:
    run = service.get_run(run_id)
    steps = service.run_steps(run.id)
    logs = service.run_logs(run.id)
    outcome = service.run_outcome(run.id)
    note = f"  [yellow]with {outcome.note}[/yellow]" if outcome.note else ""
    console.print(f"run [bold]{run.id}[/bold]  flow [bold]{run.flow_name}[/bold]  {styled_state(run.state)}{note}"
                  f"  trigger {run.trigger}  created {fmt_time(run.created_at)}")
    if run.error:
        console.print(f"[red]error:[/red] {run.error}")
    if steps:
        grid = Listing("step", "task", "kind", "state", "attempts", "duration", "output / error", markup=True)
        for step in steps:
            shown = step.error or step.output or ""
            grid.add_row(str(step.step_no), step.name, step.kind, styled_state(step.state), str(step.attempts),
                         fmt_duration(step.duration_ms), escape(shown[:80]))
        grid.print()
        for step in steps:
            meta = service.views.step_facts(step)["meta"] if step.kind == "model" else {}
            if isinstance(meta, dict) and meta.get("fallback"):
                why = meta.get("fallback_reason") or "the configured model was unreachable"
                console.print(f"[yellow]fallback:[/yellow] step {step.step_no} was answered by the "
                              f"{escape(str(meta['fallback']))} model; {escape(str(why))}", highlight=False)
    for waiting in outcome.waiting:
        console.print(f"[magenta]awaiting[/magenta] {waiting.words}", highlight=False)
    if logs:
        console.print("[bold]logs[/bold]")
        for line in logs[-50:]:
            where = f"step {line.step_no}" if line.step_no else "run"
            console.print(f"  {fmt_time(line.ts)} {line.level:<7} {where}: {line.message}", markup=False)
    if run.result is not None and run.state == "COMPLETED":
        console.print(f"result: {run.result[:500]}", markup=False)
    console.print(f"outcome: {outcome.words}", markup=False)


@runs_app.command("list")
def runs_list(
    state: Annotated[str | None, typer.Option("--state")] = None,
    flow: Annotated[str | None, typer.Option("--flow")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs, newest first."""
    runs = service.list_runs(state=state, flow=flow, limit=limit)
    notes = service.run_notes(runs)
    if as_json:
        emit_json([{**service.run_document(r), "note": notes[r.id]} for r in runs])
        return
    grid = Listing("run", "flow", "state", "trigger", "by", "created", "duration", markup=True)
    for r in runs:
        state_cell = styled_state(r.state) + (f"\n[yellow]{escape(notes[r.id])}[/yellow]" if notes[r.id] else "")
        grid.add_row(r.id, escape(r.flow_name), state_cell, r.trigger, escape(r.created_by or "-"),
                     fmt_time(r.created_at), service.formatting.run_duration(r) or "-")
    grid.print()


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonOpt = False) -> None:
    """Show a run: its steps, states, attempts, durations, logs and state history."""
    if as_json:
        emit_json(service.run_detail_document(run_id))
        return
    _print_run(service.resolve_run_id(run_id))


@runs_app.command("resume")
def runs_resume(run_id: str, user: AsUser = None,
                queue: Annotated[bool, typer.Option("--queue", help="Queue it for a worker (sent to the broker "
                                                    "when AGENTOPS_BROKER_URL is set) instead of running it here.")]
                = False) -> None:
    """Resume a run now, in this process: completed steps are replayed from their records."""
    if queue:
        console.print(f"queued run [bold]{service.requeue(run_id, user=user)}[/bold] again")
        return
    outcome = service.resume(run_id, user=user)
    _print_run(outcome.run_id)


@runs_app.command("cancel")
def runs_cancel(run_id: str, user: AsUser = None) -> None:
    """Cancel a run that has not finished."""
    service.cancel(run_id, user=user)
    console.print(f"cancelled run {run_id}")


@flows_app.command("list")
def flows_list(as_json: JsonOpt = False) -> None:
    """List the flows found under flows/."""
    flows = service.list_flows()
    if as_json:
        emit_json([{"name": f.name, "description": f.description, "parameters": f.parameter_schema()}
                   for f in flows])
        return
    grid = Listing("flow", "parameters", "description")
    for f in flows:
        props = f.parameter_schema().get("properties", {})
        grid.add_row(f.name, ", ".join(props), (f.description.splitlines() or [""])[0])
    grid.print()


@app.command()
def worker(
    burst: Annotated[bool, typer.Option("--burst", help="Drain the queue, then exit.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c")] = 4,
    celery: Annotated[bool, typer.Option("--celery", help="Take runs from AGENTOPS_BROKER_URL's queue (Celery, "
                                         "-c processes) instead of polling the database.")] = False,
    queues: Annotated[list[str] | None, typer.Option("--queue", "-Q", help="A queue to take runs from (repeatable). "
                                                     "Celery default: AGENTOPS_BROKER_QUEUE; polling default: "
                                                     "every queue.")] = None,
) -> None:
    """Claim and execute queued runs; recover runs whose worker died."""
    service.project_path()
    if celery:
        if burst:
            raise AgentOpsError("--burst is for the polling worker; a Celery worker runs until it is stopped")
        service.run_celery_worker(concurrency=concurrency, queues=queues)
        return
    w = service.new_worker(concurrency=concurrency, queues=service.queue_names(queues),
                           on_outcome=lambda o: console.print(f"run {o.run_id} {styled_state(o.state)}"))
    only = f" on queues {', '.join(w.queues.names)}" if w.queues else ""
    console.print(f"worker {w.id} started{only}{' (burst)' if burst else ''}")
    try:
        count = w.run(burst=burst)
    except KeyboardInterrupt:
        w.stop()
        count = w.executed
    console.print(f"worker {w.id} stopped after {count} runs")


@app.command()
def chat(
    message: Annotated[str, typer.Argument(help='e.g. "web-app is at 95% CPU, handle it"')],
    user: AsUser = None,
    conversation: Annotated[str | None, typer.Option("--conversation", help="Continue a conversation.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the dispatcher agent to start the right flow; follow its progress and pending approvals."""
    reply = service.chat_send(message, user=user, conversation_id=conversation)
    followed = [service.run_outcome(reply.dispatch_run_id)] if reply.waiting else []
    for started in reply.started_runs:
        _with_progress(started["run_id"], lambda rid=started["run_id"]: service.follow_run(rid), quiet=as_json)
        followed.append(service.run_outcome(started["run_id"]))
    if as_json:
        emit_json({"conversation_id": reply.conversation_id, "answer": reply.answer, "model": reply.model,
                   "runs": [{"run_id": o.run_id, "flow": o.flow, "state": o.state, "outcome": o.words,
                             "approvals": [asdict(w) for w in o.waiting]} for o in followed]})
        return
    console.print("[bold]agent[/bold]" + (f" [dim]({reply.model})[/dim]" if reply.model else "") + ":", end=" ")
    console.print(reply.answer, markup=False)
    for item in followed:
        console.print(f"run {item.run_id} {item.flow}: {item.words}", markup=False)
        for waiting in item.waiting:
            console.print(f"  decide: agentops approvals approve {waiting.id} --as APPROVER  (or in the app's inbox)",
                          markup=False)
    console.print(f"[dim]conversation {reply.conversation_id}[/dim]")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8501,
    no_app: Annotated[bool, typer.Option("--no-app", help="Only the scheduler and a worker.")] = False,
    api_port: Annotated[int | None, typer.Option("--api-port", min=1, max=65535,
                                                 help="Also serve the HTTP API on this port.")] = None,
    celery_worker: Annotated[bool, typer.Option("--worker", help="With AGENTOPS_BROKER_URL: also run a Celery "
                                                "worker (a child process). Without a broker a polling worker "
                                                "always runs.")] = False,
    worker_concurrency: Annotated[int, typer.Option("--worker-concurrency", min=1,
                                                    help="Processes of the --worker Celery worker.")] = 2,
) -> None:
    """Run the scheduler, a worker and the app together until Ctrl-C (with a broker: the scheduler and its
    sweeper, the app and the API; the worker with --worker)."""
    services = Services(host=host, port=port, with_app=not no_app, api_port=api_port, on_event=console.print,
                        celery_worker=celery_worker, worker_concurrency=worker_concurrency)
    services.start()
    api = f", API http://{host}:{api_port}" if api_port else ""
    if not service.broker_dispatch():
        workers = "scheduler and worker running"
    elif services.worker_process is not None:
        workers = f"scheduler, sweeper and a Celery worker (pid {services.worker_process.pid}) running"
    else:
        workers = "scheduler and sweeper running; runs go to the broker's Celery workers (none here: --worker)"
    console.print(f"serving: app {services.url if not no_app else '(off)'}{api}, {workers}")
    services.wait()


@app.command()
def ui(host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
       port: Annotated[int, typer.Option("--port")] = 8501) -> None:
    """Run only the Streamlit app."""
    require_free_port(host, port)
    process = start_app(project_root(), host, port)
    console.print(f"app on http://{host}:{port} (pid {process.pid}); Ctrl-C stops it")
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(10)


@app.command()
def demo(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8501,
    exit_after_setup: Annotated[bool, typer.Option("--exit", help="Set up and trigger, then stop.")] = False,
    no_app: Annotated[bool, typer.Option("--no-app", help="Run without the Streamlit app.")] = False,
    with_prometheus: Annotated[bool, typer.Option(
        "--with-prometheus", help="Start Debian's prometheus (and prometheus-alertmanager) on loopback: metrics "
        "read through it, and a CPU alert starts the incident.")] = False,
    api_port: Annotated[int, typer.Option("--api-port", help="The API's port (with --with-prometheus).")] = 8502,
) -> None:
    """The full loop on a demo database laid anew: users, seeds, a schedule, serve, an incident awaiting approval."""
    say = console.print
    with_app = not (exit_after_setup or no_app)
    if with_app:
        require_free_port(host, port)
    alerts = False
    if with_prometheus:
        alerts = demo_prom.alertmanager_installed()
        if with_app and api_port == port:
            raise ConfigError(f"--api-port {api_port} is the app's --port; choose another")
        require_free_port(host, api_port)
    laid = lay_demo_database()
    say(f"demo database {laid.url.removeprefix('sqlite:///')}: laid anew for this demo (the project's own database "
        "is not touched); from another terminal, use it with:", highlight=False)
    say(f"  export AGENTOPS_DATABASE_URL={laid.url} AGENTOPS_CHECKPOINT_DIR={laid.folder / 'checkpoints'}",
        highlight=False, soft_wrap=True)
    for line in init_project():
        say(line)
    demo_mod.create_demo_users(say)
    demo_mod.seed_schedules(say)
    sales_run = demo_mod.start_sales_run(say)
    stack = demo_prom.PrometheusStack.prepare(laid.folder, host, api_port, alerts) if with_prometheus else None
    services = Services(host=host, port=port, with_app=with_app, api_port=api_port if with_prometheus else None,
                        on_event=say)
    try:
        if stack is not None:
            stack.start(lambda line: say(line, highlight=False, soft_wrap=True))
        _demo_services(services, stack, sales_run, exit_after_setup)
    finally:
        stopped = stack.stop() if stack is not None else []
        if stopped:
            say(f"stopped {' and '.join(stopped)}", highlight=False)


def _demo_services(services: Services, stack: demo_prom.PrometheusStack | None, sales_run: str,
                   exit_after_setup: bool) -> None:
    say = console.print
    try:
        services.start()
        if stack is not None:
            say(f"API {services.host}:{services.api_port} (Alertmanager's and Prometheus' tokens are in "
                f"{stack.prometheus.dir.parent})", highlight=False, soft_wrap=True)
            stack.wait_for_metrics(say)
        if stack is not None and stack.alertmanager is not None:
            state = demo_prom.wait_for_alert_run(say)
        else:
            state = demo_mod.trigger_incident(say)
        if exit_after_setup:
            demo_mod.wait_settled(sales_run)
            say(f"run {sales_run} (sales_analysis): {service.run_outcome(sales_run).words}", highlight=False)
    except BaseException:
        services.stop()
        raise
    say(checkpoint_line())
    if exit_after_setup:
        services.stop()
        return
    next_step = "to decide the waiting approval" if state.approval_ids else "to follow the runs"
    if services.with_app:
        say(f"\n[bold]open {services.url}[/bold] and log in as ada (approver) {next_step}")
    else:
        say(f"the app is off (--no-app): `agentops approvals list` {next_step}")
    say("Ctrl-C stops the demo; `agentops audit verify` checks the ledger")
    services.wait()


def _register_subcommands() -> None:
    cli_governance.register(app)
    cli_ops.register(app)
    cli_api.register(app)
    app.add_typer(mcp_app, name="mcp")


_register_subcommands()


def main() -> None:
    try:
        app()
    except AgentOpsError as exc:
        typer.echo(f"error: {visible(default_redactor().text(str(exc)))}", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug, not bad input: one line too, and the traceback only on request
        if os.environ.get("AGENTOPS_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        typer.echo(f"error: unexpected {type(exc).__name__}: {visible(default_redactor().text(first))} "
                   "(AGENTOPS_DEBUG=1 shows the traceback)", err=True)
        sys.exit(1)


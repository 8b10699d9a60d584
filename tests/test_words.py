"""What pages and the CLI say in words: cron expressions, durations, approval titles and reasons, ledger events,
a long mail body cut for a card, a schedule's parameters."""

from __future__ import annotations

import pytest

from agentops import flow
from agentops.core.times import duration_text
from agentops.db.records import RunRecord
from agentops.scheduling.cron_words import cron_words
from agentops.service import audit_words, formatting
from agentops.service.run_view import duration_words


@pytest.mark.parametrize(("cron", "words"), [
    ("0 9 * * 1-5", "weekdays at 09:00"),
    ("0 9 * * MON-FRI", "weekdays at 09:00"),
    ("0 9 * * *", "every day at 09:00"),
    ("5 4 * * 0-6", "every day at 04:05"),
    ("0 9 * * 1-7", "every day at 09:00"),
    ("0 10 * * 6,0", "weekends at 10:00"),
    ("0 9 * * 1", "on Mondays at 09:00"),
    ("0 9 * * 7", "on Sundays at 09:00"),
    ("0 9 * * 1,3,5", "on Monday, Wednesday and Friday at 09:00"),
    ("0 9,17 * * 1-5", "weekdays at 09:00 and 17:00"),
    ("*/15 * * * *", "every 15 minutes"),
    ("* * * * *", "every minute"),
    ("30 * * * *", "every hour at :30"),
    ("0 * * * *", "every hour on the hour"),
    ("0 */2 * * *", "every 2 hours at :00"),
    ("*/10 * * * 1-5", "every 10 minutes, weekdays"),
    ("30 6 1 * *", "on the 1st of every month at 06:30"),
    ("0 0 22 * *", "on the 22nd of every month at 00:00"),
    ("0 0 13 * *", "on the 13th of every month at 00:00"),
    ("0 8 25 12 *", "on December 25 at 08:00"),
])
def test_common_cron_forms_read_as_words(cron: str, words: str) -> None:
    assert cron_words(cron) == words


@pytest.mark.parametrize("cron", ["1 2 3 4 5", "61 * * * *", "0 25 * * *", "0 9 * * 5-1", "*/5 9-17 * * 1-5",
                                  "0 9 * * 8", "@daily", "0 9 * *", "0 0 9 * * 1", "0 9 L * *", "0 9 * * fri#2",
                                  "", "x y z w v", "*/0 * * * *", "0 9 32 * *", "0 9 1 13 *"])
def test_other_or_broken_cron_forms_have_no_words_rather_than_wrong_ones(cron: str) -> None:
    assert cron_words(cron) is None


def test_a_schedule_says_its_words_its_zone_and_its_cron() -> None:
    from agentops.scheduling.schedules import Cadence

    assert Cadence("0 9 * * 1-5", None, "Europe/Berlin", 0.0).describe() == \
        "weekdays at 09:00 Europe/Berlin (cron 0 9 * * 1-5)"
    assert Cadence("0 9 * * 5-1", None, "UTC", 0.0).describe() == "cron 0 9 * * 5-1 (UTC)"


@pytest.mark.parametrize(("seconds", "words"), [
    (0.0, "0 ms"), (0.012, "12 ms"), (0.4996, "500 ms"), (0.9994, "999 ms"), (0.9996, "1.0 s"), (1.44, "1.4 s"),
    (9.94, "9.9 s"), (42.4, "42 s"), (185, "3 min 5 s"), (3600, "1 h 0 min"), (90061, "1 d 1 h"), (-3, "0 ms")])
def test_one_duration_formatter_for_the_app_and_the_cli(seconds: float, words: str) -> None:
    from agentops.cli.support import fmt_duration

    assert duration_text(seconds) == words == duration_words(seconds)
    assert fmt_duration(seconds * 1000) == words
    assert fmt_duration(None) == "-"


def run(state: str, **times: float) -> RunRecord:
    return RunRecord(id="r" * 32, flow_name="f", created_at=times.pop("created_at", 1000.0),
                     updated_at=times.pop("updated_at", 1000.0), state=state, **times)  # type: ignore[arg-type]


def test_a_runs_duration_says_how_long_it_took_or_what_it_is_doing() -> None:
    assert formatting.run_duration(run("COMPLETED", started_at=1000.0, ended_at=1000.004)) == "4 ms"
    assert formatting.run_duration(run("FAILED", started_at=1000.0, ended_at=1185.0)) == "3 min 5 s"
    assert formatting.run_duration(run("AWAITING_APPROVAL", started_at=1000.0, updated_at=1010.0),
                                   now=1190.0) == "waiting 3 min 0 s"
    assert formatting.run_duration(run("AWAITING_RETRY", wake_at=1030.0), now=1000.0) == "retry in 30 s"
    assert formatting.run_duration(run("RUNNING", started_at=1000.0), now=1002.0) == "running 2.0 s"
    assert formatting.run_duration(run("PENDING"), now=1000.5) == "queued 500 ms"
    assert formatting.run_duration(run("CANCELLED")) == ""


@pytest.mark.parametrize(("action", "args", "current", "title"), [
    ("send_email", {"to": ["ops@example.com"], "subject": "s"}, None, "Send an email to ops@example.com"),
    ("send_email", {"to": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io"]}, None,
     "Send an email to a@x.io, b@x.io, c@x.io and 2 more"),
    ("send_email", {"to": []}, None, "Send an email to nobody"),
    ("scale_deployment", {"name": "web-app", "replicas": 12}, 6, "Scale web-app: 6 → 12"),
    ("scale_deployment", {"name": "web-app", "replicas": 12}, None, "Scale web-app to 12 replicas"),
    ("create_ticket", {"title": "checkout   returns\n500s"}, None, "Open a ticket: checkout returns 500s"),
    ("update_ticket", {"ticket_id": 7, "status": "closed", "comment": "done"}, None,
     "Update ticket #7: status → closed, a comment"),
    ("http_request", {"method": "post", "url": "https://api.example.com/x"}, None,
     "POST https://api.example.com/x"),
    ("start_flow", {"flow": "incident_response"}, None, "Start the flow incident_response"),
    ("mcp.search_docs", {"q": "x"}, None, "Mcp search docs"),
    ("scale_deployment", {"name": "web-app", "replicas": "many"}, None, "Scale deployment"),
    ("send_email", None, None, "Send email"),
])
def test_an_approval_card_is_titled_in_words(action: str, args: dict, current: int | None, title: str) -> None:
    assert formatting.approval_title(action, args, current) == title


def test_a_stock_reason_says_who_asked_and_a_given_reason_is_kept() -> None:
    assert formatting.plain_reason("the flow called send_email", "send_email") == \
        "the flow's code asks for this call (no model chose it)"
    assert "model proposed" in (formatting.plain_reason("the agent proposed scale_deployment",
                                                        "scale_deployment") or "")
    assert formatting.plain_reason("CPU at 97%", "scale_deployment") == "CPU at 97%"
    assert formatting.plain_reason(None, "x") is None and formatting.plain_reason("", "x") is None


def test_a_long_body_shows_its_first_lines_and_a_short_one_whole() -> None:
    body = "\n".join(f"line {n}" for n in range(40))
    head, rest = formatting.split_body(body)
    assert head.splitlines() == [f"line {n}" for n in range(15)]
    assert rest.splitlines() == [f"line {n}" for n in range(15, 40)]
    assert formatting.split_body("one\ntwo") == ("one\ntwo", "")
    seventeen = "\n".join("x" * 17)
    assert formatting.split_body(seventeen) == (seventeen, ""), "two lines are shown, not hidden"
    assert formatting.clip("a" * 200, 50) == "a" * 49 + "… (151 more characters)"


@pytest.mark.parametrize(("action", "payload", "words"), [
    ("run.state", {"state": "AWAITING_APPROVAL", "approval_id": "a" * 32}, "run → AWAITING_APPROVAL"),
    ("step.state", {"state": "COMPLETED", "task": "write_report", "attempts": 1, "output_digest": "x"},
     "step write_report → COMPLETED"),
    ("step.state", {"state": "FAILED", "task": "t", "attempts": 3, "error": "boom"},
     "step t → FAILED, attempt 3: boom"),
    ("policy.verdict", {"tool": "send_email", "args": {"to": ["ops@example.com"], "cc": None}, "status": "approval",
                        "verdict": {"rule": "tools.send_email"}},
     'send_email(to=["ops@example.com"]): approval (rule tools.send_email)'),
    ("approval.requested", {"action": "scale_deployment", "args": {"name": "web-app", "replicas": 12},
                            "reason": "CPU at 97%"}, "asks to scale_deployment(name=web-app, replicas=12): CPU at 97%"),
    ("approval.decided", {"decision": "approve", "decided_by": ["ada"], "message": None}, "approve by ada"),
    ("model.call", {"model": "playbook", "usage": {"total_tokens": 1234}, "latency_ms": 3.2,
                    "proposed": [{"name": "check_metrics", "args": {}}]},
     "playbook, 1,234 tokens, 3 ms, proposes check_metrics"),
    ("user.login", {"user": "ada", "via": "password"}, "ada logged in via password"),
    ("schedule.created", {"schedule_id": 3, "flow": "hello", "cron": "0 9 * * 1-5", "args_digest": "zz"},
     "schedule_id 3 · flow hello · cron 0 9 * * 1-5"),
    ("run.state", {"no": "state"}, "no state"),
    ("run.state", "not an object", "not an object"),
    ("tool.result", {}, ""),
])
def test_ledger_events_read_as_words(action: str, payload: object, words: str) -> None:
    assert audit_words.event_summary(action, payload) == words


def test_a_calls_short_arguments_come_first_and_nested_ones_are_counted() -> None:
    payload = {"tool": "send_email", "status": "approval", "verdict": {"rule": "tools.send_email"},
               "args": {"attachments": [{"chart": "c" * 64}, {"chart": "d" * 64}], "body": "b" * 300,
                        "subject": "Weekly", "to": ["ops@example.com"], "headers": {"x": 1}}}
    assert audit_words.event_summary("policy.verdict", payload) == (
        'send_email(subject=Weekly, to=["ops@example.com"], body=' + "b" * 39 + "…, "
        "attachments=[2 items], …): approval (rule tools.send_email)")


def test_a_huge_payload_is_summarised_on_one_short_line() -> None:
    words = audit_words.event_summary("tool.result", {"tool": "query_data", "args": {"q": "x" * 5000},
                                                      "status": "ok", "content": "line\n" * 5000})
    assert "\n" not in words and len(words) < 200
    assert audit_words.payload_of('{"a": 1}') == {"a": 1} and audit_words.payload_of("{broken") == "{broken"


@flow
def words_weekly_digest(dataset: str = "sales", recipients: list[str] | None = None, top: int = 5) -> dict:
    return {}


def test_a_schedules_parameters_are_shown_without_nulls_or_the_flows_defaults() -> None:
    from agentops.scheduling.schedules import parameters_text, set_parameters

    stored = {"dataset": "sales", "recipients": None, "top": 3}
    assert set_parameters("words_weekly_digest", stored) == {"top": 3}
    assert parameters_text("words_weekly_digest", stored) == "top = 3"
    assert parameters_text("words_weekly_digest", {"dataset": "sales", "recipients": None}) == "the flow's defaults"
    assert parameters_text("words_weekly_digest", {"recipients": ["a@x.io", "b@x.io"], "top": 5}) == \
        "recipients = a@x.io, b@x.io"
    assert set_parameters("words_no_such_flow", {"dataset": "sales", "x": None}) == {"dataset": "sales"}

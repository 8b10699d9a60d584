"""A group decision acts on the requests as the reviewer saw them: a request that joined the group between the
page and the click waits; members must be one group, each with its digest; "approve the latest" is refused once
a later request for the target arrived; and a reviewer's own superseded request is withdrawn, not left pending."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentops import service
from agentops.db import open_store
from agentops.engine.worker import Worker
from agentops.errors import ApprovalError
from agentops.governance import approvals
from tests.test_app import keys, logged_in
from tests.test_approval_cards import cards_project, gated_request  # noqa: F401


def drawn(*ids: str) -> list[tuple[str, str]]:
    return [(a.id, a.args_digest) for a in map(service.get_approval, ids)]


def statuses(*ids: str) -> list[str]:
    return [service.get_approval(i).status for i in ids]


def decided_ids() -> set[str | None]:
    return {e.approval_id for e in service.audit_search(action="approval.decided", limit=100)}


def test_a_scale_request_that_arrives_after_the_draw_is_not_decided_by_approve_the_latest(
        cards_project: Path) -> None:  # noqa: F811
    twelve = gated_request("scale_deployment", {"name": "web-app", "replicas": 12})
    fourteen = gated_request("scale_deployment", {"name": "web-app", "replicas": 14})
    at = logged_in("ada")
    [label] = [b.label for b in at.button if b.key == f"approve-latest-{twelve}"]
    assert label == "Approve the latest (replicas 14), reject the others"
    fifty = gated_request("scale_deployment", {"name": "web-app", "replicas": 50})  # before the click
    at.button(key=f"approve-latest-{twelve}").click().run()
    assert not at.exception, at.exception
    assert statuses(twelve, fourteen, fifty) == ["pending"] * 3, "14 is no longer the latest: nothing decided"
    assert decided_ids() == set()
    assert any(f"a later request {fifty[:12]} for the same target arrived" in e.value for e in at.error)

    at.run()  # the page drawn again shows 50 as the latest; now the click decides what it shows
    [label] = [b.label for b in at.button if b.key == f"approve-latest-{twelve}"]
    assert label == "Approve the latest (replicas 50), reject the others"
    at.button(key=f"approve-latest-{twelve}").click().run()
    assert not at.exception, at.exception
    assert statuses(twelve, fourteen, fifty) == ["rejected", "rejected", "approved"]
    assert any(m.value.startswith("3 of 3 requests decided by ada") for m in at.success)


@pytest.mark.parametrize("button", ["approve-group", "reject-group"])
def test_a_mail_that_joins_the_group_after_the_draw_waits_whatever_the_group_decision(
        cards_project: Path, button: str) -> None:  # noqa: F811
    one = gated_request("send_email", {"to": ["ops@example.com"], "subject": "one", "body": "weekly numbers"})
    two = gated_request("send_email", {"to": ["ops@example.com"], "subject": "two", "body": "weekly numbers v2"})
    at = logged_in("ada")
    assert f"{button}-{one}" in keys(at)
    injected = gated_request("send_email", {"to": ["OPS@example.com"], "subject": "reset your password",
                                            "body": "click http://evil.example/login"})
    assert [v.approval.id for v in service.views.pending_groups(service.list_approvals())[0]] == [one, two, injected]
    at.button(key=f"{button}-{one}").click().run()
    assert not at.exception, at.exception
    done = "approved" if button == "approve-group" else "rejected"
    assert statuses(one, two, injected) == [done, done, "pending"], "only the requests drawn are decided"
    assert decided_ids() == {one, two}


def test_the_members_of_a_group_decision_must_be_one_group_each_named_once_with_its_digest(
        cards_project: Path) -> None:  # noqa: F811
    mail = gated_request("send_email", {"to": ["ops@example.com"], "subject": "s", "body": "b"})
    s12 = gated_request("scale_deployment", {"name": "web-app", "replicas": 12})
    s14 = gated_request("scale_deployment", {"name": "web-app", "replicas": 14})
    api = gated_request("scale_deployment", {"name": "api", "replicas": 3})
    refusals = [
        (drawn(mail, s12, s14), "approve_all", "are not one group"),
        (drawn(s12, api), "approve_all", "are not one group (they differ in action or target: scale_deployment on "
                                         "deployment api; scale_deployment on deployment web-app)"),
        ([], "approve_all", "none were given"),
        ([(api, "")], "approve_all", f"no digest for {api[:12]}"),
        ([(api, None)], "reject_all", f"no digest for {api[:12]}"),
        ([*drawn(s12, s14), (s12, drawn(s12)[0][1])], "reject_all", "a request is named twice"),
        (drawn(s12, s14), "approve_latest", "needs the id of the request shown as the latest"),
    ]
    for members, choice, why in refusals:
        with pytest.raises(ApprovalError, match=why.replace("(", r"\(").replace(")", r"\)")):
            service.decide_group(members, choice, user="ada")  # type: ignore[arg-type]
    with pytest.raises(ApprovalError, match=f"request {s12[:12]} is not the latest of these requests"):
        service.decide_group(drawn(s12, s14), "approve_latest", user="ada", latest=s12)
    assert statuses(mail, s12, s14, api) == ["pending"] * 4 and decided_ids() == set()


def test_an_empty_digest_is_a_stale_decision_not_the_current_one(cards_project: Path) -> None:  # noqa: F811
    appr_id = gated_request("scale_deployment", {"name": "api", "replicas": 3})
    with pytest.raises(ApprovalError, match="stale decision"):
        approvals.decide(open_store(), appr_id, "approve", user="ada", args_digest="")
    assert statuses(appr_id) == ["pending"]
    assert approvals.decide(open_store(), appr_id, "approve", user="ada", args_digest=None) is not None


def test_approve_the_latest_withdraws_the_reviewers_own_superseded_request(cards_project: Path) -> None:  # noqa: F811
    own_run = service.start_run("gated", {"action": "scale_deployment", "args": {"name": "web-app", "replicas": 12}},
                                user="ada")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [own] = service.pending_approvals_for(own_run)
    later = gated_request("scale_deployment", {"name": "web-app", "replicas": 14})
    with pytest.raises(ApprovalError, match="maker-checker"):
        service.decide(own.id, "reject", user="ada", message="no")  # on its own, still the maker's request
    with pytest.raises(ApprovalError, match="only a reject withdraws a request, not 'approve'"):
        approvals.decide(open_store(), own.id, "approve", user="ada", withdrawal=True)

    outcome = service.decide_group(drawn(own.id, later), "approve_latest", user="ada", latest=later)
    assert outcome.decided == [(later, "approve"), (own.id, "reject")] and outcome.failed == []
    assert statuses(own.id, later) == ["rejected", "approved"]
    events = {e.approval_id: json.loads(e.payload) for e in service.audit_search(action="approval.decided")}
    assert events[own.id]["withdrawn_by"] == "ada" and events[own.id]["decided_by"] == ["ada"]
    assert events[own.id]["self_approved"] is False and "withdrawn_by" not in events[later]
    decision = approvals.decision_of(service.get_approval(own.id))
    assert decision.kind == "reject" and decision.withdrawn and not decision.approved
    assert f"superseded by the later request {later[:12]}" in (decision.message or "")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    assert json.loads(service.get_run(own_run).result or "null") == {"kind": "reject"}


def test_a_reviewers_own_latest_request_is_not_approved_and_nothing_is_withdrawn(
        cards_project: Path) -> None:  # noqa: F811
    earlier = gated_request("scale_deployment", {"name": "web-app", "replicas": 12})
    own_run = service.start_run("gated", {"action": "scale_deployment", "args": {"name": "web-app", "replicas": 14}},
                                user="ada")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [own] = service.pending_approvals_for(own_run)
    outcome = service.decide_group(drawn(earlier, own.id), "approve_latest", user="ada", latest=own.id)
    assert outcome.decided == [] and "maker-checker" in outcome.failed[0][1]
    assert statuses(earlier, own.id) == ["pending", "pending"]

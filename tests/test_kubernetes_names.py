"""Names a Kubernetes API path or a PromQL label cannot hold (a trailing newline, a URL httpx refuses) are a
problem on the card, never a request sent or a page that crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentops.settings import reset_settings
from tests.fakes.services import KubernetesAPI
from tests.test_app import keys, logged_in
from tests.test_approval_cards import cards_project, gated_request, kube, page_text, plain  # noqa: F401


def test_a_name_with_a_trailing_newline_never_reaches_the_api_server_and_its_card_is_drawn(
        cards_project: Path, kube: KubernetesAPI) -> None:  # noqa: F811
    from agentops.backends import kubernetes
    from agentops.service.effects import ScaleEffect, effect_of

    for name in ("web-app\n", "web-app\r\n", "\nweb-app"):
        with pytest.raises(ValueError, match="is not a Kubernetes deployment name"):
            kubernetes.scale_path(name)
        effect = effect_of("scale_deployment", {"name": name, "replicas": 50})
        assert isinstance(effect, ScaleEffect) and effect.current is None
        assert "is not a Kubernetes deployment name" in (effect.problem or "")
    assert kube.requests == [], "nothing was sent for a name with a line break"
    approval_id = gated_request("scale_deployment", {"name": "web-app\n", "replicas": 50})
    at = logged_in("ada")
    assert not at.exception, at.exception
    assert "is not a Kubernetes deployment name" in plain(page_text(at))
    assert f"approve-inbox-{approval_id}" in keys(at), "the card is drawn with its decision controls"
    assert kube.patches == [] and kube.requests == []


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:1/a\nb"])
def test_an_api_server_url_httpx_cannot_use_is_a_problem_on_the_card_not_a_crash(
        cards_project: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:  # noqa: F811
    from agentops.service.effects import ScaleEffect, effect_of

    monkeypatch.setenv("AGENTOPS_KUBERNETES_URL", url)
    reset_settings()
    effect = effect_of("scale_deployment", {"name": "web-app", "replicas": 12})
    assert isinstance(effect, ScaleEffect) and effect.current is None
    assert "could not be read: InvalidURL" in (effect.problem or "")
    gated_request("scale_deployment", {"name": "web-app", "replicas": 12})
    at = logged_in("ada")
    assert not at.exception, at.exception
    assert "could not be read: InvalidURL" in plain(page_text(at))

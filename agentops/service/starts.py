"""Starting a flow from outside (an alert, a webhook) as the governed call `start_flow`."""

from __future__ import annotations

from typing import Any

from agentops.db import Store
from agentops.engine.project import project_root
from agentops.engine.registry import find_flow
from agentops.engine.runner import create_run
from agentops.errors import PermissionDenied
from agentops.governance.screening import StoreRateCounter, project_policy


def governed_start(store: Store, flow_name: str, parameters: dict[str, Any], *, user: str, trigger: str,
                   run_id: str, source: str) -> None:
    """Queue `run_id` when the policy allows `start_flow` for it (taking its rate slot); PermissionDenied when it
    does not. `source` names where the start came from in the refusal (`an alert`, `hook 'deploy'`). A verdict of
    require_approval refuses too: nobody is asked for starts from outside yet (fail closed). Parameters the flow
    refuses raise ParameterError before the policy is asked."""
    flow = find_flow(flow_name)
    flow.validate_parameters(parameters)  # a start the flow refuses takes no slot of the policy's rate window
    verdict = project_policy(project_root()).evaluate("start_flow", {"flow": flow_name, "parameters": parameters},
                                                      rate=StoreRateCounter(store), use_id=f"{trigger}:{run_id}")
    if verdict.enforced and verdict.verdict != "allow":
        why = (f"it needs an approval, which runs started from {source} do not ask for yet"
               if verdict.verdict == "require_approval" else verdict.reason)
        raise PermissionDenied(f"policy refuses starting '{flow_name}' from {source}: {why} (rule {verdict.rule})")
    create_run(flow, parameters, trigger=trigger, created_by=user, queue=True, store=store,
               run_id=run_id)

"""A flow parameter type naming a dataset, checked against the project's data/ before a run is written."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from agentops.engine.project import project_root


def known_dataset(name: str) -> str:
    """The dataset's name as the project spells it; UnknownDatasetError (a ValueError) naming the ones there are."""
    from agentops.data.datasets import resolve_dataset  # duckdb loads with the first check, not on import

    return resolve_dataset(name, project_root()).name


KnownDataset = Annotated[str, AfterValidator(known_dataset)]

"""The agentops project: its root, and the flows discovered under flows/."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

from agentops.errors import ConfigError
from agentops.settings import get_settings

_loaded: set[Path] = set()
project_import_lock = threading.RLock()
"""Held while project files are imported: a thread must never see a half-imported flows/ or tools/ module."""


def project_root() -> Path:
    return get_settings().root


def load_project(root: Path | None = None) -> Path:
    """Import every module in <root>/flows so their @flow functions register. Safe to call repeatedly."""
    root = (root or project_root()).resolve()
    if root in _loaded:
        return root
    with project_import_lock:
        if root not in _loaded:
            _import_flows(root)
            _loaded.add(root)
    return root


def _import_flows(root: Path) -> None:
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    flows_dir = root / "flows"
    if flows_dir.is_dir():
        for path in sorted(flows_dir.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                import_project_file(f"flows.{path.stem}", path)
            except Exception as exc:
                raise ConfigError(f"cannot load {path.relative_to(root)}: {type(exc).__name__}: {exc}") from None


def import_project_file(name: str, path: Path) -> ModuleType:
    """Import a project file under `name`, replacing a module of that name loaded from another project."""
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module

"""`get_run_logger()` and `log_prints`: lines stored per step with the step's record.

A resumed run executes its flow function again from the top, so the flow's own code logs its lines again; each
line carries its place in the run (`RunContext.line_key`: where, and for the flow's own lines what it says), and
the store keeps the first line at each place.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from typing import Any

from agentops.core.redaction import default_redactor
from agentops.engine.context import current_run, current_step

console = logging.getLogger("agentops.run")
LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


def _store_line(level: str, message: str) -> bool:
    ctx = current_run.get()
    if ctx is None:
        return False
    step = current_step.get()
    step_no = step.step_no if step else None
    text = default_redactor().text(message)
    ctx.add_log({"run_id": ctx.run_id, "step_no": step_no, "ts": time.time(), "level": level, "message": text,
                 "line_key": ctx.line_key(step_no, level, text)})
    return True


class RunLogger:
    """A logger whose lines are stored with the current step (or the run, between steps)."""

    def _log(self, level: str, msg: str, *args: Any) -> None:
        text = msg % args if args else str(msg)
        _store_line(level, text)
        console.log(LEVELS[level], "%s", default_redactor().text(text))

    def debug(self, msg: str, *args: Any) -> None:
        self._log("DEBUG", msg, *args)

    def info(self, msg: str, *args: Any) -> None:
        self._log("INFO", msg, *args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log("WARNING", msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        self._log("ERROR", msg, *args)


_logger = RunLogger()


def get_run_logger() -> RunLogger:
    return _logger


class _PrintCapture(io.TextIOBase):
    """Stands in for sys.stdout: inside a step with log_prints, lines are stored; always passed through."""

    def __init__(self, passthrough: Any) -> None:
        self.passthrough = passthrough
        self._partial: dict[int, str] = {}

    def write(self, s: str) -> int:
        step = current_step.get()
        ctx = current_run.get()
        if step is not None and ctx is not None and (step.log_prints or ctx.log_prints):
            key = id(step)
            buffered = self._partial.pop(key, "") + s
            *lines, rest = buffered.split("\n")
            for line in lines:
                _store_line("INFO", line)
            if rest:
                self._partial[key] = rest
        return self.passthrough.write(s)

    def flush(self) -> None:
        self.passthrough.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.passthrough, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.passthrough, "encoding", "utf-8")


def install_print_capture() -> None:
    if not isinstance(sys.stdout, _PrintCapture):
        sys.stdout = _PrintCapture(sys.stdout)

"""Wake-ups between processes: a run became runnable, an idle worker may claim it now instead of at its poll.

PostgreSQL has them built in (LISTEN/NOTIFY; see `RunnableWakeups` in agentops/db/base.py). SQLite's writers all
share one machine, so each idle worker binds a UNIX datagram socket in a directory beside the database file
(`<file>.wake/`), and every commit that makes a run runnable sends one byte to each socket there. A wake-up can be
lost (a full socket buffer, a path longer than the 107 bytes a socket name may have); the poll is the fallback.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import socket
import stat
from pathlib import Path

_names = itertools.count()


def wake_dir(sqlite_file: str) -> Path:
    return Path(f"{sqlite_file}.wake")


class LocalWakeups:
    """One idle worker's socket. Raises OSError when it cannot be bound (then the worker polls)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        self.path = directory / f"{os.getpid()}.{next(_names)}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._sock.bind(str(self.path))
        except OSError:
            self._sock.close()
            raise

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if woken (the wake-ups waiting are drained and count once)."""
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while True:
                self._sock.recv(16, socket.MSG_DONTWAIT)
        return True

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def wake_all(directory: Path) -> None:
    """Send a wake-up to every worker socket in `directory`; a socket nobody holds any more (its process died) is
    removed."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for entry in entries:
            try:
                if not stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                    continue  # only sockets are ours
                sender.sendto(b"!", entry.path)
            except ConnectionRefusedError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            except OSError:  # a full buffer means that worker is woken already; anything else: it polls
                pass

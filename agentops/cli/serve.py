"""`agentops serve`: the scheduler, a worker and the app in one process tree; `agentops demo` on top of it.

Without a broker the worker is a polling worker thread. With AGENTOPS_BROKER_URL the scheduler also sweeps, runs
go to Celery workers, and `--worker` starts one as a child process (its own process group, stopped with serve).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agentops import service
from agentops.db import open_store
from agentops.engine.project import load_project, project_root
from agentops.errors import ConfigError
from agentops.settings import get_settings

if TYPE_CHECKING:
    from agentops.api.server import ApiServer
    from agentops.engine.worker import Worker


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def require_free_port(host: str, port: int) -> None:
    """ConfigError when something already listens on host:port, before anything is started."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"port {port} on {host} is already in use ({exc.strerror}); choose another with "
                              "--port (make demo PORT=...)") from None


def wait_for_port(host: str, port: int, timeout: float = 60.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.1)
    return False


def app_script(root: Path) -> Path:
    """The Streamlit app's entry point in the project; ConfigError when the project has none."""
    script = root / "app" / "server.py"
    if not script.is_file():
        raise ConfigError(f"no Streamlit app at {script}: the app is the repository's app/ folder; run from a "
                          "checkout that has it, or set AGENTOPS_PROJECT_DIR to one")
    return script


def start_app(root: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    """The Streamlit app as a child process (stopped by its PID)."""
    script = app_script(root)
    env = os.environ.copy()
    env.setdefault("AGENTOPS_PROJECT_DIR", str(root))
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", host,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"]
    secrets_file = write_auth_secrets(root, host, port)
    if secrets_file is not None:
        command += ["--secrets.files", str(secrets_file)]
    return subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_auth_secrets(root: Path, host: str, port: int) -> Path | None:
    """Streamlit reads OIDC settings for st.login from secrets.toml: write one (mode 0600) from AGENTOPS_OIDC_*."""
    settings = get_settings()
    if not settings.oidc_enabled:
        return None
    cookie = settings.oidc_cookie_secret.get_secret_value() if settings.oidc_cookie_secret else None
    client_secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    auth = {"redirect_uri": settings.oidc_redirect_uri or f"http://{host}:{port}/oauth2callback",
            "cookie_secret": cookie or secrets.token_urlsafe(32), "client_id": settings.oidc_client_id,
            "client_secret": client_secret, "server_metadata_url": settings.oidc_server_metadata_url}
    path = root / ".agentops" / "streamlit" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("[auth]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in auth.items()))
    return path


@dataclass
class Services:
    """The scheduler and worker threads and the app process of one `serve`."""

    host: str = "127.0.0.1"
    port: int = 8501
    with_app: bool = True
    api_port: int | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    app_process: subprocess.Popen[bytes] | None = None
    api_server: ApiServer | None = None
    on_event: Callable[[str], None] = print
    celery_worker: bool = False
    """With a broker: run a Celery worker as a child process (without one, the polling worker always runs)."""
    worker_concurrency: int = 2
    worker_process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self.with_app:
            require_free_port(self.host, self.port)
        if self.api_port is not None:
            require_free_port(self.host, self.api_port)
        root = load_project()
        if self.with_app:
            app_script(root)
        store = open_store()
        brokered = service.broker_dispatch()
        command = service.celery_worker_command(concurrency=self.worker_concurrency) if (
            brokered and self.celery_worker) else None
        if not brokered:  # with a broker, runs go to Celery workers: the embedded one, or others
            worker = service.new_worker(store=store,
                                        on_outcome=lambda o: self.on_event(f"run {o.run_id} {o.state.value}"))
            self.threads.append(threading.Thread(target=self._run_until_stopped, args=(worker,), daemon=True,
                                                 name="agentops-worker"))
        scheduler = service.new_scheduler(holder=f"serve:{socket.gethostname()}:{os.getpid()}")
        self.threads.append(threading.Thread(target=scheduler.run, args=(self.stop_event,), daemon=True,
                                             name="agentops-scheduler"))
        for thread in self.threads:
            thread.start()
        if command is not None:
            self.worker_process = subprocess.Popen(command, cwd=root, env={**os.environ,
                                                   "AGENTOPS_PROJECT_DIR": str(root)}, start_new_session=True)
        if self.api_port is not None:
            from agentops.api.server import ApiServer

            self.api_server = ApiServer(self.host, self.api_port)
            self.api_server.start()
        if self.with_app:
            self.app_process = start_app(root, self.host, self.port)
            if not wait_for_port(self.host, self.port):
                self.stop()
                raise RuntimeError(f"the app did not start on {self.url}")

    def _run_until_stopped(self, worker: Worker) -> None:
        def watch() -> None:
            self.stop_event.wait()
            worker.stop()

        threading.Thread(target=watch, daemon=True).start()
        worker.run()

    def wait(self) -> None:
        def handle(_sig: int, _frame: object) -> None:
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handle)
        try:
            while not self.stop_event.wait(0.5):
                if self.app_process is not None and self.app_process.poll() is not None:
                    self.on_event("the app process exited")
                    break
                if self.worker_process is not None and self.worker_process.poll() is not None:
                    self.on_event(f"the Celery worker exited with code {self.worker_process.returncode}")
                    break
        except KeyboardInterrupt:
            pass
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        if self.api_server is not None:
            self.api_server.stop()
        if self.app_process is not None and self.app_process.poll() is None:
            self.app_process.terminate()
            try:
                self.app_process.wait(10)
            except subprocess.TimeoutExpired:
                self.app_process.kill()
        if self.worker_process is not None and self.worker_process.poll() is None:
            # Warm shutdown: the worker finishes or gives back what it holds (late acks) within the wait.
            os.killpg(self.worker_process.pid, signal.SIGTERM)
            try:
                self.worker_process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker_process.pid, signal.SIGKILL)
                self.worker_process.wait(10)
        for thread in self.threads:
            thread.join(10)


def root() -> Path:
    return project_root()

"""One settings class for the whole engine, read from AGENTOPS_* environment variables."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from agentops.errors import ConfigError


def find_project_root(start: Path | None = None) -> Path:
    """The directory holding pyproject.toml, searched upwards from `start` (default: the cwd)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return here


BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
"""A broker queue's name: letters, digits and _ . : - (no spaces, nothing a broker or a shell reads specially)."""
K8S_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A Kubernetes namespace (an RFC 1123 label): nothing in it can leave its path segment."""
KOMBU_KEYS = frozenset({"unacked", "unacked_index", "unacked_mutex"})
"""The Redis keys kombu keeps for itself (with `_kombu.*`): a queue of that name would share their key."""


def queue_name_problem(name: object) -> str | None:
    """Why `name` cannot be a queue name, or None when it can."""
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        return f"queue name {name!r}: use 1 to 200 letters, digits and _ . : - only"
    if name in KOMBU_KEYS or name.startswith("_kombu."):
        return (f"queue name {name!r} is one of the broker's own Redis keys "
                f"({', '.join(sorted(KOMBU_KEYS))}, _kombu.*); choose another name")
    return None


def check_queue_name(name: object) -> str:
    """`name` if it is a queue name, else ConfigError naming it."""
    problem = queue_name_problem(name)
    if problem is not None:
        raise ConfigError(problem)
    assert isinstance(name, str)
    return name
DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> object:
    """Seconds from "90", "90s", "30m", "12h" or "2d"; anything else is left for pydantic to refuse."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text and text[-1] in DURATION_UNITS:
            try:
                return float(text[:-1]) * DURATION_UNITS[text[-1]]
            except ValueError:
                raise ValueError("a duration is a number of seconds or one with s, m, h or d, e.g. 12h") from None
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTOPS_", extra="ignore")

    project_dir: Path | None = None
    """The project root (holds flows/, tools/, prompts/, policies/). Default: found from the cwd."""
    database_url: str | None = None
    """SQLAlchemy URL. Default: SQLite at <project>/.agentops/agentops.db. postgresql+psycopg://... for PostgreSQL."""
    model: str | None = None
    """init_chat_model string, e.g. openai:gpt-4.1-mini. Unset: the playbook model."""
    model_reply_retries: int = Field(default=2, ge=0, le=20)
    """How many times a model turn is sent again after an unusable reply (garbage, not an unreachable model);
    after that the run fails. The provider client's own retries of 5xx and connection errors come on top."""
    model_retry_delay_seconds: float = Field(default=1.0, ge=0)
    """Seconds before the first resend of a turn whose reply was unusable; doubled for each later one."""
    model_on_error: Literal["fail", "ask"] = "fail"
    """Once a turn's replies stay unusable after the retries: fail the run, or ask a person (an approval of the
    action `model.retry`: approving sends the turn again with fresh retries, rejecting fails the run)."""
    model_streaming: bool = False
    """Stream the model's replies; a stream that ends without a finish reason is an unusable reply."""
    user: str | None = None
    """The person the CLI acts for (same as --as)."""
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    """How often a worker heartbeats the runs it is executing."""
    stale_after_seconds: float = Field(default=30.0, gt=0)
    """A running run whose heartbeat is older than this is recovered as CRASHED."""
    worker_poll_seconds: float = Field(default=0.05, gt=0)
    """How often an idle worker looks for queued runs."""
    broker_url: str | None = None
    """redis://... or amqp://...: send each run that becomes runnable to this broker, for `agentops worker
    --celery`. Needs PostgreSQL (workers on other hosts share its state). Unset: polling workers only."""
    broker_queue: str = "agentops"
    """The broker queue runs are sent to (`agentops worker --celery -Q` consumes it by default)."""
    flow_queues: dict[str, str] = Field(default_factory=dict)
    """Per-flow queues, as JSON: {"flow name": "queue"}. A run of a flow named here is sent to that queue (this
    overrides `@flow(queue=...)`); any other run to AGENTOPS_BROKER_QUEUE. Consume one with `agentops worker -Q`."""
    broker_visibility_timeout_seconds: float | None = Field(default=None, gt=0)
    """Redis: seconds an unacknowledged message waits before Redis delivers it again. Default: an hour, or 20
    stale intervals if longer. It must be at least twice the stale interval: a run that outlasts it is
    delivered again, and that delivery is dropped while the run's heartbeat is fresh."""
    task_workers: int = Field(default=256, gt=0)
    """Threads in the pool behind task.submit() and task.map()."""
    shadow_policy: bool = False
    """Record policy verdicts without enforcing them."""
    secret_settings: list[str] = Field(default_factory=list)
    """Names of extra environment variables whose values are redacted from the ledger and logs."""
    smtp_url: str | None = None
    """smtp://user:pass@host:port for real email; unset: the embedded outbox."""
    smtp_attempts: int = Field(default=3, ge=1)
    """Delivery attempts one send_email step makes before it reports the mail as not delivered."""
    smtp_retry_seconds: float = Field(default=1.0, ge=0)
    """The wait before a step's second delivery attempt; it doubles for each attempt after that."""
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long the SMTP client waits for the server's connection and each reply."""
    http_allowed_hosts: str | None = None
    """Comma-separated host[:port] entries http_request may reach, replacing the policy's `url.hosts` list.
    Unset: the policy's list."""
    slack_webhook_url: SecretStr | None = None
    """A Slack-compatible incoming-webhook URL for approval notifications (a secret: never stored, logged or shown).
    Its host must be in the policy's `notifications.webhook_hosts`, or every Slack notification is refused."""
    notify_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one notification's webhook call or SMTP reply may take."""
    notify_lease_seconds: float = Field(default=120.0, gt=0)
    """A notification whose delivery began this long ago (by the database's clock) and has no outcome is taken as
    lost with its process and sent again, with the same id (at least once)."""
    notify_retry_seconds: float = Field(default=5.0, ge=0)
    """The wait after a notification's first failed attempt; it doubles for each attempt after that, up to 15 min."""
    notify_attempts: int = Field(default=12, ge=1)
    """Delivery attempts per notification before it is recorded as failed for good."""
    ticket_api_url: str | None = None
    """Base URL of a REST ticket API; unset: the embedded ticket table."""
    ticket_api_token: SecretStr | None = None
    """Bearer token for the ticket API."""
    kubernetes_url: str | None = None
    """Kubernetes API server URL; unset: the simulated cluster."""
    kubernetes_token: SecretStr | None = None
    """Bearer token for the Kubernetes API."""
    kubernetes_namespace: str = "default"
    """Namespace of the deployments the scaling tool manages."""
    prometheus_url: str | None = None
    """Prometheus base URL (e.g. http://prometheus:9090): get_metrics and predictive scaling's history read through
    its HTTP API. Unset: the simulated cluster's own numbers."""
    prometheus_queries: dict[str, str] = Field(default_factory=dict)
    """PromQL per metric (cpu_percent, error_rate, p95_latency_ms, requests_per_s, replicas), as JSON, overriding
    the cAdvisor/kube-state-metrics defaults; `$deployment`, `$namespace` and `$window` are filled in."""
    prometheus_rate_window: str = Field(default="2m", pattern=r"^[0-9]+(ms|s|m|h)$")
    """The range of the default queries' rate(): at least four scrape intervals of the exporters."""
    alert_cooldown_seconds: float = Field(default=300.0, ge=0)
    """After an alert group's run ended, its firing notifications start no new run for this long: the alert
    catches up with the remedy (rule evaluation, `for:`, Alertmanager's group interval) before it is believed."""
    hook_window_seconds: float = Field(default=300.0, gt=0, le=86400)
    """A signed webhook's timestamp must be this close to the server's clock; its signature is remembered (and
    refused again as a replay) for twice as long."""
    prometheus_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one Prometheus query may take before the tool reports Prometheus as unavailable."""

    mcp_wait_seconds: float = Field(default=2.0, ge=0, le=300)
    """How long a flow started over MCP (`agentops mcp serve`) is waited for before its tool answers: a run that
    finishes or pauses for an approval within it is answered with its result or its approval's link."""
    mcp_keep_sessions: bool = False
    """Keep one session per MCP server configuration in each process (a worker starts a stdio server once, not per
    call). The definition check still shares the session with each call. A session that fails is closed and the
    next call opens another; a server that keeps state between calls of one session will see that state."""
    mcp_elicitation_expires_seconds: float = Field(default=24 * 3600, gt=0)
    """How long an MCP server's request for input (elicitation) waits in the approvals inbox before it expires."""

    ledger_key_file: Path | None = None
    """Ed25519 private key (PEM, mode 0600) that signs the ledger's checkpoints; `agentops init` creates it.
    Default: <project>/.agentops/ledger-signing-key.pem. In production keep it where the database's users
    cannot read it (a secrets mount on the worker hosts), never in the database."""
    checkpoint_dir: Path | None = None
    """Where signed checkpoints are appended (checkpoints.jsonl), outside the database. Default:
    <project>/.agentops/checkpoints. In production point it at WORM storage or ship it to an external anchor."""
    checkpoint_every_events: int = Field(default=1000, ge=1)
    """Workers sign a checkpoint once this many events were appended since the last one..."""
    checkpoint_every_seconds: float = Field(default=60.0, gt=0)
    """...or once this many seconds passed with any new event."""

    sandbox_require_landlock: bool = True
    """Model-written data code runs only where the kernel's Landlock can confine it; false runs it without
    Landlock (kernels before 5.13): the mount namespace then hides every file but the dataset's."""
    sandbox_require_isolation: bool = True
    """Model-written data code runs only where the kernel cuts it off from the network, bounds its processes and
    kills them when the question ends, and (without Landlock) hides every file but the dataset's: namespaces, or
    seccomp and Landlock. False runs it with whatever the kernel offers (macOS: the in-process checks alone)."""

    oidc_server_metadata_url: str | None = None
    """OpenID Connect discovery URL (.../.well-known/openid-configuration); set it to log in with st.login."""
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_uri: str | None = None
    """The app's callback, e.g. https://agentops.example.com/oauth2callback."""
    oidc_cookie_secret: SecretStr | None = None
    """Signs the login cookie; a random one is made per start when unset."""
    oidc_default_role: str = "viewer"
    """Role of an OIDC user who has no local account row yet (their row is created on first login)."""

    session_ttl: float = Field(default=12 * 3600.0, gt=0)
    """How long an app login lasts (seconds, or 30m, 12h, 2d); the session then has to log in again."""
    session_secret: SecretStr | None = None
    """Signs the app's session cookie. Default: a random key kept in <project>/.agentops/session-secret (0600)."""
    app_url: str = "http://127.0.0.1:8501"
    """Where people open the app: the base of the links to approvals and runs (notifications use them)."""

    @field_validator("session_ttl", mode="before")
    @classmethod
    def _session_ttl(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("session_secret")
    @classmethod
    def _session_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 characters (e.g. openssl rand -hex 32)")
        return value

    @field_validator("app_url")
    @classmethod
    def _app_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - a port that is not a number raises here
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("the app's URL is http(s)://host[:port][/path], e.g. https://agentops.example.com")
        return value.rstrip("/")

    @field_validator("project_dir")
    @classmethod
    def _project_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"'{value}' is not a directory")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = value.partition("://")[0]
        if "://" not in value or scheme not in BROKER_SCHEMES:
            raise ValueError(f"a broker URL starts with one of {', '.join(s + '://' for s in BROKER_SCHEMES)}")
        return value

    @field_validator("flow_queues")
    @classmethod
    def _flow_queue_names(cls, value: dict[str, str]) -> dict[str, str]:
        for flow, queue in value.items():
            problem = queue_name_problem(queue)
            if problem is not None:
                raise ValueError(f"flow {flow!r}: {problem}")
        return value

    @field_validator("kubernetes_namespace")
    @classmethod
    def _namespace_name(cls, value: str) -> str:
        if not K8S_NAMESPACE.fullmatch(value):
            raise ValueError("a Kubernetes namespace is 1 to 63 lowercase letters, digits and '-', starting and "
                             "ending with a letter or digit")
        return value

    @field_validator("broker_queue")
    @classmethod
    def _broker_queue_name(cls, value: str) -> str:
        problem = queue_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _visibility_above_staleness(self) -> Settings:
        timeout = self.broker_visibility_timeout_seconds
        if timeout is not None and timeout < 2 * self.stale_after_seconds:
            raise ValueError(f"AGENTOPS_BROKER_VISIBILITY_TIMEOUT_SECONDS={timeout:g} is below twice "
                             f"AGENTOPS_STALE_AFTER_SECONDS={self.stale_after_seconds:g}")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_server_metadata_url and self.oidc_client_id)

    @property
    def root(self) -> Path:
        return (self.project_dir or find_project_root()).resolve()

    @property
    def state_dir(self) -> Path:
        return self.root / ".agentops"

    @property
    def ledger_key_path(self) -> Path:
        return self.ledger_key_file or self.state_dir / "ledger-signing-key.pem"

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_dir or self.state_dir / "checkpoints"

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.state_dir / 'agentops.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; a bad value is a ConfigError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_setting_error(exc)) from None
    except SettingsError as exc:  # a JSON setting that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"AGENTOPS_{field.group(1).upper()}" if field else "an AGENTOPS_ setting"
        raise ConfigError(f"setting {name}: not valid JSON") from None


def describe_setting_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    name = "AGENTOPS_" + "_".join(str(part) for part in err["loc"]).upper()
    message = err["msg"].removeprefix("Value error, ")
    if not err["loc"]:  # a check across settings names them itself
        return f"settings: {message}"
    secret = any(marker in name for marker in ("SECRET", "TOKEN", "PASSWORD", "KEY")) or name.endswith("_URL")
    shown = "<hidden>" if secret else repr(err.get("input"))
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"setting {name}={shown}: {message}{more}"


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI's --project option change the environment)."""
    get_settings.cache_clear()


def environment_secrets() -> list[str]:
    """Values of secret-looking environment variables, for redaction."""
    try:
        names = set(get_settings().secret_settings)
    except ConfigError:  # the error being reported may be the settings themselves
        names = set()
    markers = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "WEBHOOK")
    names |= {name for name in os.environ if any(m in name.upper() for m in markers)}
    return [os.environ[n] for n in names if len(os.environ.get(n, "")) >= 6]

"""Settings: `config.toml` defaults, another file by `--config`, single keys from the environment.

Every section is a pydantic model with ``extra="forbid"``, so a misspelt key stops start-up
with the key named instead of being silently ignored. The built-in defaults here and the
repository's ``config.toml`` are the same values (a test keeps them in step).
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from gateway.vocabulary import (
    MAX_CALLBACK_AHEAD_SECONDS,
    Disposition,
    SimulatedAgentOutcome,
    SimulatedOutcome,
)

# webhooks.deny_networks by default: "this network", link-local (169.254.169.254 and
# fd00:ec2::254 are cloud metadata services), multicast, reserved and broadcast.
DEFAULT_DENIED_NETWORKS = ("0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
                           "::/128", "fe80::/10", "ff00::/8", "fd00:ec2::254/128")

ENV_PREFIX = "GATEWAY_"
# GATEWAY_* variables that are not settings: the config file's path, the bootstrap key, and
# the CLI client's connection variables.
ENV_NOT_SETTINGS = frozenset(
    {"GATEWAY_CONFIG", "GATEWAY_BOOTSTRAP_API_KEY", "GATEWAY_API_KEY", "GATEWAY_BASE_URL"}
)


class ConfigError(Exception):
    """A setting is missing, unknown or invalid; the message names it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    auth_cache_seconds: float = Field(default=5.0, ge=0)


class DatabaseSettings(_Section):
    url: str = ""
    data_dir: Path = Path("gateway-data")
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    # At start-up, how long to wait for PostgreSQL to answer before exiting with an error
    # (a database that is still starting is waited for; once up, an outage never exits).
    connect_timeout_seconds: float = Field(default=30.0, gt=0)


# Who hangs up a simulated call that reached the agent (the gateway's own hang-ups, such
# as a shutdown, are not the simulator's to choose).
SimulatedHangup = Literal["contact", "agent"]


class SimRule(_Section):
    pattern: str = Field(min_length=1)
    outcome: SimulatedOutcome
    ring_seconds: float = Field(default=0.0, ge=0)
    talk_seconds: float = Field(default=0.0, ge=0)
    # What the agent does with the call once the contact answers.
    agent_outcome: SimulatedAgentOutcome = "answered"
    hangup_by: SimulatedHangup = "contact"
    # What the agent says of a call it took, as it hangs up (none: it says nothing); a
    # callback asks to be called this long after the call ended.
    disposition: Disposition | None = None
    callback_after_seconds: float | None = Field(default=None, ge=0,
                                                 le=MAX_CALLBACK_AHEAD_SECONDS,
                                                 validate_default=True)

    @field_validator("callback_after_seconds")
    @classmethod
    def _with_callback(cls, value: float | None, info: ValidationInfo) -> float | None:
        if "disposition" not in info.data:  # the disposition is invalid: that is the error
            return value
        if info.data["disposition"] == Disposition.CALLBACK:
            if value is None:
                raise ValueError("is required with disposition = \"callback\"")
        elif value is not None:
            raise ValueError("is only given with disposition = \"callback\"")
        return value

    def matches(self, number: str) -> bool:
        return fnmatch.fnmatchcase(number, self.pattern)


class SimSettings(_Section):
    seed: int = 1
    rules: list[SimRule] = []
    # Numbers no rule matches: outcome weights, and uniform ring/talk time ranges.
    mix: dict[SimulatedOutcome, float] = {"answered": 0.7, "no_answer": 0.15, "busy": 0.1,
                                 "failed": 0.05}
    ring_seconds: tuple[float, float] = (1.0, 8.0)
    talk_seconds: tuple[float, float] = (5.0, 60.0)
    # The agent leg: how long the agent takes to answer once the contact has (every call),
    # and the share of answered calls it cannot take (numbers no rule matches).
    agent_answer_seconds: float = Field(default=0.0, ge=0)
    agent_unavailable_rate: float = Field(default=0.0, ge=0, le=1)

    @field_validator("mix")
    @classmethod
    def _some_weight(cls, value: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in value.values()) or sum(value.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return value

    @field_validator("ring_seconds", "talk_seconds")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] <= value[1]:
            raise ValueError("must be [low, high] with 0 <= low <= high")
        return value


class SipSettings(_Section):
    proxy: str = ""
    bind_host: str = "0.0.0.0"
    bind_port: int = Field(default=5060, ge=0, le=65535)
    username: str = ""
    password: SecretStr = SecretStr("")
    ring_timeout_seconds: float = Field(default=30.0, gt=0)
    max_call_seconds: float = Field(default=3600.0, gt=0)
    # Host for Via, Contact and From; empty: bind_host, or (bind_host 0.0.0.0) the local
    # address the OS uses to reach the proxy.
    local_host: str = ""
    # RFC 3261 T1 (retransmission base; Timer B/F = 64*T1).
    timer_t1_ms: int = Field(default=500, ge=1, le=60000)
    # The agent leg: how long the agent may take to answer the INVITE that carries the
    # contact's offer (the contact's 2xx is retransmitted, unacknowledged, meanwhile), and
    # what the trunk's INVITE carries: no offer ("late": the contact's 2xx brings it), or
    # the agent's ("early", for trunks that refuse an INVITE without one: the agent is
    # invited first and held while the contact rings).
    agent_answer_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    trunk_offer: Literal["late", "early"] = "late"


class TelephonySettings(_Section):
    adapter: Literal["sim", "sip"] = "sim"
    sim: SimSettings = SimSettings()
    sip: SipSettings = SipSettings()


class EngineSettings(_Section):
    # How often the supervisor looks for scheduled campaigns that are due, and re-reads
    # account caps changed by an operator.
    scheduler_poll_seconds: float = Field(default=1.0, gt=0)
    caps_refresh_seconds: float = Field(default=5.0, gt=0)
    # A campaign fails when every call has failed (a carrier error, or an answered call the
    # agent was unavailable for) for this long, with at least this many calls.
    adapter_failure_seconds: float = Field(default=60.0, gt=0)
    adapter_failure_min_calls: int = Field(default=20, ge=1)
    # Contacts claimed per database round trip (a batch never exceeds the free slots).
    claim_batch_size: int = Field(default=50, ge=1, le=1000)
    # The engine's own connection pool (claims, results, the supervisor), apart from the
    # API's (database.pool_max_size), so uploads and reads cannot starve dialing.
    pool_max_size: int = Field(default=10, ge=2)
    # Several processes may share a database; each account is dialed by one of them at a
    # time under a lease it renews every lease_seconds / 5. A process that is gone has its
    # accounts taken over once its leases expire (this long after its last renewal); one
    # cut off from the database hangs its calls up two thirds of the way there.
    lease_seconds: float = Field(default=15.0, ge=0.5, le=3600)
    # Open attempts with no live call (a claim's answer lost, a result that could not be
    # written) are finished as interrupted once this old; the sweep runs this often.
    orphan_sweep_seconds: float = Field(default=10.0, gt=0)


class WebhooksSettings(_Section):
    # "process": a child process of `gateway serve` delivers, at a lower CPU priority, so
    # delivery never takes CPU from dialing; "inline": the gateway's own process does.
    worker: Literal["process", "inline"] = "process"
    # The delivery actor looks for due deliveries this often.
    poll_seconds: float = Field(default=0.5, gt=0, le=60)
    # One request's whole time (connect, send, the status line).
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # A failed delivery is tried again after retry_base_seconds * 2^(attempts - 1), at most
    # retry_max_seconds, times a random 0.5-1 (jitter); an endpoint whose deliveries have
    # failed for give_up_after_seconds is disabled.
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    give_up_after_seconds: float = Field(default=24 * 3600.0, gt=0)
    # Requests in flight at once: per endpoint (one per campaign: a campaign's events go
    # one at a time, in order) and in all.
    max_in_flight_per_endpoint: int = Field(default=8, ge=1, le=1000)
    max_in_flight: int = Field(default=64, ge=1, le=10000)
    # Deliveries taken per claim, and how long a claim is good for (no request starts
    # after half of it; another process may take the rest after all of it).
    claim_batch_size: int = Field(default=100, ge=1, le=10000)
    claim_seconds: float = Field(default=60.0, gt=0)
    # While dialing runs flat out (its result writes back to back), a queue's next batch
    # waits until the queue is this many seconds behind, or dialing slows: deliveries
    # running beside a saturated dialer cost it far more than their own CPU. 0: no waiting.
    yield_to_dialing_seconds: float = Field(default=10.0, ge=0, le=3600)
    # Delivered and abandoned deliveries are listed this long.
    keep_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    # Networks a webhook is never sent into: a receiver's name is resolved at every new
    # connection and only its addresses outside these are connected to (a URL naming a
    # denied address is refused when the endpoint is created). The default keeps out the
    # cloud metadata services, unspecified, multicast and broadcast addresses; a gateway
    # whose accounts must not reach its own network adds loopback and the private ranges.
    deny_networks: list[IPvAnyNetwork] = Field(default_factory=lambda: [
        ip_network(n) for n in DEFAULT_DENIED_NETWORKS])


class SseSettings(_Section):
    tick_seconds: float = Field(default=2.0, gt=0)
    heartbeat_seconds: float = Field(default=15.0, gt=0)


class LimitsSettings(_Section):
    min_retry_delay_seconds: int = Field(default=60, ge=0)
    max_csv_bytes: int = Field(default=10 * 1024 * 1024, ge=1)


class ContactsSettings(_Section):
    default_region: str = "US"

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not an ISO 3166 region phonenumbers knows")
        return value


class AccountsSettings(_Section):
    default_concurrent_max: int = Field(default=10, ge=0)
    default_calls_per_minute: int = Field(default=60, ge=0)


class MetricsSettings(_Section):
    # Empty: GET /metrics is served on the API's port ([http]). An address: on a listener
    # of its own at host:port (0: any free port), and the API's port answers 404 for it.
    host: str = ""
    port: int = Field(default=9464, ge=0, le=65535)
    # How often the event loop's lag is measured (a task sleeps this long and notes how
    # late it wakes); 0: not measured.
    loop_lag_interval_seconds: float = Field(default=0.25, ge=0, le=60)


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(_Section):
    http: HttpSettings = HttpSettings()
    database: DatabaseSettings = DatabaseSettings()
    telephony: TelephonySettings = TelephonySettings()
    engine: EngineSettings = EngineSettings()
    sse: SseSettings = SseSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    limits: LimitsSettings = LimitsSettings()
    contacts: ContactsSettings = ContactsSettings()
    accounts: AccountsSettings = AccountsSettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build the settings from a TOML file (optional) and ``GATEWAY_*`` overrides.

    ``path`` None means ``$GATEWAY_CONFIG`` if set, else ``./config.toml`` if present, else
    the built-in defaults. A file named explicitly must exist.
    """
    environ = dict(os.environ if environ is None else environ)
    if path is None and environ.get("GATEWAY_CONFIG"):
        path = Path(environ["GATEWAY_CONFIG"])
    elif path is None and Path("config.toml").is_file():
        path = Path("config.toml")
    data: dict[str, Any] = {}
    source = "built-in defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except OSError as exc:  # a directory, no permission...
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    for dotted, value in _environment_overrides(environ):
        _set_path(data, dotted, value)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Map each setting's environment name to its path and type:
    GATEWAY_HTTP_PORT -> (('http', 'port'), int)."""
    paths: dict[str, tuple] = {}
    for name, field in model.model_fields.items():
        here = (*prefix, name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, _Section):
            paths.update(_leaf_paths(annotation, here))
        else:
            paths[ENV_PREFIX + "_".join(here).upper()] = (here, annotation)
    return paths


def _environment_overrides(environ: dict[str, str]) -> list[tuple[tuple[str, ...], Any]]:
    leaves = _leaf_paths(Settings)
    sections = {ENV_PREFIX + name.upper() + "_" for name in Settings.model_fields}
    overrides: list[tuple[tuple[str, ...], Any]] = []
    for key, raw in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key in ENV_NOT_SETTINGS:
            continue
        if key in leaves:
            dotted, annotation = leaves[key]
            # Text settings keep the text as given (a password "1234" stays a string).
            textual = annotation in (str, Path, SecretStr)
            overrides.append((dotted, raw if textual else _parse_env_value(raw)))
        elif any(key.startswith(section) for section in sections):
            raise ConfigError(f"unknown setting {key} in the environment")
    return overrides


def _parse_env_value(raw: str) -> Any:
    """Read an environment value as a TOML value (numbers, booleans, lists); else a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set_path(data: dict[str, Any], dotted: tuple[str, ...], value: Any) -> None:
    for part in dotted[:-1]:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise ConfigError(f"setting {'.'.join(dotted)} conflicts with a non-table value")
    data[dotted[-1]] = value


def _describe(exc: ValidationError, source: str) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {key}")
        else:
            problems.append(f"setting {key}: {error['msg']}")
    return f"invalid configuration ({source}): " + "; ".join(problems)

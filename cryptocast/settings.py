"""One settings object for the whole system (env prefix ``CRYPTOCAST_``, optional ``.env``).

Every component reads its configuration from here, so a value has exactly one name and one
default. Outside dev mode the settings refuse to start with empty or well-known secrets.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK = "127.0.0.1"
DEFAULT_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "postgres", "token", "dev"})


class Mode(StrEnum):
    DEV = "dev"
    PROD = "prod"


class ExchangeName(StrEnum):
    """Where market data comes from; everything but the URLs is the same code path."""

    REPLAY = "replay"
    BINANCE = "binance"
    BINANCE_US = "binance-us"
    BINANCE_DATA = "binance-data"
    TESTNET = "testnet"


# (REST base used as python-binance's API_URL, websocket base used as STREAM_URL)
EXCHANGE_URLS: dict[ExchangeName, tuple[str, str]] = {
    ExchangeName.BINANCE: ("https://api.binance.com/api", "wss://stream.binance.com:9443/"),
    ExchangeName.BINANCE_US: ("https://api.binance.us/api", "wss://stream.binance.us:9443/"),
    ExchangeName.BINANCE_DATA: ("https://data-api.binance.vision/api", "wss://data-stream.binance.vision/"),
    ExchangeName.TESTNET: ("https://testnet.binance.vision/api", "wss://stream.testnet.binance.vision/"),
}


class ConfigurationError(RuntimeError):
    """A setting is missing or unsafe; the message says which and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRYPTOCAST_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    mode: Mode = Mode.DEV
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool = False

    # PostgreSQL: empty means "start the embedded server in data_dir/pg".
    database_url: SecretStr | None = None
    db_pool_size: int = 5
    retention_predictions_days: int | None = None  # None: keep everything
    retention_top_of_book_days: int | None = None

    # Exchange
    exchange: ExchangeName = ExchangeName.REPLAY
    exchange_rest_url: str | None = None  # override of the REST base (python-binance API_URL)
    exchange_stream_url: str | None = None  # override of the websocket base (STREAM_URL)
    replay_port: int = 9180
    replay_speed: float = 1.0
    replay_data: Path | None = None  # directory of recordings; None: the bundled ones
    # Exchange time already past when ``up`` starts a new replay timeline: enough history for a first
    # training (at least 10 days: tune/history.py) while leaving days of the recordings to come live.
    replay_history_days: float = Field(14.0, gt=0, le=28)
    pairs: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    # How far back a new pair is backfilled: days, or "all" (from the pair's first candle).
    lookback_days: Annotated[int | None, NoDecode] = 30
    # REST weight a minute each ingest node may spend (actors/budget.py): Binance allows 6,000 per
    # egress IP, so nodes that share one address (a NAT gateway) split it between them.
    rest_weight_per_minute: int = Field(6000, ge=100, le=6000)

    # Training (the scheduler runs wherever predictions are served)
    train_trials: int = Field(8, ge=1, le=64)
    train_epochs: int = Field(4, ge=1, le=50)
    train_days: int = Field(60, ge=10, le=365)  # most history a training reads (28 of them test)
    train_daily_minute: int = Field(120, ge=0, lt=1440)  # minutes after 00:00 UTC on the exchange clock
    train_stagger_minutes: int = Field(20, ge=0, le=1440)
    train_concurrency: int = Field(1, ge=1, le=64)  # trainings at once, each its own sweep (docs/scaling.md)

    # Models, serving, dashboard
    model_store_uri: str | None = None  # None: data_dir/models; any fsspec URI otherwise
    api_token: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    bind_host: str = LOOPBACK
    api_port: int = 8000
    # Requests that change state (add, remove, retrain, rollback), per client address: a burst of
    # ``api_write_burst``, refilled at ``api_writes_per_minute`` (serve/ratelimit.py).
    api_write_burst: int = Field(60, ge=1, le=100_000)
    api_writes_per_minute: float = Field(60.0, gt=0, le=1_000_000)
    # Serve's direct ingress: the API is also answered by its replica on a loopback port of its own,
    # without the proxy hop (~20x the proxy's requests/s here); the port is the replica's, found at
    # start. Local Ray only: a cluster needs RAY_SERVE_ENABLE_DIRECT_INGRESS=1 in its own environment.
    serve_direct_ingress: bool = False
    dashboard_port: int = 8050
    ray_address: str | None = None  # None: start a local Ray on loopback

    @field_validator("pairs", "cors_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("lookback_days", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> object:  # the raw input, before validation
        if isinstance(value, str) and value.strip().lower() == "all":
            return None
        if value is not None and int(value) < 1:
            raise ValueError('must be a whole number of days (at least 1) or "all"')
        return value

    @field_validator("model_store_uri")
    @classmethod
    def _store_backend_installed(cls, value: str | None) -> str | None:
        """A store in object storage needs fsspec's backend for its scheme: said at start, not at a training."""
        if value is not None:
            from cryptocast.storeuri import require_backend

            require_backend(value)
        return value

    @field_validator("pairs")
    @classmethod
    def _upper_pairs(cls, value: list[str]) -> list[str]:
        return [pair.upper() for pair in value]

    @model_validator(mode="after")
    def _refuse_open_writes_beyond_loopback(self) -> Settings:
        """Dev mode needs no token for writes: that is only safe where nobody else can connect."""
        token = self.api_token.get_secret_value().strip() if self.api_token else ""
        if self.mode is Mode.DEV and not token and not is_loopback(self.bind_host):
            raise ConfigurationError(
                f"refusing to start in dev mode bound to {self.bind_host}: without a token every write "
                "(add, remove, purge, retrain) is open to anyone who can reach it; set CRYPTOCAST_API_TOKEN, "
                f"or bind loopback (CRYPTOCAST_BIND_HOST={LOOPBACK}), or use CRYPTOCAST_MODE=prod"
            )
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        """In prod mode every secret this process is given must be real; which secrets a process needs
        is checked where they are used (:meth:`require_api_token`, :meth:`require_database_url`), so
        the dashboard or an ingestion pod runs without the API token it never sees."""
        if self.mode is Mode.DEV:
            return self
        problems = []
        if self.api_token is not None and _weak_token(self.api_token.get_secret_value()):
            problems.append("CRYPTOCAST_API_TOKEN must be a random value of at least 16 characters")
        if self.database_url is not None:
            from sqlalchemy.engine import make_url

            password = make_url(self.database_url.get_secret_value()).password or ""
            if password.lower() in DEFAULT_SECRETS:
                problems.append("the password in CRYPTOCAST_DATABASE_URL is empty or a well-known default")
        if problems:
            raise ConfigurationError(
                "refusing to start in prod mode: " + "; ".join(problems) + " (or set CRYPTOCAST_MODE=dev)"
            )
        return self

    def require_api_token(self) -> None:
        """The API in prod mode serves writes only behind a token: refuse to start without one."""
        if self.mode is Mode.PROD and self.api_token is None:
            raise ConfigurationError(
                "refusing to serve the API in prod mode: CRYPTOCAST_API_TOKEN must be set to a random "
                "value of at least 16 characters (or set CRYPTOCAST_MODE=dev)"
            )

    def require_database_url(self) -> None:
        """Prod mode uses a managed PostgreSQL; the embedded server is for dev mode only."""
        if self.mode is Mode.PROD and self.database_url is None:
            raise ConfigurationError(
                "refusing to start in prod mode: CRYPTOCAST_DATABASE_URL must point at a managed "
                "PostgreSQL (the embedded one is dev only; or set CRYPTOCAST_MODE=dev)"
            )

    # --- derived values -------------------------------------------------------------------------
    @property
    def is_replay(self) -> bool:
        return self.exchange is ExchangeName.REPLAY and self.exchange_rest_url is None

    @property
    def rest_url(self) -> str:
        """REST base in python-binance's ``API_URL`` form (``.../api``)."""
        if self.exchange_rest_url:
            return self.exchange_rest_url.rstrip("/")
        if self.exchange is ExchangeName.REPLAY:
            return f"http://{LOOPBACK}:{self.replay_port}/api"
        return EXCHANGE_URLS[self.exchange][0]

    @property
    def stream_url(self) -> str:
        """Websocket base in python-binance's ``STREAM_URL`` form (ends with ``/``)."""
        if self.exchange_stream_url:
            return self.exchange_stream_url.rstrip("/") + "/"
        if self.exchange is ExchangeName.REPLAY:
            return f"ws://{LOOPBACK}:{self.replay_port}/"
        return EXCHANGE_URLS[self.exchange][1]

    @property
    def lookback_ms(self) -> int | None:
        """How far back a new pair is backfilled; None: from its first candle."""
        return None if self.lookback_days is None else self.lookback_days * 86_400_000

    @property
    def model_store(self) -> str:
        return self.model_store_uri or str((self.data_dir / "models").resolve())

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"


def _weak_token(token: str) -> bool:
    return token.strip().lower() in DEFAULT_SECRETS or len(token.strip()) < 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine alone: ``localhost``, 127.0.0.0/8 or ::1."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

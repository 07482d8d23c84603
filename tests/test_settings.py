"""Settings: one object, env-driven, and no default secrets outside dev mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cryptocast.settings import EXCHANGE_URLS, ConfigurationError, ExchangeName, Settings


def test_dev_defaults_bind_loopback_and_use_the_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CRYPTOCAST_MODE", "CRYPTOCAST_DATABASE_URL", "CRYPTOCAST_EXCHANGE"):
        monkeypatch.delenv(key, raising=False)
    s = Settings(_env_file=None)
    assert s.bind_host == "127.0.0.1"
    assert s.exchange is ExchangeName.REPLAY and s.is_replay
    assert s.rest_url == f"http://127.0.0.1:{s.replay_port}/api"
    assert s.stream_url == f"ws://127.0.0.1:{s.replay_port}/"
    assert s.database_url is None


def test_env_prefix_and_csv_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOCAST_PAIRS", "btcusdt, ethbtc")
    monkeypatch.setenv("CRYPTOCAST_EXCHANGE", "binance-us")
    s = Settings(_env_file=None)
    assert s.pairs == ["BTCUSDT", "ETHBTC"]
    assert s.rest_url == EXCHANGE_URLS[ExchangeName.BINANCE_US][0]
    assert not s.is_replay


def test_the_rest_weight_a_node_spends_is_set_and_never_above_binances_per_ip_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRYPTOCAST_REST_WEIGHT_PER_MINUTE", "2000")  # three nodes behind one address
    assert Settings(_env_file=None).rest_weight_per_minute == 2000
    monkeypatch.setenv("CRYPTOCAST_REST_WEIGHT_PER_MINUTE", "6001")
    with pytest.raises(ValidationError, match="rest_weight_per_minute"):
        Settings(_env_file=None)


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("CRYPTOCAST_API_PORT=9001\n")
    monkeypatch.delenv("CRYPTOCAST_API_PORT", raising=False)
    assert Settings(_env_file=env).api_port == 9001


@pytest.mark.parametrize(
    ("token", "url", "message"),
    [
        ("changeme", "postgresql://u:s3cret-Long-Passw0rd@db/x", "CRYPTOCAST_API_TOKEN"),
        ("short-token", None, "CRYPTOCAST_API_TOKEN"),
        ("a" * 32, "postgresql://u:postgres@db/x", "password in CRYPTOCAST_DATABASE_URL"),
        ("a" * 32, "postgresql://u@db/x", "password in CRYPTOCAST_DATABASE_URL"),
    ],
)
def test_prod_refuses_default_or_empty_secrets(token: str | None, url: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings(_env_file=None, mode="prod", api_token=token, database_url=url)


def test_prod_checks_each_secret_where_it_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard and ingestion pods get no API token, the dashboard no database URL: they start;
    the API without a token and anything opening the database without a URL refuse."""
    for key in ("CRYPTOCAST_API_TOKEN", "CRYPTOCAST_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    bare = Settings(_env_file=None, mode="prod")
    with pytest.raises(ConfigurationError, match="CRYPTOCAST_API_TOKEN must be set"):
        bare.require_api_token()
    with pytest.raises(ConfigurationError, match="CRYPTOCAST_DATABASE_URL must point"):
        bare.require_database_url()
    Settings(_env_file=None, mode="dev").require_api_token()  # dev mode: writes open on loopback
    Settings(_env_file=None, mode="dev").require_database_url()  # dev mode: the embedded server


def test_prod_accepts_real_secrets() -> None:
    s = Settings(
        _env_file=None,
        mode="prod",
        api_token="x" * 24,
        database_url="postgresql://u:s3cret-Long-Passw0rd@db/x",
    )
    assert s.api_token is not None and "x" * 24 not in repr(s)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "api.example.com"])
def test_dev_mode_beyond_loopback_without_a_token_refuses_to_start(host: str) -> None:
    with pytest.raises(ConfigurationError, match=f"dev mode bound to {host}: without a token every write"):
        Settings(_env_file=None, mode="dev", bind_host=host, api_token=None)
    with pytest.raises(ConfigurationError, match="CRYPTOCAST_API_TOKEN"):
        Settings(_env_file=None, mode="dev", bind_host=host, api_token="  ")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_dev_mode_on_loopback_needs_no_token(host: str) -> None:
    assert Settings(_env_file=None, mode="dev", bind_host=host, api_token=None).bind_host == host


def test_dev_mode_beyond_loopback_with_a_token_starts() -> None:
    s = Settings(_env_file=None, mode="dev", bind_host="0.0.0.0", api_token="dev-token-for-the-lan")
    assert s.bind_host == "0.0.0.0"

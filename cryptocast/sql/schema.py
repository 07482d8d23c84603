"""The PostgreSQL schema as SQLAlchemy Core tables (the migrations create exactly this).

All times are ``timestamptz`` in UTC. Prices and volumes are ``double precision``: Binance sends at
most 8 decimals and prices below 10^7, well inside float64's 15 significant digits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql.elements import ColumnElement

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

SYMBOL_STATUSES = ("new", "backfilling", "live", "paused", "halted", "error", "removed")
PROVENANCES = ("rest", "websocket", "repair")
MODEL_STATUSES = ("candidate", "champion", "shadow", "retired", "failed")
COMMAND_KINDS = (
    "add_pair",
    "remove_pair",
    "purge_pair",
    "pause_pair",
    "resume_pair",
    "retrain",
    "recalibrate",
    "rollback",
)
COMMAND_STATUSES = ("pending", "running", "done", "failed")
TRAINING_KINDS = ("retrain", "recalibrate")  # at most one of these open per pair (a partial unique index)
OPEN_STATUSES = ("pending", "running")
GAP_KINDS = ("exchange_hole", "ingestion_gap")

# NOTIFY channels: news travels down the data flow, commands up it.
CANDLES_CHANNEL = "cryptocast_candles"
PREDICTIONS_CHANNEL = "cryptocast_predictions"  # a pair's forecasts for a minute were stored
COMMANDS_CHANNEL = "cryptocast_commands"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _now() -> ColumnElement[datetime]:
    return func.now()


symbols = Table(
    "symbols",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("exchange", String(32), nullable=False, server_default="binance"),
    Column("symbol", String(32), nullable=False),
    Column("base_asset", String(16), nullable=False),
    Column("quote_asset", String(16), nullable=False),
    Column("status", String(16), nullable=False, server_default="new"),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    Column("last_candle_time", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("derived_fields", ARRAY(Text), nullable=False, server_default="{}"),
    Column("backfill_done", BigInteger, nullable=False, server_default="0"),
    Column("backfill_total", BigInteger, nullable=False, server_default="0"),
    Column("backfill_eta_s", Float),
    Column("restarts", Integer, nullable=False, server_default="0"),
    Column("heartbeat_at", DateTime(timezone=True)),
    UniqueConstraint("exchange", "symbol"),
    CheckConstraint(_in("status", SYMBOL_STATUSES), name="status"),
    CheckConstraint("symbol ~ '^[A-Z0-9_]{2,32}$'", name="symbol_format"),
)

# The two high-volume tables carry no foreign key: a per-row RI trigger would halve COPY throughput.
# The writer checks the pair once per batch instead, and purging a pair deletes its rows explicitly.
price_history = Table(
    "price_history",
    metadata,
    Column("symbol_id", Integer, nullable=False),
    Column("open_time", DateTime(timezone=True), nullable=False),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Column("close_time", DateTime(timezone=True), nullable=False),
    Column("quote_volume", Float, nullable=False),
    Column("trades", BigInteger, nullable=False),
    Column("taker_buy_base", Float, nullable=False),
    Column("taker_buy_quote", Float, nullable=False),
    Column("provenance", String(12), nullable=False),
    Column("derived_fields", ARRAY(Text), nullable=False, server_default="{}"),
    Column("ingested_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    PrimaryKeyConstraint("symbol_id", "open_time"),
    CheckConstraint("low <= least(open, close) AND greatest(open, close) <= high", name="ohlc_order"),
    CheckConstraint("low > 0", name="positive_price"),
    CheckConstraint(
        "volume >= 0 AND quote_volume >= 0 AND trades >= 0 AND taker_buy_base >= 0 AND taker_buy_quote >= 0",
        name="non_negative_volumes",
    ),
    CheckConstraint("close_time > open_time", name="close_after_open"),
    CheckConstraint(_in("provenance", PROVENANCES), name="provenance"),
)

top_of_book = Table(
    "top_of_book",
    metadata,
    Column("symbol_id", Integer, nullable=False),
    Column("minute", DateTime(timezone=True), nullable=False),
    Column("bid_price", Float, nullable=False),
    Column("bid_qty", Float, nullable=False),
    Column("ask_price", Float, nullable=False),
    Column("ask_qty", Float, nullable=False),
    Column("derived", Boolean, nullable=False, server_default="false"),
    Column("ingested_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    PrimaryKeyConstraint("symbol_id", "minute"),
    CheckConstraint("bid_price > 0 AND ask_price >= bid_price", name="not_crossed"),
    CheckConstraint("bid_qty >= 0 AND ask_qty >= 0", name="non_negative_qty"),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("symbol_id", Integer, ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_uri", Text),
    Column("trained_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    Column("data_start", DateTime(timezone=True)),
    Column("data_end", DateTime(timezone=True)),
    Column("hyperparameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("metrics", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(16), nullable=False, server_default="candidate"),
    Column("status_reason", Text),
    UniqueConstraint("symbol_id", "version"),
    CheckConstraint(_in("status", MODEL_STATUSES), name="status"),
    Index(None, "symbol_id", "status"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("symbol_id", Integer, ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("origin_time", DateTime(timezone=True), nullable=False),
    Column("horizon", Integer, nullable=False),  # minutes; target time = origin_time + horizon
    Column("predicted", Float, nullable=False),
    Column("lower_80", Float),
    Column("upper_80", Float),
    Column("lower_95", Float),
    Column("upper_95", Float),
    Column("served", Boolean, nullable=False),  # champion (served) or shadow
    Column("late", Boolean, nullable=False, server_default="false"),
    Column("made_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    PrimaryKeyConstraint("symbol_id", "model_id", "origin_time", "horizon"),
    CheckConstraint("horizon > 0", name="positive_horizon"),
    CheckConstraint(
        "lower_95 IS NULL OR (lower_95 <= lower_80 AND lower_80 <= predicted "
        "AND predicted <= upper_80 AND upper_80 <= upper_95)",
        name="nested_intervals",
    ),
    Index(None, "symbol_id", "origin_time"),
)

commands = Table(
    "commands",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("symbol", String(32)),
    Column("exchange", String(32), nullable=False, server_default="binance"),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(12), nullable=False, server_default="pending"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("result", JSONB),
    Column("error", Text),
    Column("progress", JSONB),  # while running: phase, trial i of n, best score so far, elapsed, ETA
    # runs begun (an interrupted one is retried)
    Column("attempts", Integer, nullable=False, server_default="0"),
    CheckConstraint(_in("kind", COMMAND_KINDS), name="kind"),
    CheckConstraint(_in("status", COMMAND_STATUSES), name="status"),
    Index(None, "status", "created_at", postgresql_where=text("status IN ('pending', 'running')")),
    Index(None, "symbol", "kind"),  # a pair's trainings: its last, its open one
    Index(
        "uq_commands_one_open_training",
        "exchange",
        "symbol",
        unique=True,
        postgresql_where=text(f"{_in('kind', TRAINING_KINDS)} AND {_in('status', OPEN_STATUSES)}"),
    ),
)

# The completeness ledger: spans of missing minutes, told apart by cause. An exchange hole (the
# exchange itself has no candle) is final and never re-requested; an ingestion gap is ours to repair.
gaps = Table(
    "gaps",
    metadata,
    Column("symbol_id", Integer, ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=False),  # first missing minute
    Column("end_time", DateTime(timezone=True), nullable=False),  # last missing minute
    Column("kind", String(16), nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    Column("resolved_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("symbol_id", "start_time"),
    CheckConstraint("end_time >= start_time", name="ordered"),
    CheckConstraint(_in("kind", GAP_KINDS), name="kind"),
)

# The training scheduler's plan per pair, written by the scheduler alone (the one source of truth):
# readers show it, nobody recomputes it.
training_schedule = Table(
    "training_schedule",
    metadata,
    Column("symbol_id", Integer, ForeignKey("symbols.id", ondelete="CASCADE"), primary_key=True),
    Column("next_at", DateTime(timezone=True)),  # the next daily slot, exchange time
    Column("next_kind", String(16)),  # what that slot will run: retrain, or recalibrate without one
    Column("last_slot", DateTime(timezone=True)),  # the newest daily slot already acted on
    Column("history_days", Float),  # days of candles the pair has for training
    Column("needs_days", Float),  # more days needed before an LSTM can be trained (NULL: enough)
    Column("note", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_now()),
)

# Cumulative per-pair counts and levels of ingestion and training (``sql/pairmetrics.py``): writers
# add what they counted since their last write, so a restarted writer never takes a total back.
pair_metrics = Table(
    "pair_metrics",
    metadata,
    Column("symbol_id", Integer, ForeignKey("symbols.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", Float, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    PrimaryKeyConstraint("symbol_id", "name"),
)

# Liveness of the long-running services that consume command rows, so a reader can tell a command
# that waits for a running consumer from one that nothing will pick up.
services = Table(
    "services",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False, server_default=_now()),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)

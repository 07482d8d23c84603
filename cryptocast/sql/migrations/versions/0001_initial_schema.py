"""initial schema

Revision ID: 0001
Revises:
Tables for pairs, candles, top of book, the completeness ledger, models, predictions and
commands, plus a trigger that announces every new command row on the commands channel.

Create Date: 2026-11-27 07:26:45.033581
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=True),
        sa.Column("exchange", sa.String(length=32), server_default="binance", nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=12), server_default="pending", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('add_pair', 'remove_pair', 'purge_pair', 'pause_pair', 'resume_pair', 'retrain', 'rollback')",
            name=op.f("ck_commands_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed')", name=op.f("ck_commands_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
    )
    op.create_index(
        op.f("ix_commands_status_created_at"),
        "commands",
        ["status", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.create_table(
        "symbols",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exchange", sa.String(length=32), server_default="binance", nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("base_asset", sa.String(length=16), nullable=False),
        sa.Column("quote_asset", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="new", nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_candle_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("derived_fields", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("backfill_done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("backfill_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("backfill_eta_s", sa.Float(), nullable=True),
        sa.Column("restarts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('new', 'backfilling', 'live', 'paused', 'halted', 'error', 'removed')",
            name=op.f("ck_symbols_status"),
        ),
        sa.CheckConstraint("symbol ~ '^[A-Z0-9_]{2,32}$'", name=op.f("ck_symbols_symbol_format")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_symbols")),
        sa.UniqueConstraint("exchange", "symbol", name=op.f("uq_symbols_exchange_symbol")),
    )
    op.create_table(
        "gaps",
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('exchange_hole', 'ingestion_gap')", name=op.f("ck_gaps_kind")),
        sa.CheckConstraint("end_time >= start_time", name=op.f("ck_gaps_ordered")),
        sa.ForeignKeyConstraint(
            ["symbol_id"], ["symbols.id"], name=op.f("fk_gaps_symbol_id_symbols"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("symbol_id", "start_time", name=op.f("pk_gaps")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=True),
        sa.Column("trained_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("data_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "hyperparameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="candidate", nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'champion', 'shadow', 'retired', 'failed')",
            name=op.f("ck_models_status"),
        ),
        sa.ForeignKeyConstraint(
            ["symbol_id"], ["symbols.id"], name=op.f("fk_models_symbol_id_symbols"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("symbol_id", "version", name=op.f("uq_models_symbol_id_version")),
    )
    op.create_index(op.f("ix_models_symbol_id_status"), "models", ["symbol_id", "status"], unique=False)
    op.create_table(
        "price_history",
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("open_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=False),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quote_volume", sa.Float(), nullable=False),
        sa.Column("trades", sa.BigInteger(), nullable=False),
        sa.Column("taker_buy_base", sa.Float(), nullable=False),
        sa.Column("taker_buy_quote", sa.Float(), nullable=False),
        sa.Column("provenance", sa.String(length=12), nullable=False),
        sa.Column("derived_fields", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "provenance IN ('rest', 'websocket', 'repair')", name=op.f("ck_price_history_provenance")
        ),
        sa.CheckConstraint("close_time > open_time", name=op.f("ck_price_history_close_after_open")),
        sa.CheckConstraint(
            "low <= least(open, close) AND greatest(open, close) <= high",
            name=op.f("ck_price_history_ohlc_order"),
        ),
        sa.CheckConstraint("low > 0", name=op.f("ck_price_history_positive_price")),
        sa.CheckConstraint(
            "volume >= 0 AND quote_volume >= 0 AND trades >= 0 AND taker_buy_base >= 0 AND taker_buy_quote >= 0",
            name=op.f("ck_price_history_non_negative_volumes"),
        ),
        sa.PrimaryKeyConstraint("symbol_id", "open_time", name=op.f("pk_price_history")),
    )
    op.create_table(
        "top_of_book",
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bid_price", sa.Float(), nullable=False),
        sa.Column("bid_qty", sa.Float(), nullable=False),
        sa.Column("ask_price", sa.Float(), nullable=False),
        sa.Column("ask_qty", sa.Float(), nullable=False),
        sa.Column("derived", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "bid_price > 0 AND ask_price >= bid_price", name=op.f("ck_top_of_book_not_crossed")
        ),
        sa.CheckConstraint("bid_qty >= 0 AND ask_qty >= 0", name=op.f("ck_top_of_book_non_negative_qty")),
        sa.PrimaryKeyConstraint("symbol_id", "minute", name=op.f("pk_top_of_book")),
    )
    op.create_table(
        "predictions",
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("origin_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("predicted", sa.Float(), nullable=False),
        sa.Column("lower_80", sa.Float(), nullable=True),
        sa.Column("upper_80", sa.Float(), nullable=True),
        sa.Column("lower_95", sa.Float(), nullable=True),
        sa.Column("upper_95", sa.Float(), nullable=True),
        sa.Column("served", sa.Boolean(), nullable=False),
        sa.Column("late", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("horizon > 0", name=op.f("ck_predictions_positive_horizon")),
        sa.CheckConstraint(
            "lower_95 IS NULL OR (lower_95 <= lower_80 AND lower_80 <= predicted AND predicted <= upper_80 AND upper_80 <= upper_95)",
            name=op.f("ck_predictions_nested_intervals"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_predictions_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["symbol_id"], ["symbols.id"], name=op.f("fk_predictions_symbol_id_symbols"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "symbol_id", "model_id", "origin_time", "horizon", name=op.f("pk_predictions")
        ),
    )
    op.create_index(
        op.f("ix_predictions_symbol_id_origin_time"),
        "predictions",
        ["symbol_id", "origin_time"],
        unique=False,
    )

    op.execute(
        """
        CREATE FUNCTION cryptocast_notify_command() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('cryptocast_commands', json_build_object(
                'id', NEW.id, 'kind', NEW.kind, 'symbol', NEW.symbol)::text);
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER commands_notify AFTER INSERT ON commands "
        "FOR EACH ROW EXECUTE FUNCTION cryptocast_notify_command()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS commands_notify ON commands")
    op.execute("DROP FUNCTION IF EXISTS cryptocast_notify_command()")
    op.drop_index(op.f("ix_predictions_symbol_id_origin_time"), table_name="predictions")
    op.drop_table("predictions")
    op.drop_table("top_of_book")
    op.drop_table("price_history")
    op.drop_index(op.f("ix_models_symbol_id_status"), table_name="models")
    op.drop_table("models")
    op.drop_table("gaps")
    op.drop_table("symbols")
    op.drop_index(
        op.f("ix_commands_status_created_at"),
        table_name="commands",
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.drop_table("commands")

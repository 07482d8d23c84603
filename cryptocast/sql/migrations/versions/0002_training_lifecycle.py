"""training lifecycle

Revision ID: 0002
Revises: 0001
Commands carry progress and attempts, a ``recalibrate`` kind exists, and at most one training
command (retrain or recalibrate) is open per pair. The scheduler's plan per pair
(``training_schedule``) and the consumers' heartbeats (``services``) become tables.

Create Date: 2026-12-05 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = (
    "kind IN ('add_pair', 'remove_pair', 'purge_pair', 'pause_pair', 'resume_pair', 'retrain', 'rollback')"
)
NEW_KINDS = (
    "kind IN ('add_pair', 'remove_pair', 'purge_pair', 'pause_pair', 'resume_pair', 'retrain', 'recalibrate', "
    "'rollback')"
)
ONE_OPEN = "kind IN ('retrain', 'recalibrate') AND status IN ('pending', 'running')"


def upgrade() -> None:
    op.add_column("commands", sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("commands", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.drop_constraint(op.f("ck_commands_kind"), "commands", type_="check")
    op.create_check_constraint(op.f("ck_commands_kind"), "commands", NEW_KINDS)
    # Before 0002 nothing consumed retrain rows: every open one but the newest per pair is ended.
    op.execute(
        f"""
        UPDATE commands c SET status = 'failed', finished_at = now(),
               error = 'superseded by a newer retrain request of the same pair'
        WHERE {ONE_OPEN} AND EXISTS (
            SELECT 1 FROM commands n WHERE n.exchange = c.exchange AND n.symbol = c.symbol
            AND n.kind IN ('retrain', 'recalibrate') AND n.status IN ('pending', 'running') AND n.id > c.id)
        """
    )
    op.create_index(op.f("ix_commands_symbol_kind"), "commands", ["symbol", "kind"], unique=False)
    op.create_index(
        "uq_commands_one_open_training",
        "commands",
        ["exchange", "symbol"],
        unique=True,
        postgresql_where=sa.text(ONE_OPEN),
    )
    op.create_table(
        "training_schedule",
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_kind", sa.String(length=16), nullable=True),
        sa.Column("last_slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("history_days", sa.Float(), nullable=True),
        sa.Column("needs_days", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["symbol_id"],
            ["symbols.id"],
            name=op.f("fk_training_schedule_symbol_id_symbols"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("symbol_id", name=op.f("pk_training_schedule")),
    )
    op.create_table(
        "services",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "heartbeat_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_services")),
    )


def downgrade() -> None:
    op.drop_table("services")
    op.drop_table("training_schedule")
    op.drop_index("uq_commands_one_open_training", table_name="commands", postgresql_where=sa.text(ONE_OPEN))
    op.drop_index(op.f("ix_commands_symbol_kind"), table_name="commands")
    op.execute("DELETE FROM commands WHERE kind = 'recalibrate'")
    op.drop_constraint(op.f("ck_commands_kind"), "commands", type_="check")
    op.create_check_constraint(op.f("ck_commands_kind"), "commands", OLD_KINDS)
    op.drop_column("commands", "attempts")
    op.drop_column("commands", "progress")

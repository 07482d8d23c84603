"""pair metrics

Revision ID: 0003
Revises: 0002
Cumulative per-pair counts and levels of ingestion and training (``pair_metrics``), written by the
pair actors and the training scheduler and read by ``GET /metrics``.

Create Date: 2026-12-06 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pair_metrics",
        sa.Column("symbol_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["symbol_id"],
            ["symbols.id"],
            name=op.f("fk_pair_metrics_symbol_id_symbols"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("symbol_id", "name", name=op.f("pk_pair_metrics")),
    )


def downgrade() -> None:
    op.drop_table("pair_metrics")

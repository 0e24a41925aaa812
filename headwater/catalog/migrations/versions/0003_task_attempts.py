"""Task attempts: the write-ahead record of each job a task component starts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "task_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "component_id",
            sa.String(32),
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("task_type", sa.String(200), nullable=False),
        sa.Column("task_type_version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("resource_meta", sa.LargeBinary, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint(
            "component_id", "run_id", "attempt", name="uq_task_attempts_run_attempt"
        ),
    )
    op.create_index("ix_task_attempts_component_id", "task_attempts", ["component_id"])


def downgrade() -> None:
    op.drop_index("ix_task_attempts_component_id", "task_attempts")
    op.drop_table("task_attempts")

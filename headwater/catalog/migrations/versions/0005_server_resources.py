"""The server's resource model (data services, dataflows, connections, component definitions)
and its runs (server runs and their log lines).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ACTIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "data_services",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "dataflows",
        sa.Column(
            "data_service",
            sa.String(63),
            sa.ForeignKey("data_services.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "connections",
        sa.Column(
            "data_service",
            sa.String(63),
            sa.ForeignKey("data_services.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("credential", sa.String(100), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "component_definitions",
        sa.Column("data_service", sa.String(63), primary_key=True),
        sa.Column("dataflow", sa.String(63), primary_key=True),
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column(
            "component_id",
            sa.String(32),
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("connection", sa.String(63), nullable=True),
        sa.Column("input_id", sa.String(63), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["data_service", "dataflow"],
            ["dataflows.data_service", "dataflows.id"],
            ondelete="CASCADE",
            name="fk_component_definitions_dataflow",
        ),
    )
    op.create_table(
        "server_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "component_id",
            sa.String(32),
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("requested_by", sa.String(32), nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_server_runs_component_id", "server_runs", ["component_id"])
    op.create_index(
        "uq_server_runs_active",
        "server_runs",
        ["component_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_table(
        "server_run_logs",
        sa.Column(
            "server_run_id",
            sa.Integer,
            sa.ForeignKey("server_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_run_logs")
    op.drop_index("uq_server_runs_active", "server_runs")
    op.drop_index("ix_server_runs_component_id", "server_runs")
    op.drop_table("server_runs")
    op.drop_table("component_definitions")
    op.drop_table("connections")
    op.drop_table("dataflows")
    op.drop_table("data_services")

"""Dataflows as code: a component's inputs as rows (a transform reads several), its schedule,
partition-level lineage, a write connector's marks, and which run triggered a server run.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "component_inputs",
        sa.Column("data_service", sa.String(63), primary_key=True),
        sa.Column("dataflow", sa.String(63), primary_key=True),
        sa.Column("component", sa.String(63), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("input", sa.String(63), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_service", "dataflow", "component"],
            [
                "component_definitions.data_service",
                "component_definitions.dataflow",
                "component_definitions.id",
            ],
            ondelete="CASCADE",
            name="fk_component_inputs_component",
        ),
    )
    op.create_index(
        "ix_component_inputs_input", "component_inputs", ["data_service", "dataflow", "input"]
    )
    op.execute(
        "INSERT INTO component_inputs (data_service, dataflow, component, position, input) "
        "SELECT data_service, dataflow, id, 0, input_id FROM component_definitions "
        "WHERE input_id IS NOT NULL"
    )
    with op.batch_alter_table("component_definitions") as batch:
        batch.drop_column("input_id")
        batch.add_column(sa.Column("schedule", sa.JSON, nullable=True))
    op.create_table(
        "partition_lineage",
        sa.Column(
            "component_id",
            sa.String(32),
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("partition", sa.Text, primary_key=True),
        sa.Column(
            "input_component_id",
            sa.String(32),
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("input_partition", sa.Text, primary_key=True),
        sa.Column("input_fingerprint", sa.Text, nullable=False),
    )
    op.create_table(
        "write_marks",
        sa.Column(
            "component_id",
            sa.String(32),
            sa.ForeignKey("components.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("partition", sa.Text, primary_key=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("written_at", TS, nullable=False),
    )
    with op.batch_alter_table("server_runs") as batch:
        batch.add_column(sa.Column("triggered_by", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("server_runs") as batch:
        batch.drop_column("triggered_by")
    op.drop_table("write_marks")
    op.drop_table("partition_lineage")
    with op.batch_alter_table("component_definitions") as batch:
        batch.drop_column("schedule")
        batch.add_column(sa.Column("input_id", sa.String(63), nullable=True))
    op.execute(
        "UPDATE component_definitions SET input_id = (SELECT input FROM component_inputs i "
        "WHERE i.data_service = component_definitions.data_service "
        "AND i.dataflow = component_definitions.dataflow "
        "AND i.component = component_definitions.id AND i.position = 0)"
    )
    op.drop_index("ix_component_inputs_input", "component_inputs")
    op.drop_table("component_inputs")

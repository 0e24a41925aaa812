"""Catalog tables (SQLAlchemy Core). Migrations in `migrations/versions` create and change them;
a test checks that the migrated database and these definitions agree."""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime.datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("catalog timestamps must be timezone-aware")
        return value.astimezone(datetime.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)  # type: ignore[no-any-return]
        return value.astimezone(datetime.UTC)  # type: ignore[no-any-return]


metadata = sa.MetaData()

components = sa.Table(
    "components",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("source_ref", sa.Text, nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("code_version", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Partitions with equal schemas share one row: 10,000 partitions usually have one schema.
schemas = sa.Table(
    "schemas",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("arrow", sa.LargeBinary, nullable=False),
)

partitions = sa.Table(
    "partitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "component_id",
        sa.String(32),
        sa.ForeignKey("components.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("code_version", sa.String(16), nullable=False),
    sa.Column("schema_id", sa.String(32), sa.ForeignKey("schemas.id"), nullable=False),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("byte_size", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("read_seconds", sa.Float, nullable=False),
    sa.Column("committed_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("component_id", "name", name="uq_partitions_component_name"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "component_id",
        sa.String(32),
        sa.ForeignKey("components.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("executor", sa.String(16), nullable=False),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("added", sa.Integer, nullable=False, default=0),
    sa.Column("changed", sa.Integer, nullable=False, default=0),
    sa.Column("removed", sa.Integer, nullable=False, default=0),
    sa.Column("unchanged", sa.Integer, nullable=False, default=0),
    sa.Column("landed", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=True),
)

run_failures = sa.Table(
    "run_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("partition", sa.Text, nullable=True),
    sa.Column("function", sa.String(64), nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
)

# One component, one writer: a refresh holds its component's lease row.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column(
        "component_id",
        sa.String(32),
        sa.ForeignKey("components.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# A stream landed in a component: its last commit (sequence number, time) and the offset the
# subject reported with it, written in the same transaction as that commit's partition.
stream_checkpoints = sa.Table(
    "stream_checkpoints",
    metadata,
    sa.Column(
        "component_id",
        sa.String(32),
        sa.ForeignKey("components.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("offset", sa.JSON, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# A task component's jobs, one row per attempt. The row is written BEFORE the connector's
# `create` is called (the write-ahead record) and its `resource_meta` right after, so a runner
# that dies in between leaves a trace the next run resolves instead of starting a second job.
# States: creating, running (open); landed, succeeded, failed, cancelled, not_started, reset.
task_attempts = sa.Table(
    "task_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "component_id",
        sa.String(32),
        sa.ForeignKey("components.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("task_type", sa.String(200), nullable=False),
    sa.Column("task_type_version", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("resource_meta", sa.LargeBinary, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("component_id", "run_id", "attempt", name="uq_task_attempts_run_attempt"),
)

# Access keys for the server's API (headwater.keys). The secret key itself is never stored:
# `signing_key` is its one-way derivation (what requests are signed with), encrypted with the
# server key (AES-GCM) whose id is `key_id`. `data_services` null means every data service.
access_keys = sa.Table(
    "access_keys",
    metadata,
    sa.Column("access_key", sa.String(32), primary_key=True),
    sa.Column("signing_key", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("read_only", sa.Boolean, nullable=False),
    sa.Column("data_services", sa.JSON, nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

# Nonces of accepted requests, kept until their timestamp leaves the clock-skew window, so a
# replayed request is refused by every server worker sharing this catalog.
auth_nonces = sa.Table(
    "auth_nonces",
    metadata,
    sa.Column("access_key", sa.String(32), primary_key=True),
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# The credentials vault (headwater.vault): named secrets for connectors, AES-GCM encrypted
# with the server key whose id is `key_id`, the name bound in as associated data.
credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# -- the server's resource model (headwater.catalog.resources) --------------------------------
# Data services hold dataflows and connections; dataflows hold component definitions. A
# definition names the catalog `components` row that holds its partitions, runs and lease
# (`component_id`); that row is named `<data service>__<dataflow>__<component>`.

data_services = sa.Table(
    "data_services",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

dataflows = sa.Table(
    "dataflows",
    metadata,
    sa.Column(
        "data_service",
        sa.String(63),
        sa.ForeignKey("data_services.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# A connection's credential is a vault name relative to its data service: the secret is
# stored as `<data service>/<credential>` in `credentials`.
connections = sa.Table(
    "connections",
    metadata,
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
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# `definition` is the kind's declaration as JSON (code text, settings, inline inputs);
# `schedule`, when the server refreshes it by itself (an interval or a cron expression).
component_definitions = sa.Table(
    "component_definitions",
    metadata,
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
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("schedule", sa.JSON(none_as_null=True), nullable=True),
    sa.ForeignKeyConstraint(
        ["data_service", "dataflow"],
        ["dataflows.data_service", "dataflows.id"],
        ondelete="CASCADE",
        name="fk_component_definitions_dataflow",
    ),
)

# The edges of a dataflow's graph: the components (of the same dataflow) a component reads, in
# the order declared (a processor or write connector has one input, a transform one or more).
component_inputs = sa.Table(
    "component_inputs",
    metadata,
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
    sa.Index("ix_component_inputs_input", "data_service", "dataflow", "input"),
)

# Partition-level lineage: which input partitions (at which fingerprint) a transform's
# partition was computed from. Written in the same transaction as the partition it describes.
partition_lineage = sa.Table(
    "partition_lineage",
    metadata,
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

# What a write connector has written: each upstream partition at the fingerprint it had, so
# the next write sends only what changed since (and removes what was removed upstream).
write_marks = sa.Table(
    "write_marks",
    metadata,
    sa.Column(
        "component_id",
        sa.String(32),
        sa.ForeignKey("components.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("partition", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("written_at", UTCDateTime, nullable=False),
)

# A run asked for through the server. It exists from the request on ("queued"), before the
# engine's `runs` row does, so the API answers 202 with its id at once; `run_id` links the
# engine's run once it started. At most one queued or running server run per component (the
# partial unique index), so a second trigger is refused on every server sharing the catalog.
server_runs = sa.Table(
    "server_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "component_id",
        sa.String(32),
        sa.ForeignKey("components.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("requested_by", sa.String(32), nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("triggered_by", sa.Integer, nullable=True),  # the upstream server run
    sa.Index(
        "uq_server_runs_active",
        "component_id",
        unique=True,
        sqlite_where=sa.text("status IN ('queued', 'running')"),
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    ),
)

# A server run's log lines (credentials scrubbed before they get here).
server_run_logs = sa.Table(
    "server_run_logs",
    metadata,
    sa.Column(
        "server_run_id",
        sa.Integer,
        sa.ForeignKey("server_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

"""The catalog on SQLite and PostgreSQL: migrations, commits, runs and leases."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Iterator

import pyarrow as pa
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from headwater.catalog import Catalog, Failure
from headwater.catalog.lease import HOST, Lease
from headwater.catalog.tables import metadata
from headwater.errors import CatalogError, ComponentBusyError, NotFoundError

T0 = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(catalog_url)
    yield cat
    cat.close()


def make_component(catalog: Catalog, name: str = "c"):  # type: ignore[no-untyped-def]
    return catalog.ensure_component(
        name, kind="partitioned", source_ref="x.py", settings={}, code_version="v1", now=T0
    )


def commit(catalog: Catalog, component_id: str, name: str, files: list[str], run_id: int = 1):
    return catalog.commit_partition(
        component_id,
        name=name,
        fingerprint="f",
        code_version="v1",
        schema=pa.schema([("a", pa.int64())]),
        files=files,
        row_count=1,
        byte_size=10,
        run_id=run_id,
        attempts=1,
        read_seconds=0.1,
        now=T0,
    )


def test_migrations_create_exactly_the_declared_tables(catalog: Catalog) -> None:
    with catalog.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
    assert diff == []


def test_opening_again_is_a_no_op(catalog_url: str, catalog: Catalog) -> None:
    make_component(catalog)
    again = Catalog.open(catalog_url)
    assert [c.name for c in again.components()] == ["c"]
    again.close()


def test_a_newer_catalog_is_refused(catalog_url: str, catalog: Catalog) -> None:
    with catalog.engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(CatalogError, match=r"migration 9999.*upgrade headwater"):
        Catalog.open(catalog_url)


def test_commit_replaces_and_returns_old_files(catalog: Catalog) -> None:
    component = make_component(catalog)
    assert commit(catalog, component.id, "p", ["c/1.parquet"]) == []
    assert commit(catalog, component.id, "p", ["c/2.parquet"]) == ["c/1.parquet"]
    commit(catalog, component.id, "q", ["c/3.parquet", "c/4.parquet"])
    assert catalog.committed_files(component.id) == {"c/2.parquet", "c/3.parquet", "c/4.parquet"}
    assert sorted(catalog.drop_partitions(component.id, ["q"])) == ["c/3.parquet", "c/4.parquet"]
    assert [p.name for p in catalog.partitions(component.id)] == ["p"]
    # equal schemas share one row
    with catalog.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM schemas")).scalar() == 1


def test_drop_many_partitions_in_chunks(catalog: Catalog) -> None:
    component = make_component(catalog)
    names = [f"p{i}" for i in range(1200)]
    for name in names:
        commit(catalog, component.id, name, [f"{component.id}/{name}.parquet"])
    assert len(catalog.drop_partitions(component.id, names)) == 1200
    assert catalog.partitions(component.id) == []


def test_runs_record_counts_and_failures(catalog: Catalog) -> None:
    component = make_component(catalog)
    run_id = catalog.start_run(component.id, executor="thread", holder="h", now=T0)
    catalog.finish_run(
        run_id,
        status="partial",
        counts={"added": 2, "landed": 1, "failed": 1, "rows": 5},
        failures=[Failure("p", "read_records", "boom", "trace", 3)],
        error=None,
        now=T0,
    )
    run = catalog.run(run_id)
    assert (run.status, run.added, run.landed, run.failed, run.rows) == ("partial", 2, 1, 1, 5)
    assert catalog.run_failures(run_id) == [Failure("p", "read_records", "boom", "trace", 3)]
    assert run.started_at == T0
    with pytest.raises(NotFoundError, match="no run with id 999"):
        catalog.run(999)


def test_abandoned_runs_are_closed(catalog: Catalog) -> None:
    component = make_component(catalog)
    run_id = catalog.start_run(component.id, executor="thread", holder="h", now=T0)
    assert catalog.abandon_runs(component.id, T0) == 1
    assert catalog.run(run_id).status == "abandoned"
    assert catalog.abandon_runs(component.id, T0) == 0


def test_unknown_component_lists_known_ones(catalog: Catalog) -> None:
    make_component(catalog, "sales")
    with pytest.raises(NotFoundError, match=r"no component named 'x' \(components: sales\)"):
        catalog.component("x")


def test_lease_excludes_a_second_writer(catalog: Catalog) -> None:
    component = make_component(catalog)
    clock = Clock()
    busy = pytest.raises(ComponentBusyError, match="component 'c' is being refreshed by")
    with Lease(catalog.engine, component.id, "c", clock), busy:
        Lease(catalog.engine, component.id, "c", clock).acquire()
    with Lease(catalog.engine, component.id, "c", clock):  # released: free again
        pass


def test_expired_lease_is_taken_over_and_the_old_holder_notices(catalog: Catalog) -> None:
    component = make_component(catalog)
    clock = Clock()
    first = Lease(catalog.engine, component.id, "c", clock, ttl=datetime.timedelta(seconds=3600))
    first.acquire()
    clock.now = T0 + datetime.timedelta(hours=2)
    with Lease(catalog.engine, component.id, "c", clock):
        first.renew()
        assert first.lost
        with pytest.raises(ComponentBusyError, match="taken over"):
            first.check()
    first.release()


def test_lease_of_a_dead_process_is_free_at_once(catalog: Catalog) -> None:
    component = make_component(catalog)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with catalog.engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO leases (component_id, holder, acquired_at, expires_at) "
                "VALUES (:c, :h, :t, :t)"
            ),
            {
                "c": component.id,
                "h": f"{HOST}:{dead.stdout.strip()}:x",
                "t": T0 + datetime.timedelta(days=1),
            },
        )
    with Lease(catalog.engine, component.id, "c", Clock()) as lease:
        assert lease.holder.startswith(HOST)


def test_concurrent_writers_of_one_new_schema_and_component(catalog: Catalog) -> None:
    """Two runners storing the same new schema (and creating the same component) at once."""
    import threading

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def runner(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            component = make_component(catalog, "shared")
            barrier.wait(timeout=30)
            commit(catalog, component.id, f"p{i}", [f"x/{i}.parquet"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(catalog.partitions(catalog.component("shared").id)) == 4


def test_a_runner_that_lost_its_lease_cannot_commit(catalog: Catalog) -> None:
    component = make_component(catalog)
    clock = Clock()
    first = Lease(catalog.engine, component.id, "c", clock, ttl=datetime.timedelta(seconds=60))
    first.acquire()
    clock.now = T0 + datetime.timedelta(minutes=5)  # first stalled past its expiry
    second = Lease(catalog.engine, component.id, "c", clock)
    second.acquire()
    with pytest.raises(ComponentBusyError, match="lost the component's lease"):
        catalog.commit_partition(
            component.id,
            name="p",
            fingerprint="f",
            code_version="v1",
            schema=pa.schema([("a", pa.int64())]),
            files=["c/x.parquet"],
            row_count=1,
            byte_size=1,
            run_id=1,
            attempts=1,
            read_seconds=0.0,
            now=T0,
            holder=first.holder,
        )
    with pytest.raises(ComponentBusyError):
        catalog.drop_partitions(component.id, ["p"], holder=first.holder)
    assert catalog.partitions(component.id) == []
    assert commit(catalog, component.id, "p", ["c/y.parquet"]) == []  # no holder: no fence
    second.release()
    first.release()

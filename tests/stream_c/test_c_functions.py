"""The stream's C functions (`headwater/stream/_native.c`) against their pure-Python twins.

- `repr_float` (the CSV sink's float text) must equal `repr()`;
- `csv_lines` must write what the Arrow path (`_csv_text` + pyarrow's CSVWriter) and the
  small-rows path (`_csv_lines`) write, byte for byte: through the real CsvSink both ways;
- `native.IntIndex` must answer as `state.IntIndex` (numpy) does, alone and inside KeyedState.

`tests/stream/test_native.py` checks `Rows` (the subject's `next`) through real streams, which
tests/stream runs with the C paths on and off.
"""

from __future__ import annotations

import datetime
import math
import random
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from headwater.stream import native
from headwater.stream import state as py_state
from headwater.stream.buffer import DELETE, OP, UPSERT
from headwater.stream.rows import SMALL
from headwater.stream.sinks import CsvSink, _csv_lines
from headwater.stream.state import ABSENT, KeyedState

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


pytestmark = pytest.mark.skipif(
    not native.AVAILABLE,
    reason="headwater.stream._native is not built (tests/stream/test_native.py fails for it)",
)


# -- repr_float ------------------------------------------------------------------------------

SPECIAL_FLOATS = [
    0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324, 1e-310, 2.225073858507201e-308,
    sys.float_info.min, sys.float_info.max, -sys.float_info.max, 1e15, 1e16, 1e-4, 1e-5, 1e22,
    1e23, 0.1 + 0.2, 0.1, 1 / 3, 2.0**53, 2.0**53 + 2, 2.0**63, 999999999999999.9, 1e16 - 2,
    123456789012345.6, 0.00011, 5e-5, 2.5e-7, 1.5, -2.5, 100.0, 1e300, -1e-300,
]  # fmt: skip


def _random_floats(rng: random.Random) -> list[float]:
    bits = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(150_000)
    ]
    decimals = [round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)) for _ in range(80_000)]
    magnitudes = [rng.random() * 10.0 ** rng.randint(-320, 308) for _ in range(80_000)]
    return bits + decimals + magnitudes


def test_repr_float_equals_repr() -> None:
    assert native._native is not None
    repr_float: Callable[[float], str] = native._native.repr_float
    assert [(x, repr_float(x)) for x in SPECIAL_FLOATS if repr_float(x) != repr(x)] == []
    floats = _random_floats(random.Random(20250101))
    assert sum(0 < x < sys.float_info.min for x in floats) > 10  # subnormals too
    assert [x for x in floats if repr_float(x) != repr(x)][:10] == []


# -- csv_lines -------------------------------------------------------------------------------

CHANGES = pa.schema(
    [
        ("key", pa.int64()),
        ("weight", pa.float64()),
        ("name", pa.string()),
        ("ok", pa.bool_()),
        ("blob", pa.binary()),
        ("time", pa.int64()),
        ("diff", pa.int8()),
    ]
)
TEXTS = ["", "plain", 'say "hi"', '"', "a,b", "line\nbreak", "cr\r\nlf", "héllo ✓ 𝄞 日本", " "]
INVALID_UTF8 = [
    b"\xe2\x82",  # truncated 3-byte sequence
    b"\xe2\x82a\xe2\x82\xac",  # truncated, then a whole euro sign
    b"\xf0\x9f\x98",  # truncated 4-byte sequence
    b"\xc0\xaf",  # overlong '/'
    b"\xe0\x80\xaf",  # overlong, 3 bytes
    b"\xf0\x80\x80\xaf",  # overlong, 4 bytes
    b"\xed\xa0\x80",  # a UTF-16 surrogate, encoded
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xff",
    b"\xfe\xff",
    b"\x80",  # a lone continuation byte
    b'\x00"\xff,\n',
]
BYTES = [b"", b"ascii", "é€𝄞".encode(), b'q"q', *INVALID_UTF8]


def _floats_arrow_writes_as_repr(rng: random.Random) -> list[float | None]:
    """Floats for batches of SMALL rows or more, which the Python twin writes with Arrow's cast
    (see test_large_batches_write_floats_as_repr for the ones it writes differently)."""
    floats = [round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)) for _ in range(50)]
    floats = [x for x in floats if x == 0 or abs(x) >= 1e-4]
    return [None, 0.0, -0.0, math.nan, math.inf, -math.inf, 1e16, 1e22, 0.1 + 0.2, *floats]


def _changes(rng: random.Random, rows: int, floats: list[float | None]) -> pa.Table:
    def pick(values: list[Any], null: float = 0.15) -> list[Any]:
        return [None if rng.random() < null else rng.choice(values) for _ in range(rows)]

    keys = [INT64_MIN, INT64_MAX, 0, -1, *(rng.randint(INT64_MIN, INT64_MAX) for _ in range(9))]
    columns = [
        pick(keys),
        pick(floats),
        pick(TEXTS),
        pick([True, False]),
        pick(BYTES),
        [1_700_000_000_000 + 2 * i for i in range(rows)],
        [rng.choice([1, -1]) for _ in range(rows)],
    ]
    return pa.table(columns, schema=CHANGES)


def _both_sinks(
    tables: list[pa.Table], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[bytes, bytes]:
    """What the real CsvSink writes for these commits with the C paths, then without."""
    monkeypatch.setenv(native.ENV, "1")
    for table in tables:  # the C path really runs (None: a column type it does not handle)
        assert native.csv_lines(table) is not None
    written = []
    for flag in ("1", "0"):
        monkeypatch.setenv(native.ENV, flag)
        sink = CsvSink(tmp_path / f"native-{flag}.csv")
        sink.open(CHANGES, stream="native-test", durable=False)
        for seq, table in enumerate(tables, 1):
            sink.write(seq, table)
        sink.close()
        written.append(sink.path.read_bytes())
    return written[0], written[1]


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return list(zip(*(c.to_pylist() for c in table.columns), strict=True))


def _csv_tables(rng: random.Random) -> list[pa.Table]:
    """Small and large (Arrow) batches, sliced (an offset into the buffers) and in chunks."""
    floats = _floats_arrow_writes_as_repr(rng)
    base = _changes(rng, 40, floats)
    columns = [[1, None, 3], [None, 1.0, None], ["", None, ""], [None, False, None]]
    nulls_and_empties = pa.table(
        [*columns, [b"", None, b""], [2, 2, 2], [1, -1, 1]], schema=CHANGES
    )
    chunked = pa.concat_tables([_changes(rng, 7, floats), nulls_and_empties, base.slice(5, 4)])
    assert chunked.column("name").num_chunks == 3
    return [
        base,
        base.slice(3, 10),
        nulls_and_empties,
        chunked,
        chunked.slice(4, 9),
        _changes(rng, SMALL * 3, floats),
        _changes(rng, SMALL * 3, floats).slice(SMALL + 1, SMALL * 2),
    ]


def test_csv_sink_writes_the_same_bytes_with_and_without_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = _csv_tables(random.Random(7))
    c, python = _both_sinks(tables, tmp_path, monkeypatch)
    assert c.count(b"\\x") > 10  # the invalid UTF-8 was there, and escaped
    assert c.splitlines() == python.splitlines()
    assert c == python


def test_csv_lines_equal_the_small_rows_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    floats: list[float | None] = [None, *SPECIAL_FLOATS, *_random_floats(rng)[::2000]]
    tables = [*_csv_tables(rng), _changes(rng, 500, floats), _changes(rng, 500, floats).slice(7)]
    monkeypatch.setenv(native.ENV, "1")
    for table in tables:
        assert native.csv_lines(table) == _csv_lines(_rows(table))


def test_csv_lines_escape_invalid_utf8_bytes_as_python_decodes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(native.ENV, "1")
    rng = random.Random(3)
    tricky = b"\x00\x22\x2c\x41\x7f\x80\x8f\x90\xa0\xbf\xc0\xc1\xc2\xdf\xe0\xed\xef\xf0\xf4\xf5\xff"
    fuzz = [
        bytes(rng.choice(tricky) if rng.random() < 0.7 else rng.randrange(256) for _ in range(n))
        for n in (rng.randint(0, 10) for _ in range(30_000))
    ]
    blobs = [*BYTES, *fuzz]
    table = pa.table({"blob": pa.array(blobs, pa.binary())})
    lines = native.csv_lines(table)
    assert lines == _csv_lines([(b,) for b in blobs])
    assert lines is not None
    assert lines.startswith(b'""\n"ascii"\n"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e"\n"q""q"\n')
    assert b'"\\xed\\xa0\\x80"\n' in lines


def test_csv_lines_leave_other_column_types_to_arrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.ENV, "1")
    moment = datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert native.csv_lines(pa.table({"at": pa.array([moment])})) is None
    assert native.csv_lines(pa.table({"x": pa.array([1.5], pa.float32())})) is None
    assert native.csv_lines(CHANGES.empty_table()) == b""
    monkeypatch.setenv(native.ENV, "0")
    assert native.csv_lines(pa.table({"key": [1]})) is None


def test_large_batches_write_floats_as_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _changes(random.Random(5), SMALL, [1e-5, 2.5e-7, 1e15, 123456789012345.0, 5e-5])
    c, python = _both_sinks([table], tmp_path, monkeypatch)
    header = b'"key","weight","name","ok","blob","time","diff"\n'
    assert c == header + _csv_lines(_rows(table))
    assert python == c


# -- IntIndex --------------------------------------------------------------------------------


def _key_pool(rng: random.Random) -> list[int]:
    extremes = [INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, 0, -1, 1, -2, 2**32, -(2**32)]
    randoms = [rng.randint(INT64_MIN, INT64_MAX) for _ in range(2_000)]
    return sorted({*extremes, *randoms, *range(-500, 3_000)})


def _assert_same_index(c: native.IntIndex, numpy: py_state.IntIndex, probe: np.ndarray) -> None:
    assert np.array_equal(c.lookup(probe), numpy.lookup(probe))
    [numpy_positions] = py_state._stored_positions(numpy)
    assert np.array_equal(np.sort(c.positions()), np.sort(numpy_positions))


def test_int_index_answers_as_the_numpy_index() -> None:
    rng = random.Random(42)
    pool = _key_pool(rng)
    never = [k for k in (12_345_678_901, -98_765, 2**40 + 3) if k not in set(pool)]
    probe = np.array([*pool, *never], dtype=np.int64)
    c, numpy = native.IntIndex(), py_state.IntIndex()
    _assert_same_index(c, numpy, probe)  # empty
    stored = 0  # positions grow like KeyedState's: each insertion a new row
    for step in range(60):
        keys = np.array(rng.sample(pool, rng.randint(0, 400)), dtype=np.int64)  # unique
        positions = np.full(len(keys), ABSENT, dtype=np.int64)
        upsert = np.array([rng.random() < 0.7 for _ in keys], dtype=bool)
        positions[upsert] = np.arange(stored, stored + int(upsert.sum()))
        stored += int(upsert.sum())
        c.set(keys, positions)
        numpy.set(keys, positions)
        _assert_same_index(c, numpy, probe)
        if step % 20 == 19:  # a compaction, as KeyedState._compact makes it
            live = np.zeros(stored, dtype=bool)
            live[c.positions()] = True
            old_to_new = np.cumsum(live) - 1
            c.remap(old_to_new)
            numpy.remap(old_to_new)
            stored = int(live.sum())
            _assert_same_index(c, numpy, probe)
    found = c.lookup(probe)
    assert (found == ABSENT).any()
    assert (found != ABSENT).any()
    assert (c.lookup(np.array(never, dtype=np.int64)) == ABSENT).all()


def test_int_index_forgets_deleted_keys_at_a_compaction() -> None:
    index = native.IntIndex()
    keys = np.arange(5_000, dtype=np.int64)
    index.set(keys, keys)
    index.set(keys, np.full(len(keys), ABSENT, dtype=np.int64))
    assert len(index.positions()) == 0
    index.remap(np.zeros(0, dtype=np.int64))  # nothing live: every deleted key goes
    assert index._index.slots == 0


ROW_SCHEMA = pa.schema([("key", pa.int64()), ("name", pa.string()), (OP, pa.int8())])


def _commit(rng: random.Random, pool: list[int], current: dict[int, str], rows: int) -> list[Any]:
    commit: list[tuple[Any, ...]] = []
    for _ in range(rows):
        key = rng.choice(pool)
        roll = rng.random()
        if roll < 0.2:
            commit.append((key, None, DELETE))
        elif roll < 0.4 and key in current:
            commit.append((key, current[key], UPSERT))  # an identical re-send
        else:
            commit.append((key, rng.choice(["a", "b", "c", "é"]), UPSERT))
    for key, name, op in commit:
        if op == DELETE:
            current.pop(key, None)
        else:
            current[key] = name
    return commit


def _table(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.table([list(c) for c in zip(*rows, strict=True)], schema=ROW_SCHEMA)


def test_keyed_state_gives_the_same_changes_with_either_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    states = {}
    for flag in ("1", "0"):
        monkeypatch.setenv(native.ENV, flag)
        states[flag] = KeyedState(["key", "name"], ["key"], True, ROW_SCHEMA)
    c, numpy = states["1"], states["0"]
    assert isinstance(c.index, native.IntIndex)
    assert isinstance(numpy.index, py_state.IntIndex)
    rng = random.Random(9)
    pool = _key_pool(rng)
    current: dict[int, str] = {}
    for step in range(120):
        rows = _commit(rng, pool, current, rng.choice([1, 5, 100, 600, 2_000]))
        if step == 60:  # one commit of 70,000 new keys: numpy's levels merge
            rows += [(k, "bulk", UPSERT) for k in range(10**12, 10**12 + 70_000)]
        if len(rows) < SMALL and step % 2:
            assert c.apply_small(rows) == numpy.apply_small(rows)
        else:
            assert c.apply(_table(rows)).equals(numpy.apply(_table(rows)))
        if step == 80:  # the bulk keys go again
            gone = [(k, None, DELETE) for k in range(10**12, 10**12 + 70_000)]
            assert c.apply(_table(gone)).equals(numpy.apply(_table(gone)))
    assert (c.stored, c.live) == (numpy.stored, numpy.live)
    assert c.stored < 70_000  # compacted once the bulk keys went
    probe = np.array(pool, dtype=np.int64)
    if c.overlay:  # (the same keys in both: the same commits went in)
        c._fold(ROW_SCHEMA)
        numpy._fold(ROW_SCHEMA)
    found = c.index.lookup(probe)
    assert np.array_equal(found, numpy.index.lookup(probe))
    assert sorted(current) == sorted(int(k) for k in probe[found != ABSENT])

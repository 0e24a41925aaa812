"""The stream examples run as they are: the tutorial's cats.jsonl subject, and the MQTT subject
against the broker on this machine (MQTT_HOST / MQTT_PORT, default 127.0.0.1:1883), each test on
its own topic."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from headwater import stream

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "streams"
CATS = EXAMPLES / "cats" / "cats.py"
SENSORS = EXAMPLES / "mqtt" / "sensors.py"
PUBLISH = EXAMPLES / "mqtt" / "publish_readings.py"
# The CLI must be this virtualenv's; the examples' home comes from each test.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
ENV.pop("HEADWATER_HOME", None)


def read_changes(path: Path) -> tuple[list[tuple[Any, ...]], list[int]]:
    """A change-stream CSV: its rows as (columns..., diff) tuples, and their times."""
    changes, times = [], []
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            times.append(int(row.pop("time")))
            diff = int(row.pop("diff"))
            changes.append((*row.values(), diff))
    return changes, times


def assert_commit_times(times: list[int], *, updates: list[int], distinct: int) -> None:
    """Times are even and increase; an update's -1 and +1 (rows i and i+1) share one."""
    assert all(t % 2 == 0 for t in times)
    assert times == sorted(times)
    assert all(times[i] == times[i + 1] for i in updates)
    assert len(set(times)) == distinct


# -- cats/ ---------------------------------------------------------------------------------


def test_cats_example_prints_and_writes_its_change_stream(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(CATS), "out", "--delay", "0"],
        cwd=tmp_path,  # it finds cats.jsonl next to itself, whatever the working folder
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    changes, times = read_changes(tmp_path / "out" / "output.csv")
    assert changes == [
        ("1", "otocolobus", "manul", 1),
        ("2", "felis", "catus", 1),
        ("3", "lynx", "lynx", 1),
        ("2", "felis", "catus", -1),  # the update: the old row out, the new one in
        ("2", "felis", "silvestris", 1),
        ("1", "otocolobus", "manul", -1),  # the delete
    ]
    assert_commit_times(times, updates=[3], distinct=5)
    csv_text = (tmp_path / "out" / "output.csv").read_text()
    assert done.stdout == csv_text + "wrote out/output.csv and out/output.jsonl\n"
    assert csv_text.splitlines()[:2] == [
        '"key","genus","epithet","time","diff"',
        f'"1","otocolobus","manul","{times[0]}","1"',
    ]
    lines = (tmp_path / "out" / "output.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"key": int(key), "genus": genus, "epithet": epithet, "time": at, "diff": diff}
        for (key, genus, epithet, diff), at in zip(changes, times, strict=True)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- mqtt/ ---------------------------------------------------------------------------------

# publish_readings.READINGS as a change stream: (sensor, value, measured_at, diff).
READING_CHANGES = [
    ("greenhouse", "21.5", "2026-03-01T08:00:00Z", 1),
    ("cellar", "12.0", "2026-03-01T08:00:00Z", 1),
    ("attic", "25.25", "2026-03-01T08:00:00Z", 1),
    ("greenhouse", "21.5", "2026-03-01T08:00:00Z", -1),
    ("greenhouse", "23.0", "2026-03-01T08:05:00Z", 1),
    # the cellar's reading sent again: nothing changes
    ("greenhouse", "23.0", "2026-03-01T08:05:00Z", -1),
    ("greenhouse", "24.5", "2026-03-01T08:10:00Z", 1),
]


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    topic: str  # unique to the test: other tests and runs publish elsewhere

    @property
    def args(self) -> list[str]:
        return ["--host", self.host, "--port", str(self.port), "--topic", self.topic]


@pytest.fixture
def broker() -> Broker:
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (the dev extra)")
    host, port = os.environ.get("MQTT_HOST", "127.0.0.1"), int(os.environ.get("MQTT_PORT", "1883"))
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker at {host}:{port} ({exc}); set MQTT_HOST / MQTT_PORT")
    return Broker(host, port, f"headwater-test/{uuid.uuid4().hex}")


def load(path: Path) -> ModuleType:
    """An example file as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_sensors(broker: Broker, output: Path, *extra: str, home: Path) -> subprocess.Popen[str]:
    """sensors.py as a process, once it printed that the broker confirmed its subscription."""
    # Ctrl-C must raise KeyboardInterrupt in it. A process inherits an ignored SIGINT (pytest
    # started in the background) but not a handled one, so handle it here while starting it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, str(SENSORS), str(output), *broker.args, *extra],
            env={**ENV, "HEADWATER_HOME": str(home)},
            stdout=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("subscribed to "):
        process.kill()
        pytest.fail(f"sensors.py printed {line!r} instead of subscribing")
    return process


def test_mqtt_subject_upserts_readings_until_the_end_message(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sensors, publisher = load(SENSORS), load(PUBLISH)
    subject = sensors.MqttSubject(broker.topic, broker.host, broker.port)
    table = stream.read(subject, schema=sensors.ReadingSchema, name="sensors")
    stream.write_csv(table, tmp_path / "readings.csv")
    failures: list[BaseException] = []

    def run() -> None:
        try:
            stream.run()
        except BaseException as exc:
            failures.append(exc)

    runner = threading.Thread(target=run, name="test-stream-run")
    runner.start()
    try:
        assert subject.subscribed.wait(10), f"no subscription within 10 s: {failures}"
        publisher.publish_readings(publisher.READINGS, broker.topic, broker.host, broker.port)
        runner.join(30)
    finally:
        if runner.is_alive():  # a failure above: end the stream rather than leak it
            subject.client.disconnect()
            runner.join(10)

    assert not runner.is_alive() and failures == []  # stream.run() returned, without error
    assert subject.stopping.is_set()  # on_stop() ran ...
    assert not subject.client.is_connected()  # ... and the client is disconnected
    changes, times = read_changes(tmp_path / "readings.csv")
    assert changes == READING_CHANGES
    assert_commit_times(times, updates=[3, 5], distinct=5)  # the re-send wrote no row
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"subscribed to {broker.topic}/readings on {broker.host}:{broker.port}"
    assert printed[1:] == [
        *(f"received {json.dumps(reading)}" for reading in publisher.READINGS),
        f"disconnected from {broker.host}:{broker.port}",
    ]


def test_mqtt_example_lands_in_a_component_for_headwater_query(
    broker: Broker, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    sensors = start_sensors(broker, tmp_path / "out", "--component", "sensors", home=home)
    with sensors:
        published = subprocess.run(
            [sys.executable, str(PUBLISH), *broker.args],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert published.returncode == 0, published.stderr
        assert published.stdout == (
            f"published 6 readings to {broker.topic}/readings, then {broker.topic}/end\n"
        )
        output, _ = sensors.communicate(timeout=60)  # the end message ends it

    assert sensors.returncode == 0, output
    assert output.endswith((tmp_path / "out" / "readings.csv").read_text())
    assert read_changes(tmp_path / "out" / "readings.csv")[0] == READING_CHANGES
    queried = subprocess.run(
        [
            "headwater",
            "query",
            "SELECT sensor, value, measured_at FROM sensors "
            "GROUP BY ALL HAVING sum(diff) > 0 ORDER BY sensor",
        ],
        env={**ENV, "HEADWATER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert queried.returncode == 0, queried.stdout + queried.stderr
    rows = re.findall(r"^│ (\w+) +│ ([\d.]+) +│ (\S+) +│$", queried.stdout, flags=re.MULTILINE)
    assert rows == [
        ("attic", "25.25", "2026-03-01T08:00:00Z"),
        ("cellar", "12.0", "2026-03-01T08:00:00Z"),
        ("greenhouse", "24.5", "2026-03-01T08:10:00Z"),
    ]


def test_mqtt_example_disconnects_on_ctrl_c(broker: Broker, tmp_path: Path) -> None:
    output = tmp_path / "out" / "readings.csv"
    sensors = start_sensors(broker, tmp_path / "out", home=tmp_path / "home")
    publisher = load(PUBLISH)
    with sensors:
        publisher.publish_readings(
            publisher.READINGS, broker.topic, broker.host, broker.port, end=False
        )
        # Press Ctrl-C once every reading has landed. (Pressed while the stream is still
        # writing, stream.run() can lose commits on Python < 3.13: CPython gh-90882.)
        deadline = time.monotonic() + 30
        while len(output.read_text().splitlines()) < 1 + len(READING_CHANGES):
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.01)
        sensors.send_signal(signal.SIGINT)
        printed, _ = sensors.communicate(timeout=60)

    assert sensors.returncode == 130, printed
    lines = printed.splitlines()
    assert f"disconnected from {broker.host}:{broker.port}" in lines  # on_stop() ended run()
    assert "interrupted: the stream stopped and the client disconnected" in lines
    assert read_changes(output)[0] == READING_CHANGES


def test_mqtt_example_explains_an_unreachable_broker(tmp_path: Path) -> None:
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (the dev extra)")
    with socket.socket() as probe:  # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    done = subprocess.run(
        [sys.executable, str(SENSORS), "--port", str(port)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert done.stderr.startswith(f"sensors.py: the MQTT broker at 127.0.0.1:{port}: ")
    assert "Connection refused" in done.stderr and done.stderr.count("\n") == 1

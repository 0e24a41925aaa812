"""Stopping: `serve` in the foreground until SIGTERM, and a graceful stop that lets calls in
flight finish."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading

import grpc
from flyteidl.admin import agent_pb2 as adm
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ECHO = """
from headwater.tasks import Resource, SyncConnector, TaskExecution

class Echo(SyncConnector):
    name = "Echo"
    task_type_name = "echo"
    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED)
"""


def test_serve_connectors_answers_until_sigterm_then_exits_cleanly(write_connector) -> None:
    """The CLI command, as a deployment runs it: serves the file's connectors on a free port."""
    path = write_connector(ECHO)
    command = [sys.executable, "-m", "headwater", "serve-connectors"]
    command += ["--connectors", str(path), "--port", "0"]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            seen = []
            for line in process.stderr:
                seen.append(line)
                if found := re.search(r"serving 1 task connector\(s\) on 127.0.0.1:(\d+)", line):
                    break
            assert found, "".join(seen)
            with grpc.insecure_channel(f"127.0.0.1:{found.group(1)}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                metadata = agent_pb2_grpc.AgentMetadataServiceStub(channel)
                agents = metadata.ListAgents(adm.ListAgentsRequest(), timeout=5).agents
                assert [(a.name, a.is_sync) for a in agents] == [("Echo", True)]
            process.send_signal(signal.SIGTERM)
            rest = process.stderr.read()
            assert process.wait(timeout=20) == 0, rest
            assert "stopping: calls in flight have 10.0 s to finish" in rest
            assert rest.rstrip().endswith("stopped")
        finally:
            if process.poll() is None:
                process.kill()


def test_serve_connectors_starts_without_the_workspaces_libraries(write_connector) -> None:
    """A connector pod loads gRPC and its connectors, not SQLAlchemy, pyarrow or DuckDB."""
    path = write_connector(ECHO)
    heavy = ("sqlalchemy", "pyarrow", "duckdb", "numpy", "pandas")
    code = f"""
import sys
import headwater.tasks.server as server
from headwater.cli import app

def serve(registry, port, host, max_message_mb, engine):  # the command's, stopped once started
    with server.ConnectorServer(registry, port, host, max_message_mb=max_message_mb, engine=engine):
        print(sorted(m for m in {heavy!r} if m in sys.modules))

server.serve = serve
app(["serve-connectors", "--connectors", {str(path)!r}, "--port", "0"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_graceful_stop_lets_a_call_in_flight_finish(served) -> None:
    slow = served.connector("slow")
    request = adm.GetTaskRequest(
        task_category=served.category("slow"), resource_meta=b'{"job_id": "s", "x": 0}'
    )
    pending = served.tasks.GetTask.future(request, timeout=20)
    assert slow.entered.wait(10)
    watch = served.health.Watch(health_pb2.HealthCheckRequest(), timeout=20)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopper = threading.Thread(target=served.server.stop, kwargs={"grace": 20})
    stopper.start()
    # Health turns NOT_SERVING as the stop begins; then the call in flight may still finish.
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    slow.release.set()
    assert pending.result().resource.message == "released=True"
    stopper.join(20)
    assert not stopper.is_alive()

"""The two engines of the connector service: the compiled front end and grpc.aio. Every test
that starts a service through conftest's `start` runs on both; these check the choice itself."""

from __future__ import annotations

import grpc
import pytest
from flyteidl.admin import agent_pb2 as adm
from flyteidl.service import agent_pb2_grpc

from headwater.errors import SettingsError
from headwater.tasks import ConnectorRegistry, front
from headwater.tasks.server import ConnectorServer


def test_front_is_built() -> None:
    assert front.AVAILABLE, (
        "headwater.tasks._front is not built, so the connector service runs on grpc.aio only: "
        "install Debian's libgrpc++-dev and pkg-config (scripts/system-packages.sh does), "
        "then `pip install -e .`"
    )


def test_an_unknown_engine_is_refused_with_the_choices() -> None:
    with pytest.raises(SettingsError, match="'grpc' is not one of auto, native, aio"):
        ConnectorServer(ConnectorRegistry(), engine="grpc")


@pytest.mark.parametrize("engine", ["auto", "native", "aio"])
def test_each_engine_answers_list_agents(engine: str) -> None:
    if engine == "native" and not front.AVAILABLE:
        pytest.skip("headwater.tasks._front is not built (test_front_is_built fails for it)")
    with (
        ConnectorServer(ConnectorRegistry(), engine=engine) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        answer = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(
            adm.ListAgentsRequest(), timeout=10
        )
    assert list(answer.agents) == []


def test_an_unknown_method_is_unimplemented(start: object, engine: str) -> None:
    served = start()  # type: ignore[operator]
    call = served.channel.unary_unary("/flyteidl.service.AsyncAgentService/NoSuchMethod")
    with pytest.raises(grpc.RpcError) as caught:
        call(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_auto_picks_the_compiled_front_end_where_it_was_built() -> None:
    server = ConnectorServer(ConnectorRegistry())
    assert server.engine == ("native" if front.AVAILABLE else "aio")
    assert ConnectorServer(ConnectorRegistry(), engine="aio").engine == "aio"


def test_a_busy_port_is_a_settings_error_on_each_engine(engine: str) -> None:
    with ConnectorServer(ConnectorRegistry(), engine=engine) as first:
        second = ConnectorServer(ConnectorRegistry(), port=first.port, engine=engine)
        with pytest.raises(SettingsError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            second.start()

"""`Client`: the low-level API of a Headwater server, one method per operation.

Method names are the server's operation ids (see docs/server.md), as in the Ascend SDK:
`create_data_service`, `get_dataflow`, `list_components`, `refresh_component`, `get_records`...
They take and return the models of `headwater.client.models`.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from headwater.client.errors import ClientError, ConnectionFailedError, RunTimeoutError
from headwater.client.http import ARROW_STREAM, STREAM_READ_TIMEOUT, ChunkReader, Http, Signer
from headwater.client.http import events as sse_events
from headwater.client.http import lines as sse_lines
from headwater.client.models import (
    Component,
    ComponentGraph,
    ComponentSchema,
    Connection,
    Credential,
    CredentialSecret,
    Dataflow,
    DataService,
    Health,
    LogLine,
    Model,
    Partition,
    PartitionLineage,
    Records,
    Run,
)
from headwater.client.settings import Verify, resolve

if TYPE_CHECKING:
    import pyarrow as pa

M = TypeVar("M", bound=Model)
API = "/api/v1"
RECONNECTS = 3  # a log stream that breaks is resumed after its last line this many times


class Client:
    """A connection to a Headwater server, signing every request with an access key.

    Args:
        hostname: the server: 'headwater.example.com', 'localhost:8000' or
            'https://host:8443' (default: `HEADWATER_HOSTNAME`, or the credentials file).
        access_key, secret_key: a key pair from `headwater keys create` (default:
            `HEADWATER_ACCESS_KEY_ID` and `HEADWATER_SECRET_ACCESS_KEY`, else
            `~/.headwater/credentials`).
        port: the server's port, when `hostname` does not name one.
        scheme: "https" (default) or "http".
        verify: TLS trust: a CA bundle's path, an `ssl.SSLContext`, or False (no checks);
            default `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, else certifi.
        timeout: seconds to wait for a connection or an answer.
        profile: the credentials file section to use (default `HEADWATER_PROFILE`).
        transport: an httpx transport to send requests through (tests, custom networking);
            environment proxies are not used with one.

    Raises:
        ConfigError: no hostname, or a CA bundle that cannot be read;
        CredentialsNotFoundError: no key pair, listing every place looked at.

    Example:
        >>> client = Client(hostname="localhost:8000", scheme="http")    # doctest: +SKIP
        >>> client.create_data_service(DataService(id="demos", description="test data service"))
    """

    def __init__(
        self,
        hostname: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        port: int | None = None,
        scheme: str = "https",
        verify: Verify | None = None,
        timeout: float = 30.0,
        profile: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = resolve(
            hostname,
            access_key,
            secret_key,
            port=port,
            scheme=scheme,
            verify=verify,
            profile=profile,
        )
        self.base_url = settings.base_url
        self.access_key = settings.access_key
        self.credentials_from = settings.credentials_from
        signer = Signer(settings.access_key, settings.secret_key)
        self._http = Http(
            settings.base_url, signer, verify=settings.verify, timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, access_key={self.access_key!r})"

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- service --------------------------------------------------------------------------------

    def health(self) -> Health:
        """Whether the server is up, and its version."""
        return Health.model_validate_json(self._http.request("GET", "/health").content)

    # -- data services --------------------------------------------------------------------------

    def list_data_services(self) -> list[DataService]:
        """Every data service the access key may see."""
        return self._list(DataService, "GET", f"{API}/data-services")

    def create_data_service(self, data_service: DataService | Mapping[str, Any]) -> DataService:
        """Create a data service (ConflictError when its id is taken).

        Example:
            >>> client.create_data_service(DataService(id="demos", name="demos"))  # doctest: +SKIP
        """
        body = _model(DataService, data_service)
        return self._one(DataService, "POST", f"{API}/data-services", body)

    def get_data_service(self, data_service_id: str) -> DataService:
        return self._one(DataService, "GET", _ds(data_service_id))

    def update_data_service(self, data_service: DataService | Mapping[str, Any]) -> DataService:
        """Replace the name and description of the data service with this id."""
        body = _model(DataService, data_service)
        return self._one(DataService, "PUT", _ds(body.id), body)

    def delete_data_service(self, data_service_id: str) -> None:
        """Delete a data service with its dataflows, components and their data, connections
        and credentials (ConflictError while one of its components has a run)."""
        self._http.request("DELETE", _ds(data_service_id))

    # -- dataflows ------------------------------------------------------------------------------

    def list_dataflows(self, data_service_id: str) -> list[Dataflow]:
        return self._list(Dataflow, "GET", f"{_ds(data_service_id)}/dataflows")

    def create_dataflow(
        self, data_service_id: str, dataflow: Dataflow | Mapping[str, Any]
    ) -> Dataflow:
        body = _model(Dataflow, dataflow)
        return self._one(Dataflow, "POST", f"{_ds(data_service_id)}/dataflows", body)

    def get_dataflow(self, data_service_id: str, dataflow_id: str) -> Dataflow:
        return self._one(Dataflow, "GET", _df(data_service_id, dataflow_id))

    def update_dataflow(
        self, data_service_id: str, dataflow: Dataflow | Mapping[str, Any]
    ) -> Dataflow:
        body = _model(Dataflow, dataflow)
        return self._one(Dataflow, "PUT", _df(data_service_id, body.id), body)

    def delete_dataflow(self, data_service_id: str, dataflow_id: str) -> None:
        """Delete a dataflow, its components and their stored data."""
        self._http.request("DELETE", _df(data_service_id, dataflow_id))

    def get_dataflow_graph(self, data_service_id: str, dataflow_id: str) -> ComponentGraph:
        """The dataflow's components (nodes) and which reads which (edges)."""
        path = f"{_df(data_service_id, dataflow_id)}/graph"
        return self._one(ComponentGraph, "GET", path)

    # -- connections and credentials ------------------------------------------------------------

    def list_connections(self, data_service_id: str) -> list[Connection]:
        return self._list(Connection, "GET", f"{_ds(data_service_id)}/connections")

    def create_connection(
        self, data_service_id: str, connection: Connection | Mapping[str, Any]
    ) -> Connection:
        body = _model(Connection, connection)
        return self._one(Connection, "POST", f"{_ds(data_service_id)}/connections", body)

    def get_connection(self, data_service_id: str, connection_id: str) -> Connection:
        return self._one(Connection, "GET", _connection(data_service_id, connection_id))

    def update_connection(
        self, data_service_id: str, connection: Connection | Mapping[str, Any]
    ) -> Connection:
        body = _model(Connection, connection)
        return self._one(Connection, "PUT", _connection(data_service_id, body.id), body)

    def delete_connection(self, data_service_id: str, connection_id: str) -> None:
        self._http.request("DELETE", _connection(data_service_id, connection_id))

    def list_credentials(self, data_service_id: str) -> list[Credential]:
        """The data service's credentials: names and timestamps, never a secret."""
        return self._list(Credential, "GET", f"{_ds(data_service_id)}/credentials")

    def get_credential(self, data_service_id: str, name: str) -> Credential:
        return self._one(Credential, "GET", _credential(data_service_id, name))

    def put_credential(self, data_service_id: str, name: str, secret: str) -> Credential:
        """Store a secret under `name` (replacing any earlier one); it is encrypted at rest and
        never returned. A connection naming the credential hands it to connectors."""
        body = CredentialSecret(secret=secret)
        return self._one(Credential, "PUT", _credential(data_service_id, name), body)

    def delete_credential(self, data_service_id: str, name: str) -> None:
        self._http.request("DELETE", _credential(data_service_id, name))

    def verify_credential(self, data_service_id: str, name: str, secret: str) -> bool:
        """Whether `secret` is the one stored under `name`; the server compares it in constant
        time and never returns its own (needs write access, as `put_credential` does).

        Example:
            >>> client.verify_credential("sales", "wh", os.environ["WH_PASSWORD"])  # doctest: +SKIP
            True
        """
        path = f"{_credential(data_service_id, name)}/verify"
        # Checked by the server, whose errors never echo a value (pydantic's here would).
        response = self._http.request("POST", path, json={"secret": secret})
        return bool(response.json()["matches"])

    # -- components -----------------------------------------------------------------------------

    def list_components(self, data_service_id: str, dataflow_id: str) -> list[Component]:
        path = f"{_df(data_service_id, dataflow_id)}/components"
        return self._list(Component, "GET", path)

    def create_component(
        self, data_service_id: str, dataflow_id: str, component: Component | Mapping[str, Any]
    ) -> Component:
        """Create a component from its code (compiled, not run: ValidationError for a syntax
        error).

        Example:
            >>> client.create_component("sales", "daily", Component(                # doctest: +SKIP
            ...     id="orders", partitioned=PartitionedDefinition(code=source)))
        """
        body = _model(Component, component)
        path = f"{_df(data_service_id, dataflow_id)}/components"
        return self._one(Component, "POST", path, body)

    def get_component(self, data_service_id: str, dataflow_id: str, component_id: str) -> Component:
        return self._one(Component, "GET", _component(data_service_id, dataflow_id, component_id))

    def update_component(
        self, data_service_id: str, dataflow_id: str, component: Component | Mapping[str, Any]
    ) -> Component:
        """Replace a component's definition; its next run uses it."""
        body = _model(Component, component)
        path = _component(data_service_id, dataflow_id, body.id)
        return self._one(Component, "PUT", path, body)

    def delete_component(self, data_service_id: str, dataflow_id: str, component_id: str) -> None:
        """Delete a component with its stored data and runs."""
        self._http.request("DELETE", _component(data_service_id, dataflow_id, component_id))

    # -- runs -----------------------------------------------------------------------------------

    def refresh_component(self, data_service_id: str, dataflow_id: str, component_id: str) -> Run:
        """Start a run of the component; returns the queued run at once (ConflictError while
        the component has one queued or running). Follow it with `follow_run_logs` or
        `wait_for_run`."""
        path = f"{_component(data_service_id, dataflow_id, component_id)}/refresh"
        return self._one(Run, "POST", path)

    def list_component_runs(
        self, data_service_id: str, dataflow_id: str, component_id: str, *, limit: int = 20
    ) -> list[Run]:
        """The component's runs requested through the API, newest first."""
        path = f"{_component(data_service_id, dataflow_id, component_id)}/runs"
        return self._list(Run, "GET", path, params={"limit": limit})

    def get_run(self, run_id: int) -> Run:
        return self._one(Run, "GET", f"{API}/runs/{int(run_id)}")

    def list_triggered_runs(self, run_id: int) -> list[Run]:
        """The runs a run queued downstream when it succeeded and changed its data."""
        return self._list(Run, "GET", f"{API}/runs/{int(run_id)}/triggered")

    def cancel_run(self, run_id: int) -> Run:
        """Ask a run to stop; it ends "cancelled" where it can (before it starts, between
        partitions). Cancelling a finished run changes nothing."""
        return self._one(Run, "POST", f"{API}/runs/{int(run_id)}/cancel")

    def follow_run_logs(self, run_id: int, *, after: int = 0) -> Iterator[LogLine | Run]:
        """A run's log lines as they are written, then the finished `Run` (the last item).

        A broken stream is resumed after the last line received.

        Example:
            >>> for item in client.follow_run_logs(run.id):                  # doctest: +SKIP
            ...     print(item.message if isinstance(item, LogLine) else item.status)
        """
        return self._follow(int(run_id), after, None)

    def wait_for_run(self, run_id: int, *, timeout: float | None = None) -> Run:
        """Wait for a run to end and return it (RunTimeoutError after `timeout` seconds; the
        run goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for item in self._follow(int(run_id), 0, deadline):
            if isinstance(item, Run):
                return item
        raise ClientError(f"the log stream of run {run_id} ended without the finished run")

    def _follow(self, run_id: int, after: int, deadline: float | None) -> Iterator[LogLine | Run]:
        path = f"{API}/runs/{run_id}/logs"
        failures = 0
        while True:
            read_timeout = STREAM_READ_TIMEOUT
            if deadline is not None:
                read_timeout = min(read_timeout, max(0.05, deadline - time.monotonic()))
            try:
                with self._http.stream(
                    path,
                    params={"after": after},
                    accept="text/event-stream",
                    read_timeout=read_timeout,
                ) as response:
                    for event in sse_events(sse_lines(response.iter_bytes())):
                        if event.event == "end":
                            yield Run.model_validate_json(event.data)
                            return
                        if event.event == "log":
                            line = LogLine.model_validate_json(event.data)
                            after, failures = line.seq, 0
                            yield line
                        _check_deadline(deadline, run_id)
            except ConnectionFailedError as exc:
                broke: ConnectionFailedError | None = exc
            else:  # the server closed the stream before the end event (it is shutting down)
                broke = None
            _check_deadline(deadline, run_id)
            failures += 1
            if failures > RECONNECTS:
                raise ConnectionFailedError(
                    f"the log stream of run {run_id} broke {failures} times in a row; the run "
                    f"goes on (get_run({run_id}) tells its status): {broke or 'closed early'}"
                ) from broke
            pause = min(2.0, 0.25 * failures)
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)  # back off, then resume after line `after`

    # -- data -----------------------------------------------------------------------------------

    def get_partitions(
        self, data_service_id: str, dataflow_id: str, component_id: str
    ) -> list[Partition]:
        """The component's committed partitions, by name."""
        path = f"{_component(data_service_id, dataflow_id, component_id)}/partitions"
        return self._list(Partition, "GET", path)

    def get_lineage(
        self, data_service_id: str, dataflow_id: str, component_id: str
    ) -> list[PartitionLineage]:
        """For each partition of a transform, the input partitions it was computed from."""
        path = f"{_component(data_service_id, dataflow_id, component_id)}/lineage"
        return self._list(PartitionLineage, "GET", path)

    def get_schema(
        self, data_service_id: str, dataflow_id: str, component_id: str
    ) -> ComponentSchema:
        """The columns readers see (every committed partition's schema, merged)."""
        path = f"{_component(data_service_id, dataflow_id, component_id)}/schema"
        return self._one(ComponentSchema, "GET", path)

    def get_records(
        self,
        data_service_id: str,
        dataflow_id: str,
        component_id: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        partition: str | None = None,
    ) -> Records:
        """One page of the component's rows as JSON; pass `next_cursor` back as `cursor` for
        the next (None after the last). `partition` reads one partition only."""
        path = f"{_component(data_service_id, dataflow_id, component_id)}/records"
        params = {"limit": limit, "cursor": cursor, "partition": partition}
        return self._one(Records, "GET", path, params=params)

    def iter_records(
        self,
        data_service_id: str,
        dataflow_id: str,
        component_id: str,
        *,
        page_size: int = 1000,
        partition: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row of the component, page after page, as JSON values."""
        cursor: str | None = None
        while True:
            page = self.get_records(
                data_service_id,
                dataflow_id,
                component_id,
                limit=page_size,
                cursor=cursor,
                partition=partition,
            )
            yield from page.rows
            cursor = page.next_cursor
            if cursor is None:
                return

    def get_records_arrow(
        self,
        data_service_id: str,
        dataflow_id: str,
        component_id: str,
        *,
        partition: str | None = None,
    ) -> pa.Table:
        """Every row of the component (or of one partition) with its exact types, read as an
        Arrow IPC stream.

        Example:
            >>> client.get_records_arrow("sales", "daily", "orders").to_pandas()  # doctest: +SKIP
        """
        import pyarrow as pa

        path = f"{_component(data_service_id, dataflow_id, component_id)}/records"
        params = {"partition": partition}
        with self._http.stream(path, params=params, accept=ARROW_STREAM) as response:
            return pa.ipc.open_stream(ChunkReader(response.iter_bytes())).read_all()

    # -- plumbing -------------------------------------------------------------------------------

    def _one(
        self,
        kind: type[M],
        method: str,
        path: str,
        body: Model | None = None,
        params: dict[str, Any] | None = None,
    ) -> M:
        response = self._http.request(method, path, json=_json(body), params=params)
        return kind.model_validate_json(response.content)

    def _list(
        self, kind: type[M], method: str, path: str, params: dict[str, Any] | None = None
    ) -> list[M]:
        response = self._http.request(method, path, params=params)
        return [kind.model_validate(item) for item in response.json()]


def _check_deadline(deadline: float | None, run_id: int) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise RunTimeoutError(
            f"run {run_id} did not end in time; it goes on (cancel it with cancel_run)", run_id
        )


def _model(kind: type[M], value: M | Mapping[str, Any]) -> M:
    """A model from a model or a plain mapping (coerced at the boundary)."""
    return value if isinstance(value, kind) else kind.model_validate(value)


def _json(body: Model | None) -> Any:
    return None if body is None else body.model_dump(mode="json", exclude_none=True)


def _quote(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


def _ds(data_service_id: str) -> str:
    return f"{API}/data-services/{_quote(data_service_id)}"


def _df(data_service_id: str, dataflow_id: str) -> str:
    return f"{_ds(data_service_id)}/dataflows/{_quote(dataflow_id)}"


def _component(data_service_id: str, dataflow_id: str, component_id: str) -> str:
    return f"{_df(data_service_id, dataflow_id)}/components/{_quote(component_id)}"


def _connection(data_service_id: str, connection_id: str) -> str:
    return f"{_ds(data_service_id)}/connections/{_quote(connection_id)}"


def _credential(data_service_id: str, name: str) -> str:
    return f"{_ds(data_service_id)}/credentials/{_quote(name)}"

"""The server and client tests' fixtures, registered for these tests: the started app on
each catalog, signed TestClients, clients of the app, and a listing connector's code."""

from __future__ import annotations

from tests.client import conftest as client_tests
from tests.server import conftest as server_tests

client = server_tests.client
server = server_tests.server
server_settings = server_tests.server_settings
signed = server_tests.signed
api = server_tests.api
objects = server_tests.objects
flow = server_tests.flow
connect = client_tests.connect
hw = client_tests.hw
clean_env = client_tests.clean_env

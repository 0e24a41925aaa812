"""The Python client of Headwater's server. Its models (`headwater.client.models`) are shared
with the server and import nothing of it; the `Client` itself comes next."""

__all__: list[str] = []

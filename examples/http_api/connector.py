"""A connector over a paged HTTP JSON API (server.py beside it): one partition per day of orders.

`run.sh` runs it start to finish. By hand, with the API listening on port 8765:

    echo '{"base_url": "http://127.0.0.1:8765", "token": "demo-token"}' > credential.json
    headwater run examples/http_api/connector.py --component orders \
        --credential-file credential.json
    headwater query "SELECT day, count(*) AS orders FROM orders GROUP BY day ORDER BY day"

Each day's fingerprint is its `updated_at`, so a run reads only the days that changed since the
last one. Only the standard library is used (urllib), so there is nothing to install.
"""

import json
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen


def context(credentials: str | None) -> dict[str, str]:
    # Called once per run with the credential file's text; everything else gets what it returns.
    if not credentials:
        raise ValueError(
            "this connector needs a credential: pass --credential-file with "
            '{"base_url": "http://127.0.0.1:8765", "token": "..."}'
        )
    settings = json.loads(credentials)
    return {"base_url": settings["base_url"].rstrip("/"), "token": settings["token"]}


def list_objects(
    context: dict[str, str], metadata: dict[str, Any] | None
) -> Iterator[dict[str, Any]]:
    for day in get(context, "/days"):
        yield {"name": day["day"], "fingerprint": day["updated_at"], "is_prefix": False}


def read_records(
    context: dict[str, str], metadata: dict[str, Any]
) -> Iterator[list[dict[str, Any]]]:
    # One list of rows per page; the API says when there is no next page.
    page: int | None = 1
    while page is not None:
        body = get(context, "/orders", day=metadata["name"], page=page)
        yield body["orders"]
        page = body["next_page"]


def get(context: dict[str, str], path: str, **params: Any) -> Any:
    """GET a path of the API and decode its JSON, sending the bearer token."""
    url = context["base_url"] + path + (f"?{urlencode(params)}" if params else "")
    request = Request(url, headers={"Authorization": f"Bearer {context['token']}"})
    try:
        with urlopen(request, timeout=30) as response:
            return json.load(response)
    except HTTPError as exc:
        exc.close()  # it holds the response open
        if exc.code == 401:
            # Never put the token in a message: messages end up in logs and in the catalog.
            raise PermissionError(
                f"{url} refused the token (HTTP 401); check 'token' in the credential file"
            ) from None
        raise

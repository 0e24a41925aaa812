"""A tiny orders API on localhost for the HTTP example: the standard library only, data in memory.

    ORDERS_API_TOKEN=secret python3 examples/http_api/server.py --port 8765

Every request needs `Authorization: Bearer <token>` (the token comes from $ORDERS_API_TOKEN,
else it is "demo-token"). Once listening, the server prints one line, `listening on <url>`, so a
script can start it on a free port (--port 0) and read the address back.

    GET  /days                        [{"day": "2026-03-01", "updated_at": "...", "orders": 8}, ...]
    GET  /orders?day=D&page=N         {"orders": [...], "next_page": N+1 or null}  (10 per page)
    POST /orders  {"day", "customer", "amount"}   adds an order and bumps its day's updated_at
"""

from __future__ import annotations

import argparse
import datetime
import hmac
import json
import os
import signal
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"  # localhost only: this is a demo, not a service
PAGE_SIZE = 10
CUSTOMERS = ["Acme", "Birch & Co", "Cobalt", "Dune Foods", "Elm Street Cafe", "Fjord"]


class Orders:
    """The API's data: orders by day, and when each day last changed. Safe across threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.days: dict[str, dict[str, Any]] = {}
        self.next_id = 1
        # Five days of 8, 13, 18, 23 and 28 orders: most days need more than one page.
        for offset in range(5):
            day = (datetime.date(2026, 3, 1) + datetime.timedelta(days=offset)).isoformat()
            orders = [
                self._order(day, CUSTOMERS[n % len(CUSTOMERS)], 5 + (n * 37) % 90 + n % 4 / 4)
                for n in range(8 + 5 * offset)
            ]
            self.days[day] = {"updated_at": f"{day}T18:00:00+00:00", "orders": orders}

    def _order(self, day: str, customer: str, amount: float) -> dict[str, Any]:
        order = {
            "order_id": self.next_id,
            "customer": customer,
            "amount": float(amount),
            "day": day,
        }
        self.next_id += 1
        return order

    def list_days(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {"day": day, "updated_at": d["updated_at"], "orders": len(d["orders"])}
                for day, d in sorted(self.days.items())
            ]

    def page(self, day: str, page: int) -> dict[str, Any] | None:
        with self.lock:
            if day not in self.days:
                return None
            orders = self.days[day]["orders"]
            start = (page - 1) * PAGE_SIZE
            more = start + PAGE_SIZE < len(orders)
            return {
                "orders": orders[start : start + PAGE_SIZE],
                "next_page": page + 1 if more else None,
            }

    def add(self, day: str, customer: str, amount: float) -> dict[str, Any]:
        with self.lock:
            entry = self.days.setdefault(day, {"orders": []})  # a new day appears in /days
            order = self._order(day, customer, amount)
            entry["orders"].append(order)
            entry["updated_at"] = datetime.datetime.now(datetime.UTC).isoformat()
            return order


class OrdersServer(ThreadingHTTPServer):
    """The HTTP server, holding the data and the token its handlers check."""

    def __init__(self, port: int, token: str) -> None:
        super().__init__((HOST, port), Handler)
        self.orders = Orders()
        self.token = token


class Handler(BaseHTTPRequestHandler):
    server: OrdersServer

    def do_GET(self) -> None:
        if not self._authorized():
            return
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/days":
            self._send(HTTPStatus.OK, self.server.orders.list_days())
        elif url.path == "/orders":
            page = query.get("page", "1")
            if not page.isdigit() or int(page) < 1:
                self._send(
                    HTTPStatus.BAD_REQUEST, {"error": f"page must be 1 or more, not {page!r}"}
                )
                return
            body = self.server.orders.page(query.get("day", ""), int(page))
            if body is None:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no day {query.get('day')!r}"})
            else:
                self._send(HTTPStatus.OK, body)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path: {url.path}"})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if urlsplit(self.path).path != "/orders":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"cannot POST to {self.path}"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            order = self.server.orders.add(
                str(body["day"]), str(body["customer"]), float(body["amount"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            message = f"send JSON with day, customer and amount ({type(exc).__name__}: {exc})"
            self._send(HTTPStatus.BAD_REQUEST, {"error": message})
            return
        self._send(HTTPStatus.CREATED, order)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        # compare_digest takes as long for a near miss as for a wild guess.
        if hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
            return True
        self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
        return False

    def _send(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the one line on stdout is the address, which scripts read


def serve(port: int, token: str) -> None:
    server = OrdersServer(port, token)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop on SIGTERM as on Ctrl-C
    print(f"listening on http://{HOST}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    args = parser.parse_args()
    serve(args.port, os.environ.get("ORDERS_API_TOKEN") or "demo-token")

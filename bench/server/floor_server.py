"""The floor, not a contender: a bare FastAPI app on uvicorn answering every GET with a constant
JSON body, started the way `headwater server` starts its app (`uvicorn.run(app, host, port,
log_level)`). What one request through FastAPI and uvicorn costs on this machine.

    python bench/server/floor_server.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/{path:path}")
def constant(path: str) -> dict[str, object]:
    return {"status": "ok", "version": "floor"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

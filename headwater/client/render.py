"""Render: a server's data service or dataflow as the Python source of a definition file that,
applied to an empty server, makes the same (as the Ascend SDK's `download_*` do, with the code
inline so that the file works unedited).

    >>> source = download_data_service(client, "sales")                      # doctest: +SKIP
    >>> pathlib.Path("sales.py").write_text(source)

Texts of several lines (connector code, SQL, statements) are written as triple-quoted strings,
readable as code: raw when they hold backslashes (a regular expression reads as written), else
with the few characters escaped that would break or blur the literal (three quotes in a row, a
final quote, spaces ending a line). Characters outside ASCII are written as escapes. The file
is laid out as `ruff format` lays it out and passes `ruff check` (lines of code too long to
wrap are allowed by a file-level `# ruff: noqa: E501`).

Secrets are never exported: each credential reads its value, when the file is applied, from
the environment variable `credential_env(data_service, name)`:
`HEADWATER_CREDENTIAL_<DATA SERVICE>_<NAME>`, upper-cased, with each character that is not a
letter or digit written `_` (credential `wh.prod` of data service `sales` reads
`HEADWATER_CREDENTIAL_SALES_WH_PROD`). An unset variable keeps the server's value.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import BaseModel

from headwater.client.client import Client
from headwater.client.definitions import (
    Connection,
    Credential,
    Dataflow,
    DataService,
    from_component,
)
from headwater.client.graph import topological

__all__ = [
    "credential_env",
    "data_service_definition",
    "dataflow_definition",
    "download_data_service",
    "download_dataflow",
    "render_data_service",
    "render_dataflow",
]

WIDTH = 100  # the line length of `ruff format` (and of this repository)
INDENT = "    "
NOQA_LONG_LINES = (
    "# Some code or values are longer than a line and are kept as they are.\n# ruff: noqa: E501\n"
)


def credential_env(data_service_id: str, name: str) -> str:
    """The environment variable a rendered credential reads its secret from. Names that
    upper-casing and `_` for other characters would not keep apart (`wh.prod`, `WH-PROD`,
    `wh_prod`) get a short hash of the exact name, so two credentials never share one.

    Example:
        >>> credential_env("sales", "warehouse")
        'HEADWATER_CREDENTIAL_SALES_WAREHOUSE'
        >>> credential_env("sales", "wh.prod")
        'HEADWATER_CREDENTIAL_SALES_WH_PROD_1DE90F'
    """
    variable = re.sub(r"[^A-Z0-9]", "_", f"HEADWATER_CREDENTIAL_{data_service_id}_{name}".upper())
    if re.fullmatch(r"[a-z0-9_]+", name) is None:  # upper-casing or `_` lost something
        variable += "_" + hashlib.sha256(name.encode()).hexdigest()[:6].upper()
    return variable


# -- the server's state, as definitions ---------------------------------------------------------


def dataflow_definition(client: Client, data_service_id: str, dataflow_id: str) -> Dataflow:
    """A dataflow on the server, as a definition (components after their inputs)."""
    dataflow = client.get_dataflow(data_service_id, dataflow_id)
    components = {c.id: c for c in client.list_components(data_service_id, dataflow_id)}
    graph = {id: components[id].inputs for id in sorted(components)}
    return Dataflow(
        id=dataflow.id,
        name=None if dataflow.name == dataflow.id else dataflow.name,
        description=dataflow.description,
        components=[from_component(components[id]) for id in topological(graph)],
    )


def data_service_definition(client: Client, data_service_id: str) -> DataService:
    """A data service on the server with all it holds, as a definition; each credential by
    reference to the environment variable `credential_env` names."""
    ds = client.get_data_service(data_service_id)
    credentials = sorted(c.name for c in client.list_credentials(data_service_id))
    return DataService(
        id=ds.id,
        name=None if ds.name == ds.id else ds.name,
        description=ds.description,
        dataflows=[
            dataflow_definition(client, data_service_id, d.id)
            for d in sorted(client.list_dataflows(data_service_id), key=lambda d: d.id)
        ],
        connections=[
            Connection.from_model(c)
            for c in sorted(client.list_connections(data_service_id), key=lambda c: c.id)
        ],
        credentials=[
            Credential(name=name, env=credential_env(data_service_id, name)) for name in credentials
        ],
    )


def download_data_service(client: Client, data_service_id: str) -> str:
    """The source of a definition file of a data service on the server (see the module).

    Example:
        >>> print(download_data_service(Client(), "sales"))                 # doctest: +SKIP
    """
    return render_data_service(data_service_definition(client, data_service_id))


def download_dataflow(client: Client, data_service_id: str, dataflow_id: str) -> str:
    """The source of a definition file of one dataflow on the server (applied with
    `DataflowApplier` to the data service `data_service_id` names)."""
    definition = dataflow_definition(client, data_service_id, dataflow_id)
    return render_dataflow(data_service_id, definition)


# -- definitions, as source -----------------------------------------------------------------------


def render_data_service(definition: DataService) -> str:
    """A module defining `data_service = DataService(...)`, applied when run."""
    doc = _docstring(
        f"Data service {definition.id} of a Headwater server, as a definition.",
        f"headwater export {definition.id}",
        "what the server has and this file does not declare",
        "Secrets are not in this file: each credential reads its value from the environment\n"
        "variable it names when the file is applied (left unset, the server's value is kept).\n",
    )
    return _module(doc, [("data_service", definition)], "applier.main(data_service)")


def render_dataflow(data_service_id: str, definition: Dataflow) -> str:
    """A module defining `data_service_id = "..."` and `dataflow = Dataflow(...)`, applied
    when run."""
    doc = _docstring(
        f"Dataflow {data_service_id}/{definition.id} of a Headwater server, as a definition.",
        f"headwater export {data_service_id} {definition.id}",
        "the components the server has and this file does not declare",
        "",
    )
    return _module(
        doc,
        [("data_service_id", data_service_id), ("dataflow", definition)],
        "applier.main(dataflow, data_service_id=data_service_id)",
    )


def _docstring(title: str, command: str, kept: str, more: str) -> str:
    return (
        f'"""{title}\n\n'
        f"Made by `{command}`. Apply it with `python <this file>` or\n"
        "`headwater apply <this file>`: --dry-run prints the plan and changes nothing;\n"
        f"--no-delete keeps {kept}.\n"
        "The server and access key come from HEADWATER_HOSTNAME, HEADWATER_ACCESS_KEY_ID and\n"
        "HEADWATER_SECRET_ACCESS_KEY (or ~/.headwater/credentials).\n"
        + (f"\n{more}" if more else "")
        + '"""'
    )


def _module(doc: str, assignments: list[tuple[str, Any]], call: str) -> str:
    writer = _Writer()
    body = [
        "\n".join(writer.lines(value, 0, f"{name} = ", "")) + "\n" for name, value in assignments
    ]
    names = sorted(writer.names, key=lambda n: (n.lower(), n))
    imports = "from headwater.client.definitions import " + ", ".join(names)
    if len(imports) > WIDTH:
        imports = "from headwater.client.definitions import (\n"
        imports += "".join(f"{INDENT}{n},\n" for n in names) + ")"
    text = "\n".join(
        [
            doc + "\n",
            f"from headwater.client import applier\n{imports}\n",
            *body,
            f'if __name__ == "__main__":\n{INDENT}{call}\n',
        ]
    )
    if any(_too_long(line) for line in text.splitlines()):
        text = NOQA_LONG_LINES + text
    return text


def _too_long(line: str) -> bool:
    """Whether `ruff check` reports the line as too long (E501): not one word, and not ending
    with a URL that starts within the limit."""
    chunks = line.split()
    if len(line) <= WIDTH or len(chunks) < 2:
        return False
    return not ("://" in chunks[-1] and len(line.rstrip()) - len(chunks[-1]) <= WIDTH)


class _Writer:
    """Python source of values, laid out as `ruff format` does: a value on one line when it
    fits, else one item per line with a trailing comma (which keeps it so)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def lines(self, value: Any, indent: int, head: str, tail: str) -> list[str]:
        """`value` as lines, the first starting with `head` after `indent` spaces and the last
        ending with `tail`."""
        pad = " " * indent
        flat = self.flat(value)
        if flat is not None and len(pad + head + flat + tail) <= WIDTH:
            return [pad + head + flat + tail]
        if isinstance(value, str):
            block = _triple_quoted(value) or [_literal(value)]
            if len(block) == 1:  # too long for its line, and ruff does not split strings
                return [pad + head + block[0] + tail]
            return [pad + head + block[0], *block[1:-1], block[-1] + tail]
        opening, closing, items = self.parts(value)
        if not items:
            return [pad + head + opening + closing + tail]
        found = [pad + head + opening]
        for item_head, item in items:
            found += self.lines(item, indent + len(INDENT), item_head, ",")
        return [*found, pad + closing + tail]

    def flat(self, value: Any) -> str | None:
        """`value` on one line, or None when it holds a text written over several lines."""
        if isinstance(value, str):
            return None if _triple_quoted(value) else _literal(value)
        if isinstance(value, float):
            return repr(value).replace("e+", "e")  # 1e20, as ruff writes it
        if value is None or isinstance(value, bool | int):
            return repr(value)
        opening, closing, items = self.parts(value)
        parts = [self.flat(item) for _, item in items]
        if any(p is None for p in parts):
            return None
        return (
            opening + ", ".join(f"{h}{p}" for (h, _), p in zip(items, parts, strict=True)) + closing
        )

    def parts(self, value: Any) -> tuple[str, str, list[tuple[str, Any]]]:
        """The opening, closing and (head, value) items of a container."""
        if isinstance(value, BaseModel):
            name = type(value).__name__
            self.names.add(name)
            return f"{name}(", ")", [(f"{k}=", v) for k, v in _declared_fields(value)]
        if isinstance(value, dict):
            return "{", "}", [(f"{_literal(str(k))}: ", v) for k, v in value.items()]
        if isinstance(value, list | tuple):
            return "[", "]", [("", v) for v in value]
        raise TypeError(f"cannot render a {type(value).__name__} as source")


def _declared_fields(model: BaseModel) -> list[tuple[str, Any]]:
    """The fields of `model` that differ from their defaults, in declaration order."""
    found = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if info.is_required() or value != info.get_default(call_default_factory=True):
            found.append((name, value))
    return found


def _literal(text: str) -> str:
    """A one-line string literal of `text`, quoted as `ruff format` quotes it (double quotes
    unless that needs more escapes), with every character outside printable ASCII escaped."""
    quote = '"' if text.count('"') <= text.count("'") else "'"
    escaped = {"\\": "\\\\", quote: "\\" + quote, "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return quote + "".join(escaped.get(c) or _printable(c) for c in text) + quote


def _printable(char: str) -> str:
    return char if " " <= char <= "~" else char.encode("unicode_escape").decode("ascii")


def _triple_quoted(text: str) -> list[str] | None:
    """A triple-quoted literal of a text of several lines, as its lines (None for one line).

    Raw (r-prefixed) when the text has backslashes and nothing a raw literal cannot hold, so
    that a regular expression reads as written. Otherwise plain, its first line after a
    line-continuing backslash, with the few characters that need it escaped: backslashes, the
    third of three quotes in a row and a final quote, tabs, spaces ending a line (which
    `ruff check` would report), and everything outside printable ASCII.
    """
    lines = text.split("\n")
    if len(lines) < 2:
        return None
    if "\\" in text and _raw_safe(text, lines):
        return [f'r"""{lines[0]}', *lines[1:-1], lines[-1] + '"""']
    escaped = [_escape_line(line, final=n == len(lines) - 1) for n, line in enumerate(lines)]
    if escaped[0] == "":  # the text starts with a newline: the opening quotes end that line
        return ['"""', *escaped[1:-1], escaped[-1] + '"""']
    return ['"""\\', *escaped[:-1], escaped[-1] + '"""']


def _raw_safe(text: str, lines: list[str]) -> bool:
    printable = all(c == "\n" or " " <= c <= "~" for c in text)
    clean = all(line == line.rstrip() for line in lines)
    return printable and clean and '"""' not in text and not text.endswith(('"', "\\"))


def _escape_line(line: str, *, final: bool) -> str:
    body = line.rstrip(" ")
    found, quotes = [], 0
    for n, char in enumerate(body):
        quotes = quotes + 1 if char == '"' else 0
        # a third quote in a row would close the literal, and so would a final one
        ends = final and n == len(line) - 1
        if quotes == 3 or (quotes and ends):
            found.append('\\"')
            quotes = 0
        elif char in "\\\t":
            found.append("\\\\" if char == "\\" else "\\t")
        else:
            found.append(_printable(char))
    return "".join(found) + "\\x20" * (len(line) - len(body))

"""Layer 1, the static gate: decide from the source alone whether a statement may run.

It runs in the trusted parent (so a bad statement is rejected without starting a sandbox) and
again inside the worker, which never executes code the gate has not passed. Nothing here executes
the statement. The gate reproduces the seed product's documented rules (type hints are errors,
the literal import rule) and refuses what RestrictedPython refuses (names starting with `_`,
`exec`/`eval`, frame attributes, `try/except*`, `match`, custom metaclasses).

The statement is the body of an async function. It is parsed as a module (`return` and `await`
parse at module level) and the body is spliced into `async def hw_statement():` on the AST, so
every line number is the user's own and multi-line strings are never re-indented.

This module is imported by the sandboxed worker: keep its imports light.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable
from types import CodeType
from typing import NamedTuple

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer

ENTRY = "hw_statement"
FILENAME = "<statement>"

# (module, fromlist): exactly the arguments the statement will pass to __import__.
ImportRequest = tuple[str, tuple[str, ...]]


class StatementRejected(Exception):
    """The statement cannot run; `problems` are "line N: ..." messages in source order."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        super().__init__(problems[0] + suffix)


class GatedStatement(NamedTuple):
    """A statement that passed the gate, compiled for the language policy of layer 2."""

    code: CodeType
    imports: tuple[ImportRequest, ...]
    warnings: tuple[str, ...]  # compiler warnings, e.g. an invalid escape sequence


def check_statement(source: str, allowed_imports: Iterable[str], max_bytes: int) -> GatedStatement:
    """Run every static check on `source` and compile it; raise StatementRejected if it fails."""
    if not isinstance(source, str):
        raise StatementRejected([f"the statement must be text, got {type(source).__name__}"])
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise StatementRejected(
            [
                f"the statement is {size:,} bytes, over the limit of {max_bytes:,} bytes: "
                "move data into the input rows instead of the source"
            ]
        )
    if "\0" in source:
        line = source[: source.index("\0")].count("\n") + 1
        raise StatementRejected(
            [f"line {line}: the statement contains a NUL byte (\\x00); remove it"]
        )
    allowed = frozenset(allowed_imports)
    with warnings.catch_warnings(record=True) as caught:
        # The compiler warns about things like "\d"; in a host that turns warnings into errors
        # that would reject valid statements, so warnings are recorded and reported instead.
        warnings.simplefilter("always")
        tree = _parse(source)
        problems, imports = _check_tree(tree, allowed)
        if problems:
            raise StatementRejected(_in_line_order(problems))
        code = _compile(tree)
    notes = tuple(_describe_warning(w) for w in caught)
    return GatedStatement(code, tuple(imports), notes)


def import_allowed(module: str, allowed: frozenset[str]) -> bool:
    """The seed's literal rule: `import a.b` and `from a.b import c` both need `a.b` listed."""
    return module in allowed


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source, filename=FILENAME, feature_version=(3, 11))
    except SyntaxError as exc:  # IndentationError and TabError too
        where = f"line {exc.lineno}" if exc.lineno else "the statement"
        text = f": {exc.text.strip()}" if exc.text and exc.text.strip() else ""
        raise StatementRejected(
            [f"{where}: {type(exc).__name__}: {exc.msg}{text} (fix the Python syntax)"]
        ) from None
    except ValueError as exc:  # a NUL byte, on versions that raise ValueError for it
        raise StatementRejected([f"the statement cannot be parsed: {exc}"]) from None
    except (RecursionError, MemoryError):
        raise StatementRejected(
            [
                "the statement is nested too deeply to parse: split deeply nested expressions "
                "into several statements or helper functions"
            ]
        ) from None


def _check_tree(tree: ast.Module, allowed: frozenset[str]) -> tuple[list[str], list[ImportRequest]]:
    problems: list[str] = []
    imports: list[ImportRequest] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if import_allowed(alias.name, allowed):
                    imports.append((alias.name, ()))
                else:
                    problems.append(_import_refused(node, alias.name, allowed))
        elif isinstance(node, ast.ImportFrom):
            problem = _check_import_from(node, allowed)
            if problem:
                problems.append(problem)
            else:
                imports.append((node.module or "", tuple(a.name for a in node.names)))
        elif _has_annotation(node):
            problems.append(
                f"line {_line(node)}: type hints are not supported in statements; remove the "
                "annotation (write `number = 1`, not `number: int = 1`)"
            )
        elif _is_bare_sleep(node):
            problems.append(
                f"line {_line(node)}: sleep() returns a coroutine that does nothing unless "
                "awaited; write `await sleep(...)`"
            )
    problems.extend(_yields_in_body(tree))
    return problems, imports


def _check_import_from(node: ast.ImportFrom, allowed: frozenset[str]) -> str | None:
    line = _line(node)
    if node.level:
        return f"line {line}: relative imports are not allowed; import a listed module by name"
    module = node.module or ""
    if any(alias.name == "*" for alias in node.names):
        return f"line {line}: `from {module} import *` is not allowed; import the names you use"
    if not import_allowed(module, allowed):
        return _import_refused(node, module, allowed, from_import=True)
    return None


def _import_refused(
    node: ast.stmt, module: str, allowed: frozenset[str], *, from_import: bool = False
) -> str:
    written = f"from {module} import ..." if from_import else f"import {module}"
    hint = "remove the import; a deployment can extend the allowed imports"
    deeper = sorted(name for name in allowed if name.startswith(module + "."))
    if deeper:
        hint = f"write `import {deeper[0]}` instead (listed modules: {', '.join(deeper)})"
    elif "." in module and module.split(".")[0] in allowed:
        hint = (
            f"write `from {module.rsplit('.', 1)[0]} import {module.rsplit('.', 1)[1]}`; "
            f"'{module}' itself is not listed"
        )
    return (
        f"line {_line(node)}: `{written}` is not allowed: '{module}' is not in the allowed "
        f"imports ({', '.join(sorted(allowed))}); {hint}"
    )


def _has_annotation(node: ast.AST) -> bool:
    if isinstance(node, ast.AnnAssign):
        return True
    if isinstance(node, ast.arg):
        return node.annotation is not None
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return node.returns is not None
    return False


def _is_bare_sleep(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "sleep"
    )


def _yields_in_body(tree: ast.Module) -> list[str]:
    """`yield` in the body itself would turn the statement into an async generator."""
    found: list[str] = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue  # a nested generator function is fine
        if isinstance(node, ast.Yield | ast.YieldFrom):
            found.append(
                f"line {_line(node)}: `yield` is not allowed in the statement body; build a "
                "list and `return` it"
            )
        stack.extend(ast.iter_child_nodes(node))
    return found


_Visited = ast.AST | Iterable[ast.AST] | None  # what RestrictedPython's visitors return


class _StatementPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, with async re-enabled and `obj.n += 1` / `d[k] += 1` allowed.

    Stock RestrictedPython refuses async (the statement *is* an async body) and augmented
    assignment to attributes and items (everyday data code). The targets of the latter are
    already wrapped in `_write_` by the Store-context visitors, so allowing them is safe. The
    async nodes have the same fields as their sync twins, so the sync checks apply unchanged.
    """

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> _Visited:
        return self.visit_FunctionDef(node)  # type: ignore[arg-type]

    def visit_Await(self, node: ast.Await) -> _Visited:
        return self.node_contents_visit(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> _Visited:
        return self.node_contents_visit(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> _Visited:
        return self.visit_With(node)  # type: ignore[arg-type]

    def visit_AugAssign(self, node: ast.AugAssign) -> _Visited:
        if isinstance(node.target, ast.Attribute | ast.Subscript):
            return self.node_contents_visit(node)
        return super().visit_AugAssign(node)


def _compile(tree: ast.Module) -> CodeType:
    wrapper = ast.AsyncFunctionDef(
        name=ENTRY,
        args=ast.arguments(
            posonlyargs=[],
            args=[],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        ),
        body=tree.body or [ast.Pass()],
        decorator_list=[],
        returns=None,
        type_comment=None,
        lineno=1,
        col_offset=0,
    )
    module = ast.fix_missing_locations(ast.Module(body=[wrapper], type_ignores=[]))
    try:
        result = compile_restricted_exec(module, filename=FILENAME, policy=_StatementPolicy)
    except SyntaxError as exc:  # from compile(): `await` in a plain def, `break` outside a loop
        raise StatementRejected(
            [f"line {exc.lineno}: SyntaxError: {exc.msg} (fix the Python syntax)"]
        ) from None
    except (RecursionError, MemoryError):
        raise StatementRejected(["the statement is nested too deeply to compile"]) from None
    if result.errors:
        raise StatementRejected(_in_line_order([_restricted_message(e) for e in result.errors]))
    if result.code is None:  # no errors reported, yet nothing compiled: refuse rather than guess
        raise StatementRejected(["the statement could not be compiled"])
    return result.code


_RP_LINE = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)
_RP_HINTS = (
    ('starts with "_"', "names starting with '_' are reserved by the sandbox; rename it"),
    ("Exec calls are not allowed", "run the code directly instead of through exec()"),
    ("Eval calls are not allowed", "compute the value directly instead of through eval()"),
    ("is a reserved name", "choose another name"),
    ("is a restricted name", "frame and code objects are not available to statements"),
    ("TryStar", "use a plain `try/except`"),
    ("Match statements", "use if/elif instead of match"),
    ("metaclass", "define a plain class"),
    ("Nonlocal", "return values from the inner function instead of using nonlocal"),
)


def _restricted_message(error: str) -> str:
    match = _RP_LINE.match(error)
    line, text = (match.group(1), match.group(2)) if match else ("?", error)
    hint = next((h for needle, h in _RP_HINTS if needle in text), "")
    return f"line {line}: {text}" + (f" ({hint})" if hint else "")


def _in_line_order(problems: list[str]) -> list[str]:
    def key(problem: str) -> int:
        number = problem.removeprefix("line ").split(":", 1)[0]
        return int(number) if number.isdigit() else 0

    return sorted(problems, key=key)


def _line(node: ast.AST) -> int:
    return int(getattr(node, "lineno", 0))


def _describe_warning(caught: warnings.WarningMessage) -> str:
    where = f"line {caught.lineno}: " if caught.filename == FILENAME and caught.lineno else ""
    return f"{where}{caught.category.__name__}: {caught.message}"

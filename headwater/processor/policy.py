"""Layer 2, the language policy: the builtins and guard hooks a compiled statement runs with.

RestrictedPython rewrites every attribute access, write, import and print of the statement into
calls of the hooks built here. The policy gives the seed's semantics and clear error messages;
it is *not* the security boundary (the OS sandbox is), so it errs on the side of refusing.

What the guards refuse, and why:
- names starting with `_`: the door to `__class__`, `__globals__`, `__subclasses__`;
- `str.format`/`format_map` and `string.Formatter`: they traverse attributes inside C code;
- modules outside the allow-list and its descendants: allow-listed modules re-export `os`, `sys`,
  `subprocess`, `ctypes` and `builtins` under public names (`ssl.os`, `warnings.sys`);
- frame, code and traceback objects, and dangerous builtins by identity (`io.open` *is* `open`);
- functions and classes defined in process-, file- or interpreter-level modules (`os.system`
  re-exported as `lib.system`), and a short API deny-list (unsafe YAML loaders, pickle readers);
- writes to modules and library classes, which would poison later rows of the same run.

This module is imported by the sandboxed worker only.
"""

from __future__ import annotations

import builtins
import operator
import os
import string
import types
from collections.abc import Callable, Iterable
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from headwater.processor.gate import import_allowed

STATEMENT_MODULE = "statement"  # __module__ of classes the statement defines
SCRATCH = "/tmp"  # the sandbox's private tmpfs

_SAFE_BUILTINS = """
    abs aiter all anext any ascii bin bool bytearray bytes callable chr classmethod complex dict
    divmod enumerate filter float format frozenset hash hex id int isinstance issubclass iter
    len list map max min next object oct ord pow property range repr reversed round set slice
    sorted staticmethod str sum super tuple type zip Ellipsis NotImplemented
""".split()  # noqa: SIM905 - a word list reads better than one name per line
_DANGEROUS_BUILTINS = """
    open eval exec compile __import__ breakpoint globals locals vars input memoryview help
    getattr setattr delattr hasattr __build_class__ exit quit
""".split()  # noqa: SIM905 - a word list reads better than one name per line
# Roots of modules whose functions and classes reach the process, the file system or the
# interpreter's internals; refused wherever an allow-listed module re-exports them.
_DENIED_ROOTS = frozenset(
    """
    os posix nt sys subprocess _posixsubprocess ctypes _ctypes importlib inspect shutil pickle
    _pickle marshal socket _socket gc code codeop pty signal _signal resource mmap fcntl
    multiprocessing _multiprocessing operator _operator pathlib tempfile runpy zipimport
    sysconfig site
    """.split()  # noqa: SIM905 - a word list reads better than one name per line
)
# Attribute names refused on any module: unsafe deserialisers and the classes behind them.
_DENIED_NAMES = frozenset(
    """
    read_pickle unsafe_load unsafe_load_all full_load full_load_all UnsafeLoader FullLoader
    CUnsafeLoader CFullLoader UnsafeConstructor FullConstructor Unpickler
    """.split()  # noqa: SIM905 - a word list reads better than one name per line
)
_DENIED_PAIRS = frozenset(
    {
        ("yaml", "Loader"),
        ("yaml", "CLoader"),
        ("yaml", "Constructor"),
        ("numpy", "load"),
        ("pandas", "load"),
        ("pandas", "loads"),
        ("io", "open"),
        ("io", "open_code"),
        ("io", "FileIO"),
    }
)
_INTERNAL_TYPES = (types.FrameType, types.CodeType, types.TracebackType)
_PLAIN_TYPES = frozenset(
    {int, float, str, bool, type(None), list, dict, tuple, set, frozenset, bytes}
)
_FUNCTION_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
)
_DEFINED_TYPES = (type, *_FUNCTION_TYPES)  # things with a __module__ telling where they live
_FORMAT_NAMES = frozenset({"format", "format_map"})
_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "@=": operator.imatmul,
}


class Policy:
    """The guard hooks for one run, bound to its allow-list and its log (for `print`)."""

    def __init__(self, allowed_imports: Iterable[str], log: Any) -> None:
        self.allowed = frozenset(allowed_imports)
        self.log = log
        self._dangerous = {
            id(getattr(builtins, n)) for n in _DANGEROUS_BUILTINS if hasattr(builtins, n)
        }
        self._reachable: dict[str, bool] = {}

    # -- reading ---------------------------------------------------------------------------------
    def getattr(self, obj: Any, name: Any, *default: Any) -> Any:
        """`obj.name` in a statement, and the `getattr` builtin it sees."""
        if type(name) is not str or name[:1] == "_":
            raise AttributeError(
                f"attribute {name!r} is not accessible: names starting with '_' are private to "
                "the sandbox"
            )
        if name in _FORMAT_NAMES and (isinstance(obj, str) or _is_subclass(obj, str)):
            raise AttributeError(
                f"str.{name} is not available in statements (it can reach private attributes); "
                "use an f-string or the % operator"
            )
        if isinstance(obj, string.Formatter) or _is_subclass(obj, string.Formatter):
            raise AttributeError("string.Formatter is not available in statements; use f-strings")
        if type(obj) is types.ModuleType:
            self._check_module_name(obj, name)
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if type(value) not in _PLAIN_TYPES:
            self.check_exposed(value, name)
        return value

    def hasattr(self, obj: Any, name: Any) -> bool:
        try:
            self.getattr(obj, name)
        except AttributeError:
            return False
        return True

    def check_exposed(self, value: Any, name: str) -> None:
        """Refuse handing `value` (reached as `.name` or imported as `name`) to the statement."""
        if id(value) in self._dangerous:
            raise AttributeError(f"'{name}' is not available in statements")
        kind = type(value)
        if kind is types.ModuleType:
            module = value.__name__
            if not self._module_reachable(module):
                raise AttributeError(
                    f"module '{module}' (reached as .{name}) is not allowed in statements; "
                    "only the allowed imports and their submodules are"
                )
        elif isinstance(value, _INTERNAL_TYPES):
            raise AttributeError(f"'{name}' is a {kind.__name__} object: not available")
        elif isinstance(value, _DEFINED_TYPES):
            if isinstance(value, type) and issubclass(value, string.Formatter):
                raise AttributeError("string.Formatter is not available in statements")
            owner = getattr(value, "__module__", None)
            if type(owner) is str and owner.split(".", 1)[0] in _DENIED_ROOTS:
                raise AttributeError(
                    f"'{name}' comes from module '{owner}', which statements cannot use"
                )

    def _check_module_name(self, module: types.ModuleType, name: str) -> None:
        root = module.__name__.split(".", 1)[0]
        if name in _DENIED_NAMES or (root, name) in _DENIED_PAIRS:
            hint = "; for YAML use yaml.safe_load" if root == "yaml" else ""
            raise AttributeError(
                f"{module.__name__}.{name} is not available in statements: it can execute code "
                f"or read files{hint}"
            )

    def _module_reachable(self, module: str) -> bool:
        known = self._reachable.get(module)
        if known is None:
            known = any(module == a or module.startswith(a + ".") for a in self.allowed)
            self._reachable[module] = known
        return known

    # -- writing ---------------------------------------------------------------------------------
    def write(self, obj: Any) -> Any:
        """The target of `obj.x = ...`, `obj[k] = ...` and `del`: modules and library classes
        are read-only, so a statement cannot poison state that later rows share."""
        if type(obj) is types.ModuleType:
            raise TypeError(f"module '{obj.__name__}' is read-only in statements")
        if isinstance(obj, type) and obj.__module__ != STATEMENT_MODULE:
            raise TypeError(
                f"class '{obj.__module__}.{obj.__qualname__}' is read-only in statements; "
                "subclass it instead"
            )
        return obj

    def setattr(self, obj: Any, name: Any, value: Any) -> None:
        _check_write_name(name)
        setattr(self.write(obj), name, value)

    def delattr(self, obj: Any, name: Any) -> None:
        _check_write_name(name)
        delattr(self.write(obj), name)

    # -- importing -------------------------------------------------------------------------------
    def import_(
        self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        """The runtime twin of the gate's import rule; `from a import b` values are checked too.

        C code called by the statement imports through the calling frame's `__import__` too
        (`datetime.strptime` needs `_strptime`). Those calls pass a list as fromlist, which
        statement code cannot (its imports pass None or a tuple), and their module goes back to
        the C code, not to the statement, so they are let through.
        """
        if type(fromlist) is list:
            return __import__(name, None, None, fromlist, level)
        if level or type(name) is not str or not import_allowed(name, self.allowed):
            raise ImportError(f"import of '{name}' is not allowed in statements")
        module = __import__(name, None, None, fromlist or (), 0)
        for item in fromlist or ():
            if type(item) is not str or item[:1] == "_":
                raise ImportError(f"cannot import {item!r} from '{name}'")
            if type(module) is types.ModuleType:
                self._check_module_name(module, item)
            if hasattr(module, item):
                self.check_exposed(getattr(module, item), item)
        return module

    # -- files -----------------------------------------------------------------------------------
    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        """`open` limited to the private scratch directory; numpy's C code needs it by name."""
        if kwargs.get("opener") is not None or isinstance(file, int):
            raise PermissionError("open() in statements takes a path under /tmp")
        path = os.fspath(file)
        text = os.fsdecode(path) if isinstance(path, bytes) else path
        real = os.path.realpath(text)
        if real != SCRATCH and not real.startswith(SCRATCH + "/"):
            raise PermissionError(
                f"open() in statements is limited to the private scratch directory {SCRATCH}; "
                f"{text!r} is outside it"
            )
        return builtins.open(real, mode, *args, **kwargs)

    # -- the namespace ---------------------------------------------------------------------------
    def builtins(self) -> dict[str, Any]:
        names: dict[str, Any] = {n: getattr(builtins, n) for n in _SAFE_BUILTINS}
        for n in dir(builtins):
            value = getattr(builtins, n)
            if isinstance(value, type) and issubclass(value, BaseException):
                names[n] = value
        names.update(
            getattr=self.getattr,
            hasattr=self.hasattr,
            setattr=self.setattr,
            delattr=self.delattr,
            __import__=self.import_,
            open=self.open,
            __build_class__=builtins.__build_class__,
        )
        return names

    def globals(self, **provided: Any) -> dict[str, Any]:
        """The base namespace of a run; each execution gets a shallow copy (fresh globals)."""
        log = self.log
        return {
            "__builtins__": self.builtins(),
            "__name__": STATEMENT_MODULE,
            "__metaclass__": type,
            "_getattr_": self.getattr,
            "_getitem_": operator.getitem,
            "_getiter_": iter,
            "_write_": self.write,
            "_inplacevar_": _inplacevar,
            "_apply_": _apply,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_print_": lambda _getattr_=None: _LogPrinter(log),
            **provided,
        }


class _LogPrinter:
    """`print` in a statement: each call becomes one debug entry of the run's log."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def _call_print(self, *objects: Any, sep: Any = " ", **_ignored: Any) -> None:
        sep = " " if sep is None else sep
        if not isinstance(sep, str):
            raise TypeError(f"sep must be None or a string, not {type(sep).__name__}")
        self._log.debug(sep.join(str(o) for o in objects))

    def __call__(self) -> str:  # RestrictedPython's `printed`: output went to the log instead
        return ""


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def _apply(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def _is_subclass(obj: Any, cls: type) -> bool:
    return isinstance(obj, type) and issubclass(obj, cls)


def _check_write_name(name: Any) -> None:
    if type(name) is not str or name[:1] == "_":
        raise AttributeError(
            f"attribute {name!r} is not writable: names starting with '_' are private"
        )

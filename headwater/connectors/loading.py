"""Loading connector code from a `.py` file, an importable module, or source text."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from headwater.errors import ConnectorLoadError, Where


@dataclass(frozen=True)
class ConnectorSource:
    """Where a connector's code comes from, and the code itself.

    The text is kept so a worker process can load the same code, and so a change of code
    is noticed (its fingerprint is part of the component's code version).
    """

    origin: Literal["file", "module", "text"]
    ref: str  # the file path, the module name, or a label for source text
    text: str

    @classmethod
    def from_file(cls, path: str | Path) -> ConnectorSource:
        p = Path(path).expanduser().absolute()
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConnectorLoadError(
                f"connector file {str(path)!r} does not exist", hint="check the path"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConnectorLoadError(f"cannot read connector file {str(path)!r}: {exc}") from exc
        return cls("file", str(p), text)

    @classmethod
    def from_module(cls, name: str) -> ConnectorSource:
        module = _import(name)
        try:
            text = inspect.getsource(module)
        except (OSError, TypeError):
            text = name  # a compiled module: its name is the best fingerprint available
        return cls("module", name, text)

    @classmethod
    def from_text(cls, text: str, label: str = "<connector>") -> ConnectorSource:
        return cls("text", label, text)

    @classmethod
    def resolve(cls, ref: str | Path) -> ConnectorSource:
        """A file when `ref` names one (or ends in .py), else an importable module."""
        path = Path(ref)
        if path.suffix == ".py" or path.exists():
            return cls.from_file(path)
        return cls.from_module(str(ref))

    @property
    def stem(self) -> str:
        """A short name for the code: the file's stem, the module's last part, or the label."""
        if self.origin == "file":
            return Path(self.ref).stem
        return self.ref.rsplit(".", 1)[-1].strip("<>") or "connector"

    def load(self) -> types.ModuleType:
        """Execute the code and return it as a module."""
        if self.origin == "module":
            return _import(self.ref)
        filename = self.ref if self.origin == "file" else f"<{self.ref.strip('<>')}>"
        name = "headwater_connector_" + hashlib.sha256(self.text.encode()).hexdigest()[:12]
        module = types.ModuleType(name)
        module.__file__ = filename
        if self.origin == "file":
            # Like `python connector.py`: modules beside the file can be imported.
            folder = str(Path(self.ref).parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
        try:
            # dont_inherit: the connector's own __future__ imports, not this module's.
            code = compile(self.text, filename, "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise ConnectorLoadError(
                f"syntax error in {self.ref} at line {exc.lineno}: {exc.msg}",
                Where(function="<module>"),
                hint="fix the Python syntax on that line",
            ) from None
        # Dataclasses and pickling look classes up through sys.modules.
        sys.modules[name] = module
        try:
            exec(code, module.__dict__)
        except Exception as exc:
            sys.modules.pop(name, None)
            hint = (
                f"install the missing package ({exc.name}) where Headwater runs"
                if isinstance(exc, ModuleNotFoundError)
                else "the error is in the code at the top level of the connector file"
            )
            raise ConnectorLoadError(
                f"running {self.ref} raised {type(exc).__name__}: {exc}",
                Where(function="<module>"),
                hint=hint,
            ) from exc
        return module


def _import(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConnectorLoadError(
            f"{name!r} is neither a connector file nor an importable module ({exc})",
            hint="pass a path to a .py file, or a module name on PYTHONPATH",
        ) from None
    except Exception as exc:
        raise ConnectorLoadError(
            f"importing module {name!r} raised {type(exc).__name__}: {exc}"
        ) from exc

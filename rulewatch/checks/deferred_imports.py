"""Packages whose modules run on first use, for a process that imports more than it uses.

Importing Great Expectations imports SciPy (about half of its import's CPU),
Altair and the AWS clients, which recording a run never uses: GX imports every
expectation, and a few of them compute or draw with these. :func:`defer` makes
the modules of the packages it names run only when code first reads one of
their attributes; until then ``import scipy.stats`` and ``from scipy import
stats`` bind a module that has only its import metadata (``__spec__``,
``__path__``...). It is :class:`importlib.util.LazyLoader`'s idea with two
differences: reading that metadata does not run the module (the import system
reads it on every later import of the module, and on a parent's ``__path__`` to
import a submodule), and a package runs before its submodule, as in an eager
import. Only modules from Python source are deferred (extension modules and
namespace packages load as usual). One difference remains: an error raised
while such a module runs surfaces at its first use, not at its import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Iterable, Sequence
from typing import Any

#: What the import system reads from a module; reading it does not run a deferred module.
_METADATA = frozenset(
    {"__name__", "__spec__", "__path__", "__loader__", "__package__", "__file__", "__cached__"}
)
_DEFERRABLE = (importlib.machinery.SourceFileLoader, importlib.machinery.SourcelessFileLoader)
_lock = threading.RLock()


class _DeferredModule(types.ModuleType):
    """A module not run yet: reading anything but its import metadata runs it."""

    def __getattribute__(self, name: str) -> Any:
        if name in _METADATA:
            return super().__getattribute__(name)
        _run(self)
        return getattr(self, name)

    def __delattr__(self, name: str) -> None:
        _run(self)
        delattr(self, name)

    def __dir__(self) -> list[str]:
        _run(self)
        return dir(self)


def _run(module: types.ModuleType) -> None:
    """Run a deferred module's code now (its package's first), once."""
    with _lock:
        if type(module) is not _DeferredModule:  # run meanwhile (a package's own import)
            return
        spec = module.__spec__
        assert spec is not None
        parent = sys.modules.get(spec.name.rpartition(".")[0])
        if type(parent) is _DeferredModule:
            _run(parent)
            if type(module) is not _DeferredModule:
                return
        module.__class__ = types.ModuleType
        # what was bound meanwhile (submodules) wins, as it would after an eager import
        bound_before = spec.loader_state.pop("__dict__")
        bound_since = {
            k: v
            for k, v in module.__dict__.items()
            if k not in bound_before or bound_before[k] is not v
        }
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException:
            if sys.modules.get(spec.name) is module:  # as a failed import leaves it
                del sys.modules[spec.name]
            raise
        module.__dict__.update(bound_since)


class _DeferringLoader(importlib.abc.Loader):
    """Wraps a source loader: the module is made, its code runs on first use."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        spec.loader = module.__loader__ = self.loader
        spec.loader_state = {"__dict__": dict(module.__dict__)}
        module.__class__ = _DeferredModule


class DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the named packages' modules as the other finders do and defers their code."""

    def __init__(self, packages: Iterable[str]) -> None:
        self.packages = frozenset(packages)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in self.packages:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if isinstance(spec.loader, _DEFERRABLE):
            spec.loader = _DeferringLoader(spec.loader)
        return spec


def defer(packages: Iterable[str]) -> DeferringFinder:
    """From now on, run the modules of ``packages`` (top-level names) on first use.

    Modules imported already are left as they are. Undo with :func:`undefer`.
    """
    finder = DeferringFinder(packages)
    sys.meta_path.insert(0, finder)
    return finder


def undefer(finder: DeferringFinder) -> None:
    """Import as usual again; modules deferred so far still run on first use."""
    sys.meta_path.remove(finder)


def is_deferred(module: types.ModuleType) -> bool:
    """Whether ``module``'s code has not run yet."""
    return type(module) is _DeferredModule

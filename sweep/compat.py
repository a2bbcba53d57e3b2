"""The first release's module names, kept importable: each is the module that now holds its
names, with a :class:`DeprecationWarning` naming that home.

``from sweep.datasets import load_dataset`` keeps working (and warns: import from
``sweep.data.datasets``). :mod:`sweep` installs :class:`MovedModules` when it is imported;
nothing here imports the modules before an old name is asked for.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

MOVED: dict[str, str] = {
    "sweep.ablate": "sweep.kernels",
    "sweep.datasets": "sweep.data.datasets",
    "sweep.models": "sweep.data.models",
    "sweep.network": "sweep.kernels.network",
    "sweep.store": "sweep.results",
    "sweep.plan": "sweep.results.shards",
}
"""Old module name -> the module that holds its names now."""


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old name of :data:`MOVED` to its new module (the same module object, so
    classes and functions are identical under both names)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} is deprecated; import from {new} instead", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the new module is already loaded."""


def install() -> None:
    """Put :class:`MovedModules` first on ``sys.meta_path``, once (before any finder that
    might still see an old file of the name, such as an editable install of an older checkout)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())

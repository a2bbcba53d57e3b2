"""What made a study's numbers, recorded in its manifest: package versions, the sweep's git
commit and the BLAS code path.

Two machines with the same package versions can still train different networks: OpenBLAS
picks its kernels by CPU (``Haswell``, ``SkylakeX``, ...) and a different kernel rounds
differently (``bench/determinism.json``). The manifest keeps all three so a rerun of any seed
can be compared with the one that made a table.
"""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

import numpy as np


def versions() -> dict[str, str]:
    """Versions of the packages that determine the numbers."""
    import pyarrow
    import sklearn

    import sweep

    return {
        "sweep": sweep.__version__, "python": platform.python_version(), "numpy": np.__version__,
        "scikit-learn": sklearn.__version__, "pyarrow": pyarrow.__version__, "ray": version("ray"),
    }


def source_commit(folder: Path | None = None) -> str:
    """The git commit of the checkout ``folder`` lies in (default: this package's), with
    ``+dirty`` when tracked files have uncommitted changes; ``unknown`` outside a git checkout
    (an installed wheel)."""
    here = folder or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, cwd=here).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def blas_code_paths() -> list[str]:
    """Each BLAS/OpenMP library numpy loaded, as ``"<library> <version> <code path>"`` (e.g.
    ``"openblas 0.3.30 Haswell"``): the code path is the CPU-specific kernel set that decides
    the rounding of every matrix product."""
    from threadpoolctl import threadpool_info

    return [" ".join(str(part) for part in (info.get("internal_api"), info.get("version"), info.get("architecture"))
                     if part) for info in threadpool_info()]


def environment() -> dict[str, object]:
    """The manifest's ``environment`` entry: the sweep's commit and the BLAS code paths."""
    return {"commit": source_commit(), "blas": blas_code_paths(), "machine": platform.machine()}

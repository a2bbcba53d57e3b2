"""The kernels' public API under its first-release name: ``from sweep.ablate import ...``
keeps working. Everything lives in :mod:`sweep.kernels`; this module only re-exports it."""

from sweep.kernels import *  # noqa: F403
from sweep.kernels import __all__  # noqa: F401

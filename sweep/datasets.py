"""The dataset API under its first-release name (``from sweep.datasets import load_dataset``
keeps working). Everything lives in :mod:`sweep.data.datasets`; this module re-exports it."""

from sweep.data.datasets import *  # noqa: F403
from sweep.data.datasets import __all__, reference_inputs  # noqa: F401

"""``python -m analysis explore RESULTS``: ask a trained network questions in the browser.

- :mod:`analysis.explore.session`: the study's rows, networks and live answers (no web library)
- :mod:`analysis.explore.images`: input and weight images as PNG ``data:`` URIs
- :mod:`analysis.explore.app`: the Dash pages and the local server (the ``explore`` extra)
"""

from __future__ import annotations

import importlib.util

EXTRA_PACKAGES = ("dash", "dash_ag_grid")
"""Modules of the ``explore`` extra that :mod:`analysis.explore.app` imports."""


def missing_extra() -> str | None:
    """A one-line install hint when the ``explore`` extra is not installed, else None."""
    missing = [m for m in EXTRA_PACKAGES if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"the explorer needs the explore extra ({', '.join(missing)} not installed): "
            'pip install "ablation-sweep[explore]" (from a checkout: pip install ".[explore]")')

"""``python -m analysis explore RESULTS``: ask a trained network questions in the browser.

- :mod:`analysis.explore.session`: the study's rows, networks and live answers (no web library)
- :mod:`analysis.explore.images`: input and weight images as PNG ``data:`` URIs
- :mod:`analysis.explore.app`: the Dash pages and the local server (the ``explore`` extra)

Links into the explorer
-----------------------
The explorer opens one unit's view from its URL's query string, :data:`UNIT_URL`::

    /?model={dataset}/{model}/{seed}&unit={layer}:{unit}

e.g. ``/?model=digits/nn_392/0&unit=1:3`` (:func:`unit_url` writes one, quoting names). The
report (``python -m analysis RESULTS``), served by the explorer under ``/report/``, links each
unit it names this way; the explorer links back to the report's sections
(``/report/index.html#s<N>``). Both pass the explorer's token guard on the cookie its printed
URL set. This module imports no web library, so the report can import it.
"""

from __future__ import annotations

import importlib.util
from urllib.parse import quote

EXTRA_PACKAGES = ("dash", "dash_ag_grid")
"""Modules of the ``explore`` extra that :mod:`analysis.explore.app` imports."""

UNIT_URL = "/?model={dataset}/{model}/{seed}&unit={layer}:{unit}"
"""Where the explorer shows one unit of one network (a path on the explorer's server)."""

REPORT_PATH = "/report/"
"""Where the explorer serves the report folder (``index.html``, ``figures/``, ``tables/``)."""


def unit_url(dataset: str, model: str, seed: int, layer: int, unit: int) -> str:
    """:data:`UNIT_URL` of one unit, ``dataset`` and ``model`` percent-quoted.

    >>> unit_url("digits", "nn_392", 0, 1, 3)
    '/?model=digits/nn_392/0&unit=1:3'
    """
    return UNIT_URL.format(dataset=quote(dataset, safe=""), model=quote(model, safe=""),
                           seed=int(seed), layer=int(layer), unit=int(unit))


def missing_extra() -> str | None:
    """A one-line install hint when the ``explore`` extra is not installed, else None."""
    missing = [m for m in EXTRA_PACKAGES if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"the explorer needs the explore extra ({', '.join(missing)} not installed): "
            'pip install "ablation-sweep[explore]" (from a checkout: pip install ".[explore]")')

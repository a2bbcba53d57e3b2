"""Small PNG images of inputs for the explorer's pages, as ``data:`` URIs (nothing fetched,
nothing written), in grey or colour. Signed per-input values (weights, synapse effects) are
drawn by the app as heatmaps with a colour scale, unless :func:`flat_value` finds them flat:
then the page says so in words instead of drawing one flat colour. Shapes come from the
dataset record (``sweep.data.datasets.image_shape``); a vector that is no known image is drawn
on a near-square grid (:func:`analysis.figures.image_grid`).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from analysis.figures import image_grid

SIZE = 96
"""Longest side of a drawn image, in pixels (nearest-neighbour upscaling keeps pixels sharp)."""


def _png(rgb: np.ndarray) -> str:
    """``data:image/png;base64,...`` of an (h, w, 3) uint8 image, upscaled to :data:`SIZE`."""
    image = Image.fromarray(rgb, "RGB")
    scale = max(1, SIZE // max(rgb.shape[:2]))
    image = image.resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def input_rgb(values: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """An input row as an RGB image, contrast stretched to its own range: dark ink on white
    for grey images, true colour for ``(h, w, 3)`` ones, NaN (padding, a class with no
    image) white.

    Parameters
    ----------
    values : ndarray of shape (n_features,)
    shape : the dataset's image shape, or None (a near-square grid)

    Returns
    -------
    ndarray of shape (h, w, 3), uint8
    """
    image = image_grid(values, shape)
    finite = image[np.isfinite(image)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    unit = np.nan_to_num((image - low) / (high - low or 1.0), nan=0.0 if image.ndim == 2 else 1.0)
    if image.ndim == 2:
        unit = np.repeat((1.0 - unit)[..., None], 3, axis=-1)
    return np.rint(255 * np.clip(unit, 0, 1)).astype(np.uint8)


def flat_value(values: np.ndarray) -> float | None:
    """The one value every finite entry of ``values`` has (NaN when none is finite), or None
    when they differ: a panel of it would be one flat colour, so the page says it in words."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return float("nan")
    return float(finite[0]) if (finite == finite[0]).all() else None


def input_png(values: np.ndarray, shape: tuple[int, ...] | None) -> str:
    """:func:`input_rgb` as a PNG ``data:`` URI."""
    return _png(input_rgb(values, shape))

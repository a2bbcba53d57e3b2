"""Array backends for the ablation kernels: numpy (default) and torch (CPU or CUDA).

The kernels of :mod:`sweep.kernels` are written once against the array API
(``array_api_compat.array_namespace``); the few operations the array API lacks
(segment sums, rank-1 updates, conversion back to numpy) live here in one lookup table
per backend. torch is optional (the ``gpu`` extra) and imported only when asked for.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_torch_array

from sweep.kernels.network import Network


@dataclass(frozen=True)
class Ops:
    """The backend-specific operations the kernels need.

    Attributes
    ----------
    segment_sum : callable ``(values (m,), ids (m,) int, n) -> (n,)``
        Sum of ``values`` per id, float64 (ids in ``[0, n)``).
    to_numpy : callable ``(array) -> ndarray``
    contiguous : callable ``(array) -> array``
        The same values in C (row-major) order.
    add_outer : callable ``(z (m, k), d (m,), w (k,)) -> z + outer(d, w)``
        A rank-1 update, in place.
    single_thread : callable ``() -> context manager``
        Runs its block with one BLAS thread: the kernels' many small tall-and-narrow
        products run no faster threaded, and much slower when other processes share the
        cores (measured: 2-3x on a loaded 2-core machine).
    """

    segment_sum: Callable[[Any, Any, int], Any]
    to_numpy: Callable[[Any], np.ndarray]
    contiguous: Callable[[Any], Any]
    add_outer: Callable[[Any, Any, Any], Any]
    single_thread: Callable[[], Any]


def _numpy_segment_sum(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(ids, weights=values, minlength=n)


def _torch_segment_sum(values: Any, ids: Any, n: int) -> Any:
    import torch

    out = torch.zeros(n, dtype=torch.float64, device=values.device)
    return out.index_add_(0, ids, values.to(torch.float64))


def _torch_to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy()


def _numpy_add_outer(z: np.ndarray, d: np.ndarray, w: np.ndarray) -> np.ndarray:
    # not BLAS ger: threaded OpenBLAS level-2 calls slow down ~10x on a busy machine
    z += d[:, None] * w[None, :]
    return z


def _torch_add_outer(z: Any, d: Any, w: Any) -> Any:
    return z.addr_(d, w)


@functools.cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _numpy_single_thread() -> Any:
    return _blas_controller().limit(limits=1, user_api="blas")


NUMPY_OPS = Ops(
    _numpy_segment_sum, np.asarray, np.ascontiguousarray, _numpy_add_outer, _numpy_single_thread
)
TORCH_OPS = Ops(
    _torch_segment_sum, _torch_to_numpy, lambda x: x.contiguous(), _torch_add_outer,
    contextlib.nullcontext,
)


def ops_for(array: Any) -> Ops:
    """The :class:`Ops` matching an array's library (numpy or torch)."""
    return TORCH_OPS if is_torch_array(array) else NUMPY_OPS


def namespace(array: Any) -> Any:
    """The array-API namespace of ``array`` (``array_api_compat`` wrapper)."""
    return array_namespace(array)


def to_numpy(array: Any) -> np.ndarray:
    """Any backend array as a numpy array (no copy for numpy input)."""
    return ops_for(array).to_numpy(array)


def _numpy_converter(device: str | None) -> Callable[[np.ndarray], Any]:
    if device not in (None, "cpu"):
        raise ValueError(f"the numpy backend runs on the CPU only, not on {device!r}")
    return np.asarray


def _torch_converter(device: str | None) -> Callable[[np.ndarray], Any]:
    import torch

    return lambda a: torch.as_tensor(np.require(a, requirements="W"), device=device)


CONVERTERS: dict[str, Callable[[str | None], Callable[[np.ndarray], Any]]] = {
    "numpy": _numpy_converter,
    "torch": _torch_converter,
}
"""Backend name -> ``device -> (ndarray -> backend array)``."""


def to_backend(
    net: Network, X: np.ndarray, y: np.ndarray, backend: str = "numpy", device: str | None = None
) -> tuple[Network, Any, Any]:
    """Move a network's weights and a data set onto a backend.

    Parameters
    ----------
    net : Network
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels (stay numpy: labels may be strings)
    backend : {"numpy", "torch"}
    device : str, optional — e.g. ``"cuda"``, ``"cuda:1"``; torch only

    Returns
    -------
    (Network, X, y)
        The network with converted ``coefs`` and ``intercepts`` (``classes`` stay numpy),
        ``X`` converted, ``y`` as a numpy array.
    """
    if backend not in CONVERTERS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {tuple(CONVERTERS)}")
    convert = CONVERTERS[backend](device)
    moved = net.with_weights(
        tuple(convert(w) for w in net.coefs), tuple(convert(b) for b in net.intercepts)
    )
    return moved, convert(X), np.asarray(y)


def network_to_numpy(net: Network) -> Network:
    """The network with its weights as numpy arrays."""
    return net.with_weights(
        tuple(to_numpy(w) for w in net.coefs), tuple(to_numpy(b) for b in net.intercepts)
    )

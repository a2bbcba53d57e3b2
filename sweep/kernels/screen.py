"""Row screening of the ``accuracy`` metric set: which rows an ablation may flip.

An interval (Lipschitz) bound says how much one class score can gain on the predicted one
per unit change of a unit's output (:class:`Screen`, built by :func:`make_screen`,
propagating signed intervals through the later layers); a row whose top-1 lead exceeds
``|d| * bound`` provably keeps its prediction and is skipped. Synapses are screened without
per-synapse work: for each source the rows are ranked by ``|input| / margin`` once and each
synapse's candidate rows are a prefix of that ranking (:func:`prefix_candidates`).
Also the (column, row) pair and chunking helpers the screening passes share with the
kernels. Pure numerics, any backend.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import device as array_device

from sweep.kernels.backend import network_to_numpy
from sweep.kernels.basestate import BaseState
from sweep.kernels.network import Network

SCREEN_ELEMENTS: int = 2**21
"""Elements of the largest (rows x units) array one screening pass may hold."""


_SCORE_MAPS: dict[str, Callable[[int], np.ndarray]] = {
    "softmax": np.eye,
    "logistic": lambda n_classes: np.array([[0.0, 1.0]]),
}
"""``(n_outputs, n_classes)`` map from logits to class scores whose first argmax is the
prediction: the logits themselves (softmax), ``(0, logit)`` (logistic)."""


# --------------------------------------------------------------------------- bounds


def _pair_gain(score_map: np.ndarray) -> np.ndarray:
    """``gain[k, p, c] = M[k, c] - M[k, p]`` of a ``(k, n_classes)`` map ``M``."""
    return score_map[:, None, :] - score_map[:, :, None]


def _interval_gain(net: Network, layer: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bound of the gain of each class score over each other one.

    Interval arithmetic: a change of hidden layer ``layer``'s output inside ``[lo, hi]`` is
    propagated through the later matrices (bounds of ``Δz``) and activations (monotone,
    0 at 0, Lipschitz ``L``: ``Δh`` in ``[L min(lo, 0), L max(hi, 0)]``).

    Parameters
    ----------
    net : Network — numpy weights
    layer : int — hidden layer whose output changes
    lo, hi : ndarray of shape (k, hidden_sizes[layer]) — bounds of the change

    Returns
    -------
    ndarray of shape (k, n_classes, n_classes)
        ``[i, p, c]`` bounds ``Δ(score_c - score_p)`` for change ``i``.
    """
    lip = net.act.lipschitz
    last = len(net.coefs) - 1
    for w in net.coefs[layer + 1 : last]:
        up, down = np.maximum(w, 0), np.minimum(w, 0)
        lo, hi = lip * np.minimum(lo @ up + hi @ down, 0), lip * np.maximum(hi @ up + lo @ down, 0)
    n_classes = len(net.classes)
    score_map = _SCORE_MAPS[net.out_activation](n_classes)
    gain = _pair_gain(net.coefs[last] @ score_map).reshape(hi.shape[1], -1)
    bound = hi @ np.maximum(gain, 0) + lo @ np.minimum(gain, 0)
    return bound.reshape(-1, n_classes, n_classes)


def _gain_table(net: Network, matrix: int, before_activation: bool) -> np.ndarray:
    """Bound of each class's gain on each other per unit change of one unit.

    Parameters
    ----------
    net : Network — numpy weights
    matrix : int — the units are weight matrix ``matrix``'s outputs (the logits if last)
    before_activation : bool — the change is of the unit's pre-activation (else of its
        activation); no difference for the logits

    Returns
    -------
    ndarray of shape (n_out, 2, n_classes, n_classes), float64, >= 0
        ``[j, s, p, c]`` bounds ``Δ(score_c - score_p) / |Δ|`` for a change of unit ``j``
        of sign ``+`` (``s = 0``) or ``-`` (``s = 1``).
    """
    n_classes = len(net.classes)
    if matrix == len(net.coefs) - 1:
        gain = _pair_gain(_SCORE_MAPS[net.out_activation](n_classes))
        return np.maximum(np.stack([gain, -gain], axis=1), 0)
    eye = np.eye(net.coefs[matrix].shape[1])
    lip = net.act.lipschitz if before_activation else None
    tables = []
    for sign in (1.0, -1.0):
        lo = hi = sign * eye
        if lip is not None:
            lo, hi = lip * np.minimum(lo, 0), lip * np.maximum(hi, 0)
        tables.append(_interval_gain(net, matrix, lo, hi))
    return np.maximum(np.stack(tables, axis=1), 0)


@dataclass(frozen=True)
class Screen:
    """What the ``accuracy`` metric set needs to skip rows that keep their prediction.

    ``slack[r, c]``: how much class ``c`` may gain on row ``r``'s predicted class with the
    prediction provably unchanged (``inf`` for the predicted class, ``<= 0`` on near-ties);
    ``inv_margin[r] = 1 / min_c slack[r, c]`` (huge on near-ties); ``pre`` and ``post`` the
    :func:`_gain_table` of the matrix's units before / after their activation, scaled by
    the safety factor ``1 + tolerance``; ``peak`` their max over classes, ``(n_out, 2)``.
    """

    slack: Any
    inv_margin: Any
    pre: Any
    post: Any
    peak_pre: Any
    peak_post: Any


def gain_tables(net: Network, matrix: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_gain_table` of weight matrix ``matrix``'s units before and after their
    activation, float64 numpy, each of shape ``(n_out, 2, n_classes, n_classes)``.

    They depend on the later weight matrices only, and setting weights to 0 can only shrink
    them (every propagated interval contains 0): the tables of a network bound those of any
    copy with some of its later weights zeroed (a pruned one), so they can be computed once.
    """
    net = network_to_numpy(net)
    net = net.with_weights(tuple(w.astype(np.float64) for w in net.coefs), net.intercepts)
    before, after = (_gain_table(net, matrix, b) for b in (True, False))
    return before, after


def make_screen(
    base: BaseState, matrix: int, tables: tuple[np.ndarray, np.ndarray] | None = None
) -> Screen:
    """The :class:`Screen` of ``base`` for changes of weight matrix ``matrix``'s units.

    ``tables``: :func:`gain_tables` when already computed (of ``base.net``, or of a network
    that ``base.net`` only zeroes weights of); computed here otherwise.
    """
    xp = base.xp
    safety = 1 + base.tolerance
    tables = [safety * t for t in (gain_tables(base.net, matrix) if tables is None else tables)]
    scores = base.scores(base.logits.T).T
    top = scores[xp.arange(base.n, device=array_device(scores)), base.pred][:, None]
    slack = top - scores - 2 * base.tolerance * base.scale[:, None]
    own = base.asarray(np.arange(scores.shape[1]))[None, :] == base.pred[:, None]
    slack = xp.where(own, xp.full_like(slack, xp.inf), slack)
    inv = _reciprocal(xp, xp.min(slack, axis=1), xp.finfo(slack.dtype).max)
    pre, post = (base.asarray(t, dtype=slack.dtype) for t in tables)
    return Screen(slack, inv, pre, post, xp.max(pre, axis=(2, 3)), xp.max(post, axis=(2, 3)))


def _reciprocal(xp: Any, x: Any, otherwise: float = float("inf")) -> Any:
    """``1 / x`` where ``x > 0``, else ``otherwise`` (without division warnings)."""
    positive = x > 0
    inv = 1 / xp.where(positive, x, xp.ones_like(x))
    return xp.where(positive, inv, xp.full_like(x, otherwise))


def may_flip(base: BaseState, screen: Screen, units: Any, rows: Any, d: Any) -> Any:
    """Whether the class-wise bound lets a change ``d`` of ``units`` flip ``rows`` (m,)."""
    xp = base.xp
    sign = xp.astype(d < 0, xp.int64)
    gain = xp.abs(d)[:, None] * screen.post[units, sign, base.pred[rows]]
    return xp.any(gain >= screen.slack[rows], axis=1) & (d != 0)


# --------------------------------------------------------------------------- candidate rows


def nonzero_pairs(xp: Any, mask: Any) -> tuple[Any, Any]:
    """(column, row) index pairs of the true entries of ``mask`` (n, g), column-major."""
    cols, rows = xp.nonzero(mask.T)
    return cols, rows


def pairs_over(xp: Any, ratio: Any, up: Any, down: Any | None = None) -> tuple[Any, Any]:
    """(column, row) pairs where ``ratio * up >= 1`` or ``-ratio * down >= 1``, column-major.

    Parameters
    ----------
    ratio : array of shape (n, k) — signed change per unit of margin
    up, down : array of shape (k,) — bound factors of positive / negative changes (no
        negative changes when ``down`` is None)
    """
    return nonzero_pairs(xp, over(ratio, up, down))


def over(ratio: Any, up: Any, down: Any | None = None) -> Any:
    """Mask (n, k) of :func:`pairs_over`: ``ratio * up >= 1`` or ``-ratio * down >= 1``."""
    mask = ratio * up >= 1
    return mask if down is None else mask | (ratio * down <= -1)


def _ragged(xp: Any, starts: Any, counts: Any) -> tuple[Any, Any]:
    """Owner and position of ``concat(arange(s, s + c))`` over ``(starts, counts)`` (k,)."""
    owner = xp.repeat(xp.arange(counts.shape[0], device=array_device(counts)), counts)
    first = xp.cumulative_sum(counts) - counts
    position = xp.arange(owner.shape[0], device=array_device(counts)) - first[owner] + starts[owner]
    return owner, position


def prefix_candidates(
    xp: Any, ratio: Any, factor: Any, local: Any, targets: Any, n_targets: int
) -> tuple[Any, Any]:
    """Rows where ``ratio[row, local[k]] * factor[k] >= 1``, for every synapse ``k``.

    The union of the candidates of each source column is found once; ranking its rows by
    ratio makes each synapse's candidates a prefix of that ranking, so a synapse costs two
    binary searches, however many rows there are.

    Parameters
    ----------
    ratio : array of shape (n, n_local) — the sources' values per unit of margin (>= 0)
    factor : array of shape (k,) — each synapse's bound factor (>= 0)
    local, targets : arrays of shape (k,), int — each synapse's source column in ``ratio``
        and its target (distinct pairs)
    n_targets : int — number of possible targets

    Returns
    -------
    (synapse, row) : arrays of shape (m,), sorted by synapse
    """
    dense = xp.zeros((ratio.shape[1], n_targets), dtype=factor.dtype, device=array_device(factor))
    dense[local, targets] = factor
    cols, rows = pairs_over(xp, ratio, xp.max(dense, axis=1))
    values = ratio[rows, cols]
    n = values.shape[0]
    ordered = xp.sort(values)
    rank = lambda v: n - xp.searchsorted(ordered, v, side="left")  # values >= v
    key = cols * (n + 1) + rank(values)
    order = xp.argsort(key)
    key, rows = key[order], rows[order]
    threshold = _reciprocal(xp, factor)
    start = xp.searchsorted(key, local * (n + 1), side="left")
    stop = xp.searchsorted(key, local * (n + 1) + rank(threshold), side="right")
    owner, position = _ragged(xp, start, stop - start)
    return owner, rows[position]


def column_chunks(n_columns: int, n_rows: int) -> list[tuple[int, int]]:
    """Ranges of columns such that ``n_rows x columns`` fits :data:`SCREEN_ELEMENTS`."""
    step = max(SCREEN_ELEMENTS // max(n_rows, 1), 1)
    return [(lo, min(lo + step, n_columns)) for lo in range(0, n_columns, step)]


def source_chunks(sources: np.ndarray, n_rows: int) -> list[tuple[int, int, np.ndarray]]:
    """Ranges of synapses (sorted by source) whose distinct sources fit one screening pass.

    Returns
    -------
    list of (lo, hi, local)
        ``local`` (hi - lo,) is each synapse's source position among the range's sources.
    """
    if len(sources) == 0:
        return []
    distinct = np.cumsum(np.concatenate([[0], np.diff(sources) != 0]))
    group = distinct // max(SCREEN_ELEMENTS // max(n_rows, 1), 1)
    edges = np.concatenate([[0], np.flatnonzero(np.diff(group)) + 1, [len(sources)]])
    return [
        (int(lo), int(hi), distinct[lo:hi] - distinct[lo]) for lo, hi in itertools.pairwise(edges)
    ]

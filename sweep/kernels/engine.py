"""The batched engine the ablation kernels share: from changed rows to metric columns.

Every ablation is a change ``d`` of one unit's output on some rows (:class:`Changes`): the
next layer's pre-activations change by the rank-1 term ``d * directions[unit]``, and only
the later layers are recomputed, on those rows only, many ablations per pass, in batches
of bounded size (:func:`split_batches`, :func:`row_budget`). :func:`run_ablations`
accumulates the per-ablation metric changes, recomputes near-tie rows the way
``MLPClassifier`` predicts (a full forward pass with the weights actually edited), and
builds the metric columns of :mod:`sweep.kernels.metrics`. Pure numerics, any backend.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep.kernels.backend import network_to_numpy, to_numpy
from sweep.kernels.basestate import BaseState, row_loss
from sweep.kernels.metrics import metrics_from_changes, sample_log_loss
from sweep.kernels.network import Network, forward, predicted_index

METRIC_SETS: tuple[str, ...] = ("full", "accuracy")
"""``full``: every metric column exact; ``accuracy``: all but ``loss`` (NaN) exact, rows
that provably keep their prediction skipped (:mod:`sweep.kernels.screen`)."""

DEFAULT_CHUNK_ELEMENTS: int = 2**18
"""Elements of the largest temporary (changed rows x layer width) one pass may hold: about
1,300 rows of a 196-wide layer, measured fastest (2**16 and 2**20 were 15-50 % slower)."""


def check_metrics(metrics: str) -> None:
    """Raise ValueError unless ``metrics`` is one of :data:`METRIC_SETS`."""
    if metrics not in METRIC_SETS:
        raise ValueError(f"unknown metric set {metrics!r}; expected one of {METRIC_SETS}")


@dataclass(frozen=True)
class Changes:
    """Changed rows of ablations, sorted by ablation.

    Every array has shape ``(m,)``: ``seg`` the ablation (global index), ``rows`` the
    sample row, ``units`` the row of ``directions`` to add, ``d`` its coefficient.
    The new pre-activation of weight matrix ``level`` on ``rows`` is
    ``pre[level][rows] + d * directions[units]``.
    """

    level: int
    directions: Any
    seg: Any
    rows: Any
    units: Any
    d: Any

    def keep(self, mask: Any) -> Changes:
        return Changes(
            self.level, self.directions, self.seg[mask], self.rows[mask], self.units[mask],
            self.d[mask],
        )


@dataclass(frozen=True)
class _Batch:
    """The changes of a contiguous range of ablations ``[lo, hi)``."""

    lo: int
    hi: int
    changes: Changes


@dataclass(frozen=True)
class Flips:
    """The rows whose correctness an ablation changes: per-image outcomes.

    Every array has shape ``(m,)``, one entry per (ablation, row) whose prediction goes from
    right to wrong or from wrong to right; rows whose correctness is unchanged are absent.

    Attributes
    ----------
    ablation : ndarray of shape (m,), int64 — the ablation (index into the kernel's rows)
    row : ndarray of shape (m,), int64 — the sample row
    fixed : ndarray of shape (m,), bool — True: wrong -> right (+1 image); False: right ->
        wrong (-1 image)
    """

    ablation: np.ndarray
    row: np.ndarray
    fixed: np.ndarray

    @classmethod
    def concat(cls, parts: list[Flips]) -> Flips:
        """One :class:`Flips` from several, sorted by (ablation, row)."""
        ablation, row, fixed = (np.concatenate([getattr(p, f) for p in parts] or [np.zeros(0)])
                                for f in ("ablation", "row", "fixed"))
        order = np.lexsort((row, ablation))
        return cls(ablation[order].astype(np.int64), row[order].astype(np.int64),
                   fixed[order].astype(bool))

    def signed(self) -> np.ndarray:
        """+1 for a fixed row, -1 for a broken one, shape ``(m,)``."""
        return np.where(self.fixed, 1, -1).astype(np.int64)


@dataclass
class _Totals:
    """Per-ablation sums of the changes (numpy, float64); ``flips`` collects per-row
    outcomes when not None."""

    broken: np.ndarray
    fixed: np.ndarray
    class_change: np.ndarray
    loss_change: np.ndarray
    flips: list[Flips] | None = None

    @classmethod
    def zeros(cls, k: int, n_classes: int, record_flips: bool = False) -> _Totals:
        return cls(np.zeros(k), np.zeros(k), np.zeros((k, n_classes)), np.zeros(k),
                   [] if record_flips else None)

    def record(self, ablation: np.ndarray, rows: np.ndarray, was: np.ndarray,
               now: np.ndarray) -> None:
        """Keep the (ablation, row) pairs whose correctness changes, if recording."""
        if self.flips is not None:
            changed = was != now
            self.flips.append(Flips(ablation[changed], rows[changed], now[changed]))


def _decide(xp: Any, s: Any, tolerance: float) -> tuple[Any, Any]:
    """Predicted index and near-tie flag of each row, shapes ``(m,)``, from class-major
    scores ``(n_classes, m)``.

    A row is a near-tie when a second score lies within ``tolerance * (1 + max |logit|)``
    of the top one; elsewhere the first argmax of the scores is sklearn's prediction.
    """
    top = xp.max(s, axis=0)
    reach = top - tolerance * (1 + xp.max(xp.abs(s), axis=0))
    near = xp.sum(xp.astype(s > reach, xp.int64), axis=0)
    return xp.argmax(s, axis=0), near > 1


def _new_logits(base: BaseState, ch: Changes) -> Any:
    """Class-major logits of the changed rows, shape ``(n_outputs, m)``: only the layers
    after the change are recomputed (a pruned pass's per-image folds added row by row)."""
    xp, net = base.xp, base.net
    z = xp.take(base.pre[ch.level], ch.rows, axis=0)
    if ch.units.shape[0] == 1:
        z = base.ops.add_outer(z, ch.d, ch.directions[ch.units[0]])
    else:
        z += ch.d[:, None] * ch.directions[ch.units]
    offsets = [None] * (base.last + 1) if base.folds is None else base.folds.offsets
    if ch.level == base.last:
        return base.ops.contiguous(z.T)
    for m in range(ch.level + 1, base.last):
        z = base.activate(z) @ net.coefs[m] + net.intercepts[m]
        if offsets[m] is not None:
            z += xp.take(offsets[m], ch.rows, axis=0)
    logits = net.coefs[base.last].T @ base.activate(z).T + net.intercepts[base.last][:, None]
    if offsets[base.last] is not None:
        logits += xp.take(offsets[base.last], ch.rows, axis=0).T
    return logits


def _accumulate(
    base: BaseState, batch: _Batch, totals: _Totals, tie_rows: Any, with_loss: bool
) -> np.ndarray:
    """Add one batch's changes to ``totals``; return its near-tie pairs for exact recompute.

    Returns
    -------
    ndarray of shape (2, n_ties), int64 — (ablation, row) pairs left out of ``totals``.
    """
    xp, ops, ch = base.xp, base.ops, batch.changes
    y = base.y[ch.rows]
    logits = _new_logits(base, ch)
    pred, tie = _decide(xp, base.scores(logits), base.tolerance)
    keep = ~(tie | tie_rows[ch.rows])
    k = batch.hi - batch.lo
    C = len(base.net.classes)
    ids = ch.seg[keep] - batch.lo
    was = base.right[ch.rows][keep]
    now = (pred == y)[keep]
    as_float = lambda a: xp.astype(a, xp.float64)
    sums = [
        ops.segment_sum(as_float(was & ~now), ids, k),
        ops.segment_sum(as_float(~was & now), ids, k),
        ops.segment_sum(as_float(now) - as_float(was), ids * C + y[keep], k * C),
    ]
    if with_loss:
        loss = row_loss(xp, ops, logits[:, keep], y[keep], base.net.out_activation)[1]
        sums.append(ops.segment_sum(as_float(loss - base.loss[ch.rows][keep]), ids, k))
    broken, fixed, class_change, *loss_change = (to_numpy(s) for s in sums)
    totals.broken[batch.lo : batch.hi] += broken
    totals.fixed[batch.lo : batch.hi] += fixed
    totals.class_change[batch.lo : batch.hi] += class_change.reshape(k, C)
    totals.loss_change[batch.lo : batch.hi] += sum(loss_change, np.zeros(k))
    if totals.flips is not None:
        totals.record(to_numpy(ch.seg[keep]), to_numpy(ch.rows[keep]), to_numpy(was),
                      to_numpy(now))
    return np.stack([to_numpy(ch.seg[~keep]), to_numpy(ch.rows[~keep])]).astype(np.int64)


Edit = Callable[[Network, int, "int | None"], Network]
"""``(numpy network, ablation, row or None) -> the network with its weights edited`` (the
row: whose values a per-image mode's edit uses; None when every row's edit is the same)."""


def _settle_ties(
    base: BaseState, pairs: np.ndarray, edited: Edit, totals: _Totals, per_row: bool = False
) -> None:
    """Recompute (ablation, row) pairs exactly as sklearn would and add their changes.

    The edited network's forward pass runs on all of ``X``, as ``predict`` does: BLAS may
    round a product differently when it has fewer rows (a single row goes through gemv).

    Parameters
    ----------
    pairs : ndarray of shape (2, m), int — unique (ablation, row) pairs
    edited : :data:`Edit`
    per_row : bool — each row has its own edit (a per-image mode): one pass per row
    """
    if pairs.shape[1] == 0:
        return
    net = network_to_numpy(base.net)
    X = to_numpy(base.inputs[0])
    base_pred = to_numpy(base.pred)
    base_loss = to_numpy(base.loss)
    for a, rows in _edit_groups(pairs, per_row):
        prob = forward(edited(net, a, int(rows[0]) if per_row else None), X)[rows]
        y = base.y_np[rows]
        was = base_pred[rows] == y
        now = predicted_index(prob) == y
        totals.broken[a] += np.sum(was & ~now)
        totals.fixed[a] += np.sum(~was & now)
        np.add.at(totals.class_change[a], y, now.astype(np.float64) - was)
        totals.loss_change[a] += np.sum(sample_log_loss(prob, y) - base_loss[rows])
        totals.record(np.full(len(rows), a, dtype=np.int64), rows, was, now)


def _edit_groups(pairs: np.ndarray, per_row: bool) -> Iterator[tuple[int, np.ndarray]]:
    """The (ablation, rows) groups of (ablation, row) ``pairs`` (2, m) that share an edit:
    every row of an ablation, or (``per_row``) each row alone."""
    for a in np.unique(pairs[0]):
        rows = pairs[1, pairs[0] == a]
        for group in (rows[:, None] if per_row else [rows]):
            yield int(a), group


def run_ablations(
    base: BaseState,
    batches: Iterator[_Batch],
    n_ablations: int,
    edited: Edit,
    recheck_base_ties: bool,
    metrics: str,
    flips: list[Flips] | None = None,
    per_row: bool = False,
) -> dict[str, np.ndarray]:
    """Drive the batches, settle the near-ties, and build the metric columns.

    ``flips``: when a list is given, one :class:`Flips` of every (ablation, row) whose
    correctness changes is appended to it (the per-image outcomes behind ``broken`` and
    ``fixed``).

    ``recheck_base_ties``: the edited weights round every row differently (``mean`` mode
    moves the unit's value into the next bias), so rows that are near-ties before the
    ablation are recomputed for every ablation. Otherwise a row whose unit output does not
    change is bit-identical in sklearn's pass and needs nothing.

    ``per_row``: every row has its own edit (a per-image mode), so near-ties are settled one
    row at a time (:data:`Edit` receives the row).
    """
    C = len(base.net.classes)
    totals = _Totals.zeros(n_ablations, C, record_flips=flips is not None)
    tie_rows = base.tie if recheck_base_ties else base.xp.zeros_like(base.tie)
    with base.ops.single_thread():
        ties = [_accumulate(base, b, totals, tie_rows, metrics == "full") for b in batches]
    always = np.flatnonzero(to_numpy(tie_rows))
    ties.append(
        np.stack([np.repeat(np.arange(n_ablations), len(always)), np.tile(always, n_ablations)])
    )
    pairs = np.unique(np.concatenate(ties, axis=1), axis=1)
    _settle_ties(base, pairs, edited, totals, per_row)
    if flips is not None:
        flips.append(Flips.concat(totals.flips))
    loss_change = totals.loss_change if metrics == "full" else np.full(n_ablations, np.nan)
    return metrics_from_changes(
        base.y_np,
        to_numpy(base.pred),
        to_numpy(base.loss),
        np.rint(totals.broken).astype(np.int64),
        np.rint(totals.fixed).astype(np.int64),
        totals.class_change,
        loss_change,
        C,
    )


# --------------------------------------------------------------------------- batching


def ranges(counts: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Split ablations into contiguous ranges of about ``budget`` changed rows each.

    Parameters
    ----------
    counts : ndarray of shape (k,), int — changed rows of each ablation (an upper bound)
    budget : int — rows per range; a range exceeds it by at most one ablation's count
    """
    if len(counts) == 0:
        return []
    group = (np.cumsum(counts) - counts) // max(budget, 1)
    cuts = np.flatnonzero(np.diff(group)) + 1
    edges = np.concatenate([[0], cuts, [len(counts)]])
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def split_batches(ch: Changes, budget: int) -> Iterator[_Batch]:
    """Cut changes (sorted by ablation) into batches of ``budget`` rows.

    An ablation may straddle batches (its sums simply add up). All changes of one ablation
    share their unit, so a batch within a single ablation keeps one unit, broadcast.
    """
    seg = to_numpy(ch.seg)
    for start in range(0, len(seg), max(budget, 1)):
        part = slice(start, min(start + budget, len(seg)))
        lo, hi = int(seg[part.start]), int(seg[part.stop - 1]) + 1
        units = ch.units[part.start : part.start + 1] if hi - lo == 1 else ch.units[part]
        yield _Batch(lo, hi, Changes(
            ch.level, ch.directions, ch.seg[part], ch.rows[part], units, ch.d[part]
        ))


def row_budget(base: BaseState, level: int, chunk_elements: int) -> int:
    """Changed rows one pass may hold so that its widest temporary has ``chunk_elements``."""
    widest = max(int(z.shape[1]) for z in base.pre[level:])
    return max(chunk_elements // widest, 1)

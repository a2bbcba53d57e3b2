"""Per-ablation metrics computed from predictions: accuracy, effect, loss, broken/fixed,
exact McNemar p-values and per-class accuracy changes. Pure numerics.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

METRIC_COLUMNS: dict[str, str] = {
    "n_samples": "int64",
    "accuracy_base": "float64",
    "accuracy": "float64",
    "effect": "float64",
    "loss_base": "float64",
    "loss": "float64",
    "broken": "int64",
    "fixed": "int64",
    "p_mcnemar": "float64",
    "class_effect": "float64[]",
}
"""Columns every ablation kernel returns for each ablation, after its identifying columns,
with their types (``float64[]``: one list of per-class values per row)."""


def mcnemar_p(broken: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Exact two-sided McNemar p-value from the discordant counts.

    Under the null each of the ``broken + fixed`` discordant rows is broken with
    probability 1/2; the p-value is the two-sided binomial test, as
    ``scipy.stats.binomtest(broken, broken + fixed).pvalue``.

    Parameters
    ----------
    broken, fixed : ndarray of shape (n_ablations,), int

    Returns
    -------
    ndarray of shape (n_ablations,), float64; 1.0 where there are no discordant rows.
    """
    b = np.asarray(broken, dtype=np.int64)
    n = b + np.asarray(fixed, dtype=np.int64)
    k = np.minimum(b, n - b)
    p = 2.0 * binom.cdf(k, n, 0.5)
    return np.where(n == 0, 1.0, np.minimum(p, 1.0))


def sample_log_loss(probabilities: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """Per-row cross-entropy ``-log p[y]``, clipped like ``sklearn.metrics.log_loss``.

    Parameters
    ----------
    probabilities : ndarray of shape (..., n_samples, n_classes)
    y_index : ndarray of shape (n_samples,), int — index of each row's true class

    Returns
    -------
    ndarray of shape (..., n_samples)
    """
    eps = np.finfo(probabilities.dtype).eps
    p = np.take_along_axis(probabilities, y_index[..., :, None], axis=-1)[..., 0]
    return -np.log(np.clip(p, eps, 1.0))


def metrics_from_changes(
    y_index: np.ndarray,
    base_pred: np.ndarray,
    base_row_loss: np.ndarray,
    broken: np.ndarray,
    fixed: np.ndarray,
    class_change: np.ndarray,
    loss_change: np.ndarray,
    n_classes: int,
) -> dict[str, np.ndarray]:
    """Metric columns from the unablated outcome and each ablation's changes.

    The fast kernels visit only the rows an ablation changes; what they accumulate there
    is enough for every metric.

    Parameters
    ----------
    y_index : ndarray of shape (n_samples,), int — true class index
    base_pred : ndarray of shape (n_samples,), int — unablated predicted index
    base_row_loss : ndarray of shape (n_samples,) — unablated per-row loss
    broken, fixed : ndarray of shape (n_ablations,), int — rows turned wrong / right
    class_change : ndarray of shape (n_ablations, n_classes), int — change in the number
        of correct rows of each true class
    loss_change : ndarray of shape (n_ablations,) — sum over rows of the change in row loss
    n_classes : int

    Returns
    -------
    dict of str to ndarray
        The :data:`METRIC_COLUMNS`; each has leading dimension ``n_ablations`` and
        ``class_effect`` has shape ``(n_ablations, n_classes)``.
    """
    n = y_index.shape[0]
    k = broken.shape[0]
    broken = np.asarray(broken, dtype=np.int64)
    fixed = np.asarray(fixed, dtype=np.int64)
    base_right = base_pred == y_index
    accuracy_base = base_right.mean()
    accuracy = (int(base_right.sum()) - broken + fixed) / n
    loss_base = base_row_loss.mean()
    class_counts = np.bincount(y_index, minlength=n_classes)
    return {
        "n_samples": np.full(k, n, dtype=np.int64),
        "accuracy_base": np.full(k, accuracy_base),
        "accuracy": accuracy,
        "effect": accuracy - accuracy_base,
        "loss_base": np.full(k, loss_base),
        "loss": (base_row_loss.sum() + np.asarray(loss_change, dtype=np.float64)) / n,
        "broken": broken,
        "fixed": fixed,
        "p_mcnemar": mcnemar_p(broken, fixed),
        "class_effect": np.asarray(class_change, dtype=np.float64) / np.maximum(class_counts, 1),
    }


def ablation_metrics(
    y_index: np.ndarray,
    base_pred: np.ndarray,
    base_row_loss: np.ndarray,
    pred: np.ndarray,
    row_loss: np.ndarray,
    n_classes: int,
) -> dict[str, np.ndarray]:
    """Metric columns for a batch of ablations measured on the same rows (dense input).

    Parameters
    ----------
    y_index : ndarray of shape (n_samples,), int — true class index
    base_pred : ndarray of shape (n_samples,), int — unablated predicted index
    base_row_loss : ndarray of shape (n_samples,) — unablated per-row loss
    pred : ndarray of shape (n_ablations, n_samples), int — predicted index per ablation
    row_loss : ndarray of shape (n_ablations, n_samples) — per-row loss per ablation
    n_classes : int

    Returns
    -------
    dict of str to ndarray
        As :func:`metrics_from_changes`.
    """
    base_right = base_pred == y_index
    right = pred == y_index
    change = right.astype(np.int64) - base_right.astype(np.int64)
    class_change = np.zeros((pred.shape[0], n_classes))
    np.add.at(class_change.T, y_index, change.T)
    return metrics_from_changes(
        y_index,
        base_pred,
        base_row_loss,
        (base_right & ~right).sum(axis=1),
        (~base_right & right).sum(axis=1),
        class_change,
        (row_loss - base_row_loss).sum(axis=1),
        n_classes,
    )


DRAW_COLUMNS: dict[str, str] = {"draws": "int64", "resample_seed": "int64", "effect_sd": "float64"}
"""Columns of an ablation averaged over the draws of a per-image mode (:func:`mean_over_draws`):
how many, their seed, and the standard deviation of ``effect`` over them (ddof 1; 0 for one
draw). Null for a constant mode (:func:`no_draws`)."""


def mean_over_draws(draws: list[dict[str, np.ndarray]], seed: int, spread: str = "effect") -> dict[str, np.ndarray]:
    """One table of ablations from the tables of several draws of a per-image mode.

    Every float column (``accuracy``, ``effect``, ``loss``, ``class_effect``, ...) is the mean
    over the draws; ``broken`` and ``fixed`` (where present) are the rounded means and
    ``p_mcnemar`` is the exact McNemar p-value of those; identifying and int columns are draw
    0's; plus :data:`DRAW_COLUMNS` (``effect_sd``: the sd of column ``spread``).

    Parameters
    ----------
    draws : list of dict of str to ndarray — tables of the same ablations, one per draw
    seed : int — the seed the draws were made with
    spread : str — the column whose sd over the draws is kept (``accuracy``: the same as the
        effect's when the unablated accuracy is one number)
    """
    first = draws[0]
    table = {name: (np.mean([d[name] for d in draws], axis=0) if first[name].dtype.kind == "f" else first[name])
             for name in first}
    if "broken" in first:
        for name in ("broken", "fixed"):
            table[name] = np.rint(np.mean([d[name] for d in draws], axis=0)).astype(np.int64)
        table["p_mcnemar"] = mcnemar_p(table["broken"], table["fixed"])
    effects = np.array([d[spread] for d in draws], dtype=np.float64)
    n = effects.shape[1]
    table["draws"] = np.full(n, len(draws), dtype=np.int64)
    table["resample_seed"] = np.full(n, seed, dtype=np.int64)
    table["effect_sd"] = effects.std(axis=0, ddof=1) if len(draws) > 1 else np.zeros(n)
    return table


def no_draws(n: int) -> dict[str, np.ndarray]:
    """:data:`DRAW_COLUMNS` of ``n`` ablations of a constant mode: all null (object arrays of None)."""
    return {name: np.full(n, None, dtype=object) for name in DRAW_COLUMNS}

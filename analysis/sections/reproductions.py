"""Published results beside ours: the paper's table (Mourao & Florindo), Amjad et al.'s and
Morcos et al.'s findings, each judged over seeds.

Three report-section builders, each returning a section only when the study holds what it
needs: :func:`paper_sections` (neuron sweeps of NN_392 / NN_392_196 on MNIST, one dataset
partition per pixel scaling, as ``experiment=paper`` writes), :func:`amjad_sections`
(cumulative curves ordered by entropy, mutual information and KL-selectivity, high and low
first, and random) and :func:`morcos_sections` (random cumulative curves at two or more
label-noise levels; neuron sweeps and unit statistics for selectivity against importance).

The paper's numbers (:data:`PAPER_NUMBERS`, all 31, SVHN included) are judged against margins
stated here before any run (:data:`QUANTITIES`: ±5 pp for shares, ±0.3 pp for accuracies,
±0.05 pp for the best single-removal gain) with :func:`analysis.noise.verdict_table`:
compatible / incompatible / inconclusive from equivalence and beyond-the-margin tests over
seeds, Bonferroni across the table, ``too few seeds`` under five, ``not run here`` without
runs; beside them the noise-aware shares, split-half reliability, bootstrap category survival
and the variance decomposition of :mod:`analysis.noise`, from each network's per-image outcomes.
Amjad et al.'s and Morcos et al.'s findings are summarised over seeds with :func:`over_seeds`
(the mean, the 95 % interval one more run falls in, the range) and, for differences, the
mean's t-interval (:func:`difference_verdict`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis import figures as fig
from analysis.formatting import number
from analysis.noise import (
    VERDICTS,
    bootstrap_categories,
    category_shares,
    flip_counts,
    noise_categories,
    spearman_brown,
    split_half_reliability,
    variance_components,
    verdict_half_width,
    verdict_table,
)
from analysis.sections.base import FAMILY_KEYS, LAYER_KEYS, Figure, Page, Section, Table
from analysis.sections.cumulative import (
    area_under_curves,
    curve_band,
    label_noise_levels,
    memorization_curves,
    plot_cumulative,
    plot_memorization,
    plot_selectivity_importance,
    selectivity_importance,
    spearman_by_layer,
)
from analysis.sections.impact import impact_table
from analysis.stats import ALPHA, INFORMATIVE_SEEDS, LEVEL, PERCENT, Q, t_interval
from analysis.study import RUN_KEYS, NetworkKey, Study, runs_table
from sweep.kernels import Flips, Network, neuron_flips, unit_statistics


def over_seeds(values: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """One quantity over seeds: ``n``, ``mean``, ``low`` / ``high`` (the interval one more run
    falls in with probability ``level``: mean ± t · sd · sqrt(1 + 1/n)), ``min``, ``max``.

    Parameters
    ----------
    values : ndarray of shape (n_seeds,)
    """
    values = np.asarray(values, dtype=float)
    n, mean = values.size, float(values.mean())
    half = (float(stats.t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) * np.sqrt(1 + 1 / n))
            if n > 1 else np.nan)
    return {"n_seeds": n, "mean": mean, "low": mean - half, "high": mean + half,
            "min": float(values.min()), "max": float(values.max())}


def difference_verdict(values: np.ndarray, level: float = LEVEL) -> dict[str, Any]:
    """A per-seed difference: its mean, the mean's t-interval and whether it is above 0.

    Returns
    -------
    dict with ``n_seeds``, ``mean``, ``low``, ``high`` and ``verdict``: ``"> 0"`` or ``"< 0"``
    when the interval excludes 0, ``"spans 0"`` otherwise, ``"one seed"`` below two seeds.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return {"n_seeds": values.size, "mean": float(values.mean()), "low": np.nan, "high": np.nan,
                "verdict": "one seed"}
    mean, low, high = t_interval(values, level)
    verdict = "> 0" if low > 0 else "< 0" if high < 0 else "spans 0"
    return {"n_seeds": values.size, "mean": mean, "low": low, "high": high, "verdict": verdict}


def interval_text(mean: float, low: float, high: float, n_seeds: int, spec: str = "+.3f") -> str:
    """``+0.175 [-0.148, +0.498] over 3 seeds``, or ``+0.126 from one seed (no interval)``."""
    if n_seeds < 2 or np.isnan(low):
        return f"{mean:{spec}} from one seed (no interval)"
    return f"{mean:{spec}} [{low:{spec}}, {high:{spec}}] over {n_seeds} seeds"


# =========================================================================== the paper


@dataclass(frozen=True)
class Quantity:
    """A per-run number of the paper's table: how it is shown and judged.

    ``margin`` is the difference from the paper's number (in ``unit``) within which a
    reproduction counts as compatible, stated here before any run (None: shown, never judged).
    """

    label: str
    unit: str
    scale: float
    per_layer: bool = True
    bounds: tuple[float, float] | None = None
    """What the quantity can be: intervals stay inside it (no accuracy above 100 %)."""
    margin: float | None = None


SHARE_MARGIN = 5.0
"""Shares of a layer (helpful, neutral, harmful): compatible within ±5 pp."""

ACCURACY_MARGIN = 0.3
"""Accuracies: compatible within ±0.3 pp (21 of 7,000 test images)."""

GAIN_MARGIN = 0.05
"""The best single-removal gain: compatible within ±0.05 pp (3.5 of 7,000 test images)."""

QUANTITIES: dict[str, Quantity] = {
    "train_accuracy": Quantity("train accuracy", "%", 100.0, False, PERCENT, ACCURACY_MARGIN),
    "accuracy_base": Quantity("test accuracy", "%", 100.0, False, PERCENT, ACCURACY_MARGIN),
    "accuracy_best_removal": Quantity("test accuracy after the best single removal", "%", 100.0, False, PERCENT,
                                      ACCURACY_MARGIN),
    "max_effect": Quantity("best single-removal gain", "pp", 100.0, True, (-100.0, 100.0), GAIN_MARGIN),
    "pct_helpful": Quantity("helpful neurons", "%", 1.0, True, PERCENT, SHARE_MARGIN),
    "pct_neutral": Quantity("neutral neurons", "%", 1.0, True, PERCENT, SHARE_MARGIN),
    "pct_harmful": Quantity("harmful neurons", "%", 1.0, True, PERCENT, SHARE_MARGIN),
    "pct_helpful_noise": Quantity("helpful, beyond test-image noise", "%", 1.0, True, PERCENT),
    "pct_indistinguishable": Quantity("indistinguishable from test-image noise", "%", 1.0, True, PERCENT),
    "pct_harmful_noise": Quantity("harmful, beyond test-image noise", "%", 1.0, True, PERCENT),
    "pct_within_one_image": Quantity("changing the test count by at most one image", "%", 1.0, True, PERCENT),
    "n_silent": Quantity("units silent on every test image", "units", 1.0),
}
"""The reproduction table's quantities, keyed by the per-seed table's columns
(:func:`seed_table`); accuracies are per network (layer ``network``). The noise-aware shares
follow :func:`analysis.noise.noise_categories` at q = :data:`Q`."""


@dataclass(frozen=True)
class PaperNumber:
    """One number the paper reports: ``layer`` 0 is the paper's first hidden layer, None the
    whole network; ``count`` the neurons a share stands for; ``derived``: not printed, but
    100 minus the two other shares."""

    dataset: str
    model: str
    layer: int | None
    quantity: str
    value: float
    count: int | None = None
    derived: bool = False


PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    PaperNumber("mnist", "nn_392", None, "train_accuracy", 99.78),
    PaperNumber("mnist", "nn_392", None, "accuracy_base", 98.06),
    PaperNumber("mnist", "nn_392", None, "accuracy_best_removal", 98.10),
    PaperNumber("mnist", "nn_392", 0, "max_effect", 0.04),
    PaperNumber("mnist", "nn_392", 0, "pct_helpful", 65.05, 255),
    PaperNumber("mnist", "nn_392", 0, "pct_neutral", 27.04, 106),
    PaperNumber("mnist", "nn_392", 0, "pct_harmful", 7.91, 31),
    PaperNumber("svhn", "nn_392", None, "train_accuracy", 65.07),
    PaperNumber("svhn", "nn_392", None, "accuracy_base", 59.83),
    PaperNumber("svhn", "nn_392", 0, "pct_helpful", 2.55, 10),
    PaperNumber("svhn", "nn_392", 0, "pct_neutral", 97.45, 382),
    PaperNumber("svhn", "nn_392", 0, "pct_harmful", 0.00, 0),
    PaperNumber("mnist", "nn_392_196", None, "train_accuracy", 99.95),
    PaperNumber("mnist", "nn_392_196", None, "accuracy_base", 98.21),
    PaperNumber("mnist", "nn_392_196", 0, "pct_helpful", 39.29, 154),
    PaperNumber("mnist", "nn_392_196", 0, "pct_harmful", 19.90, 78),
    PaperNumber("mnist", "nn_392_196", 0, "pct_neutral", 40.81, 160, derived=True),
    PaperNumber("mnist", "nn_392_196", 1, "pct_helpful", 39.80, 78),
    PaperNumber("mnist", "nn_392_196", 1, "pct_harmful", 36.73, 72),
    PaperNumber("mnist", "nn_392_196", 1, "pct_neutral", 23.47, 46, derived=True),
    PaperNumber("mnist", "nn_392_196", 0, "max_effect", 0.07),
    PaperNumber("mnist", "nn_392_196", 1, "max_effect", 0.11),
    PaperNumber("svhn", "nn_392_196", None, "train_accuracy", 87.94),
    PaperNumber("svhn", "nn_392_196", None, "accuracy_base", 80.31),
    PaperNumber("svhn", "nn_392_196", 0, "pct_helpful", 5.61, 22),
    PaperNumber("svhn", "nn_392_196", 0, "pct_harmful", 0.00, 0),
    PaperNumber("svhn", "nn_392_196", 0, "pct_neutral", 94.39, 370, derived=True),
    PaperNumber("svhn", "nn_392_196", 1, "pct_helpful", 77.55, 152),
    PaperNumber("svhn", "nn_392_196", 1, "pct_harmful", 10.71, 21),
    PaperNumber("svhn", "nn_392_196", 1, "pct_neutral", 11.73, 23, derived=True),
    PaperNumber("svhn", "nn_392_196", 1, "max_effect", 0.22),
)
"""Every number Mourao & Florindo report (DOI 10.5540/03.2025.011.01.0382), MNIST and SVHN,
one run each (``../shared/reference/mourao-florindo-2025.csv``, checked by the tests)."""

PAPER_MODELS = tuple(dict.fromkeys(n.model for n in PAPER_NUMBERS))

PAPER_DATASETS = tuple(dict.fromkeys(n.dataset for n in PAPER_NUMBERS))

SCALINGS = {"none": "raw 0-255", "unit": "pixels / 255", "standard": "z-scored"}
"""How each ``dataset.scale`` is named in the reproduction table."""

N_SPLITS = 100
"""Random halves of the test split per network for the split-half reliability."""

N_BOOT = 200
"""Bootstrap resamples of the test images per network."""

NOT_RUN = "not run here"

ONE_SPLIT = " (one split)"
"""Appended to the scaling of runs whose seeds all share one train/test split (e.g.
``dataset.split_seed=0 dataset.label=mnist-unit-fixed``): they are judged apart, and their
spread (the seed's alone) separates split from seed in :func:`variance_table`."""


def paper_runs(manifest: dict[str, Any], datasets: dict[str, str] | None = None) -> pd.DataFrame:
    """The study's runs of the paper's networks without label noise.

    Parameters
    ----------
    datasets : dict, optional — paper dataset -> the dataset name whose runs stand for it
        (default: each its own name; tests let ``digits`` stand for ``mnist``)

    Returns
    -------
    DataFrame
        ``dataset, model, seed, paper_dataset, scaling`` (:data:`SCALINGS` names, plus
        :data:`ONE_SPLIT` where every seed of a dataset label shares one split),
        ``split_seed``; the manifest's run entry in ``run``.
    """
    names = {ours: paper for paper, ours in (datasets or {d: d for d in PAPER_DATASETS}).items()}
    rows = [
        {"dataset": r["dataset"], "model": r["model"], "seed": int(r["seed"]), "paper_dataset": names[p.get("name")],
         "scaling": SCALINGS.get(p.get("scale", "unit"), p.get("scale")), "split_seed": p.get("split_seed"), "run": r}
        for r in manifest.get("runs", [])
        if (p := r.get("dataset_params") or {}).get("name") in names and r["model"] in PAPER_MODELS
        and not p.get("label_noise")
    ]
    runs = pd.DataFrame(rows, columns=[*RUN_KEYS, "paper_dataset", "scaling", "split_seed", "run"])
    shared = runs.groupby(["dataset", "model"])["split_seed"].transform(lambda s: s.nunique() == 1 and len(s) > 1)
    runs.loc[shared.astype(bool), "scaling"] += ONE_SPLIT
    return runs


@dataclass(frozen=True)
class NetworkNoise:
    """One network's per-image outcomes on its test split and what follows from them.

    ``silent``: units silent on every test image per layer; ``flips``: every hidden unit's
    removal (zero mode), all layers as one family (``groups``: each ablation's layer);
    ``reliability`` (per layer: split-half Spearman, Spearman-Brown, harmful Jaccard, means
    over :data:`N_SPLITS` halves); ``survival`` (per layer: share of neurons keeping their
    sign / noise-aware category in at least 95 % of :data:`N_BOOT` resamples) and ``shares``
    (the bootstrap resamples' shares per layer).
    """

    silent: pd.DataFrame
    reliability: pd.DataFrame
    survival: pd.DataFrame
    shares: pd.DataFrame
    counts: pd.DataFrame


def network_noise(net: Network, X: np.ndarray, y: np.ndarray, q: float = Q, seed: int = 0,
                  flips: list[Flips] | None = None) -> NetworkNoise:
    """Per-image outcomes of every hidden unit's removal (zero mode) on ``(X, y)`` and the
    noise statistics of :mod:`analysis.noise` they give, exact and without new sweeps.

    Parameters
    ----------
    net : Network; X : ndarray of shape (n, n_features); y : ndarray of shape (n,)
    flips : list of Flips, optional — each hidden layer's :func:`sweep.kernels.neuron_flips`
        (every unit, zero mode) when already computed
    """
    parts, groups, offset = [], [], 0
    for layer, width in enumerate(net.hidden_sizes):
        flips_ = neuron_flips(net, X, y, layer, np.arange(width)) if flips is None else flips[layer]
        parts.append((flips_.ablation + offset, flips_.row, flips_.fixed))
        groups.append(np.full(width, layer))
        offset += width
    ablation, row, fixed = (np.concatenate([p[i] for p in parts]) for i in range(3))
    groups = np.concatenate(groups)
    stats_ = unit_statistics(net, X, y)
    silent = np.bincount(stats_["layer"], weights=stats_["activation_rate"] == 0, minlength=len(net.hidden_sizes))
    reliability = []
    for layer in range(len(net.hidden_sizes)):
        at = np.flatnonzero(groups == layer)
        mine = np.isin(ablation, at)
        halves = split_half_reliability(ablation[mine] - at[0], row[mine], fixed[mine], len(at), len(y),
                                        N_SPLITS, seed)
        reliability.append({"layer": layer, "spearman": halves["spearman"].mean(),
                            "spearman_brown": spearman_brown(halves["spearman"].mean()),
                            "harmful_jaccard": halves["harmful_jaccard"].mean()})
    boot = bootstrap_categories(ablation, row, fixed, groups, len(y), N_BOOT, seed, q=q)
    survival = boot.units.groupby("group").agg(
        category_survives=("category_survival", lambda s: 100 * (s >= 0.95).mean()),
        noise_survives=("noise_survival", lambda s: 100 * (s >= 0.95).mean()),
    ).rename_axis("layer").reset_index()
    n_fixed, n_broken = flip_counts(ablation, row, fixed, len(groups), np.ones(len(y)))
    counts = pd.DataFrame({"layer": groups, "unit": np.concatenate([np.arange(w) for w in net.hidden_sizes]),
                           "fixed": n_fixed.astype(np.int64), "broken": n_broken.astype(np.int64)})
    return NetworkNoise(pd.DataFrame({"layer": np.arange(len(silent)), "n_silent": silent.astype(int)}),
                        pd.DataFrame(reliability), survival, boot.shares.rename(columns={"group": "layer"}), counts)


def seed_table(neurons: pd.DataFrame, runs: pd.DataFrame, noises: dict[tuple, NetworkNoise],
               q: float = Q) -> pd.DataFrame:
    """Every :data:`QUANTITIES` value per network and layer (network-level ones on each layer's row).

    Parameters
    ----------
    neurons : DataFrame — neuron rows (zero mode, test split) of the runs
    runs : DataFrame — :func:`paper_runs` (with ``train_accuracy``)
    noises : dict of (dataset, model, seed) to NetworkNoise

    Returns
    -------
    DataFrame
        ``dataset, model, seed, paper_dataset, scaling, layer``, the :data:`QUANTITIES`
        columns in their units' scale (shares in %, accuracies as fractions: the quantity's
        ``scale`` turns them into %), ``n_units`` and ``n_samples``.
    """
    categorized = noise_categories(neurons, FAMILY_KEYS, q=q)
    shares = category_shares(categorized, LAYER_KEYS)
    impact = impact_table(neurons, q=q)
    table = impact[[*LAYER_KEYS, "accuracy_base", "max_effect"]].merge(shares, on=LAYER_KEYS)
    table = table.merge(neurons.groupby(RUN_KEYS)["n_samples"].first().reset_index(), on=RUN_KEYS)
    within = (neurons["fixed"] - neurons["broken"]).abs() <= 1
    table = table.merge((100.0 * within.groupby([neurons[k] for k in LAYER_KEYS]).mean()).rename(
        "pct_within_one_image").reset_index(), on=LAYER_KEYS)
    table["accuracy_best_removal"] = table["accuracy_base"] + table.groupby(RUN_KEYS)["max_effect"].transform("max")
    silent = pd.concat([n.silent.assign(**dict(zip(RUN_KEYS, key))) for key, n in noises.items()]) if noises else \
        pd.DataFrame(columns=[*RUN_KEYS, "layer", "n_silent"])
    table = table.merge(silent, on=[*RUN_KEYS, "layer"], how="left")
    table = table.merge(runs[[*RUN_KEYS, "paper_dataset", "scaling", "train_accuracy"]], on=RUN_KEYS)
    front = [*RUN_KEYS, "paper_dataset", "scaling", "layer"]
    return table[front + [c for c in [*QUANTITIES, "n_units", "n_samples"] if c in table]]


def reproduction_table(seeds: pd.DataFrame, *, alpha: float = ALPHA,
                       min_seeds: int = INFORMATIVE_SEEDS) -> pd.DataFrame:
    """Every quantity over seeds per paper dataset, scaling, model and layer, beside the
    paper's number and a three-way verdict (:func:`analysis.noise.verdict_table`: Bonferroni
    across every judged row; ``too few seeds`` below ``min_seeds``); every paper number
    without runs is a row marked ``not run here``.

    Returns
    -------
    DataFrame
        ``dataset`` (the paper's), ``model, layer`` (``network`` for per-network
        quantities), ``quantity, unit, scaling, paper, derived, margin`` and ``n_seeds, mean,
        min, max, low, high, width, p_equivalent, p_beyond, alpha, n_comparisons, verdict``
        (``-`` where the paper gives no number or no margin applies).
    """
    paper = {(n.dataset, n.model, n.layer, n.quantity): n for n in PAPER_NUMBERS}
    judged, shown, seen = [], [], set()
    for name, quantity in QUANTITIES.items():
        if name not in seeds:
            continue
        chosen = seeds if quantity.per_layer else seeds[seeds["layer"] == 0]
        for (dataset, model, layer, scaling), group in chosen.groupby(
                ["paper_dataset", "model", "layer", "scaling"], sort=True):
            layer_key = int(layer) if quantity.per_layer else None
            values = group[name].to_numpy(float) * quantity.scale
            number = paper.get((dataset, model, layer_key, name))
            seen.add((dataset, model, layer_key, name))
            row = {"dataset": dataset, "model": model, "layer": "network" if layer_key is None else layer_key,
                   "quantity": quantity.label, "unit": quantity.unit, "scaling": scaling,
                   "paper": number.value if number else np.nan, "derived": bool(number and number.derived),
                   "min": values.min(), "max": values.max()}
            if number and quantity.margin is not None:
                judged.append({**row, "values": values, "published": number.value, "margin": quantity.margin,
                               "bounds": quantity.bounds})
            else:
                shown.append({**row, "n_seeds": len(values), "mean": values.mean(), "verdict": "-"})
    missing = [{"dataset": n.dataset, "model": n.model, "layer": "network" if n.layer is None else n.layer,
                "quantity": QUANTITIES[n.quantity].label, "unit": QUANTITIES[n.quantity].unit, "scaling": "-",
                "paper": n.value, "derived": n.derived, "n_seeds": 0, "verdict": NOT_RUN}
               for key, n in paper.items() if key not in seen]
    verdicts = verdict_table(pd.DataFrame(judged), alpha=alpha, min_seeds=min_seeds) if judged else pd.DataFrame()
    if len(verdicts):
        verdicts = verdicts.drop(columns=["published"])
    table = pd.concat([verdicts, pd.DataFrame(shown), pd.DataFrame(missing)], ignore_index=True)
    order = {q.label: i for i, q in enumerate(QUANTITIES.values())}
    table["_order"] = table["quantity"].map(order)
    table["_layer"] = table["layer"].map(lambda v: -1 if v == "network" else int(v))
    columns = ["dataset", "model", "layer", "quantity", "unit", "scaling", "paper", "derived", "margin", "n_seeds",
               "mean", "min", "max", "low", "high", "width", "p_equivalent", "p_beyond", "alpha", "n_comparisons",
               "verdict"]
    table = table.sort_values(["dataset", "model", "_layer", "_order", "scaling"], kind="stable")
    return table.reindex(columns=columns).reset_index(drop=True)


def reliability_table(runs: pd.DataFrame, noises: dict[tuple, NetworkNoise]) -> pd.DataFrame:
    """Per network and layer: split-half reliability and bootstrap category survival.

    Returns
    -------
    DataFrame
        ``dataset, model, seed, scaling, layer, spearman, spearman_brown, harmful_jaccard,
        category_survives, noise_survives`` (survival: % of the layer's neurons keeping their
        category in at least 95 % of resamples), ``harmful_low, harmful_high`` (the central
        95 % of the resampled harmful share, %).
    """
    rows = []
    for key, noise_ in noises.items():
        spread = noise_.shares.groupby("layer")["pct_harmful"].quantile([0.025, 0.975]).unstack()
        spread.columns = ["harmful_low", "harmful_high"]
        part = noise_.reliability.merge(noise_.survival, on="layer").merge(spread.reset_index(), on="layer")
        rows.append(part.assign(**dict(zip(RUN_KEYS, key))))
    if not rows:
        return pd.DataFrame()
    table = pd.concat(rows, ignore_index=True).merge(runs[[*RUN_KEYS, "scaling"]], on=RUN_KEYS)
    front = [*RUN_KEYS, "scaling", "layer"]
    return table[front + [c for c in table.columns if c not in front]]


VARIANCE_QUANTITIES = ("accuracy_base", "pct_helpful", "pct_harmful")
"""The quantities whose spread across runs is decomposed."""


def variance_table(seeds: pd.DataFrame, noises: dict[tuple, NetworkNoise]) -> pd.DataFrame:
    """Where the spread of each share and accuracy across runs comes from
    (:func:`analysis.noise.variance_components`): test-image sampling (bootstrap within each
    network; for an accuracy ``a (1 - a) / n``, the bootstrap variance of a mean of
    right/wrong), and the rest: split and seed, separated when the study also has seeds of the
    same network and scaling on one fixed split (scaling ending in :data:`ONE_SPLIT`).

    Returns
    -------
    DataFrame
        ``model, scaling, layer, quantity, component, variance, share, sd`` (in the
        quantity's unit squared / unit).
    """
    rows = []
    own_splits = seeds[~seeds["scaling"].str.endswith(ONE_SPLIT)]
    for (model, scaling, layer), group in own_splits.groupby(["model", "scaling", "layer"], sort=True):
        if group["seed"].nunique() < 2:
            continue
        fixed = seeds[(seeds["model"] == model) & (seeds["scaling"] == scaling + ONE_SPLIT) & (seeds["layer"] == layer)]
        for name in VARIANCE_QUANTITIES:
            quantity = QUANTITIES[name]
            if not quantity.per_layer and layer != 0:
                continue
            values = group[name].to_numpy(float) * quantity.scale
            if name == "accuracy_base":
                a = group["accuracy_base"].to_numpy(float)
                sampling = (quantity.scale ** 2) * a * (1 - a) / group["n_samples"].to_numpy(float)
            else:
                sampling = np.array([
                    noises[key].shares.loc[noises[key].shares["layer"] == layer, name].var(ddof=1)
                    for key in map(tuple, group[RUN_KEYS].itertuples(index=False)) if key in noises])
            if not len(sampling):
                continue
            part = variance_components(values, sampling,
                                       fixed[name].to_numpy(float) * quantity.scale if len(fixed) >= 2 else None)
            rows.append(part.assign(model=model, scaling=scaling, layer="network" if not quantity.per_layer else layer,
                                    quantity=quantity.label))
    if not rows:
        return pd.DataFrame()
    table = pd.concat(rows, ignore_index=True)
    return table[["model", "scaling", "layer", "quantity", "component", "variance", "share", "sd"]]


def plot_variance(table: pd.DataFrame, ax: Any) -> None:
    """One stacked bar per (model, layer, quantity, scaling): the shares of its variance
    across runs that test-image sampling and the rest (split and seed) explain."""
    parts = table[table["component"] != "total"]
    wide = parts.pivot_table(index=["model", "scaling", "layer", "quantity"], columns="component", values="share",
                             aggfunc="first", sort=True).fillna(0.0)
    labels = [f"{m} {s}\nlayer {l}: {q}" for m, s, l, q in wide.index]
    bottom = np.zeros(len(wide))
    for component in wide.columns:
        ax.barh(np.arange(len(wide)), wide[component], left=bottom, label=component)
        bottom += wide[component].to_numpy()
    ax.set_yticks(np.arange(len(wide)), labels, fontsize=6)
    ax.set_xlabel("share of the variance across runs (%)")
    ax.legend(fontsize=7, loc="lower right")


def plot_shares(table: pd.DataFrame, axes: np.ndarray) -> None:
    """Helpful / neutral / harmful shares per scaling (dot: mean over seeds; bar: min-max
    over seeds) against the paper's (black crosses), one panel per network layer."""
    shares = table[table["unit"].eq("%") & table["quantity"].isin(
        [QUANTITIES[c].label for c in ("pct_helpful", "pct_neutral", "pct_harmful")]) & table["n_seeds"].gt(0)]
    panels = list(shares.groupby(["model", "layer"], sort=True))
    scalings = sorted(shares["scaling"].unique())
    categories = [QUANTITIES[c].label for c in ("pct_helpful", "pct_neutral", "pct_harmful")]
    for ax, ((model, layer), rows) in zip(axes, panels):
        for i, scaling in enumerate(scalings):
            part = rows[rows["scaling"] == scaling].set_index("quantity").reindex(categories)
            x = np.arange(len(categories)) + (i - (len(scalings) - 1) / 2) * 0.2
            ax.errorbar(x, part["mean"], yerr=[part["mean"] - part["min"], part["max"] - part["mean"]],
                        fmt="o", capsize=3, label=scaling)
        published = rows.drop_duplicates("quantity").set_index("quantity").reindex(categories)["paper"]
        ax.scatter(np.arange(len(categories)), published, marker="x", color="black", s=60, zorder=3,
                   label="paper")
        ax.set_xticks(np.arange(len(categories)), [c.split()[0] for c in categories])
        ax.set_ylabel("share of the layer (%)")
        ax.set_title(f"{model} layer {layer}")
    axes[0].legend(fontsize=7)


def honest_answer(table: pd.DataFrame, seeds: pd.DataFrame, reliability: pd.DataFrame) -> str:
    """The reproduction section's opening paragraph: what the study can and cannot say."""
    counts = table[table["paper"].notna()]
    n_numbers = len(counts.drop_duplicates(["dataset", "model", "layer", "quantity"]))
    not_run = int((counts["verdict"] == NOT_RUN).sum())
    judged = counts[counts["verdict"].isin(["compatible", "incompatible", "inconclusive"])]
    few = counts[counts["verdict"] == "too few seeds"]
    by_verdict = judged["verdict"].value_counts()
    n_seeds = seeds.groupby(["model", "scaling"])["seed"].nunique()
    parts = [f"Of the paper's {n_numbers} numbers, {not_run} are {NOT_RUN} "
             "(this study has no runs of their network and dataset)."]
    if len(few):
        parts.append(f"{len(few)} comparisons have fewer than {INFORMATIVE_SEEDS} seeds "
                     f"({n_seeds.min()}-{n_seeds.max()} per network and scaling): they get no verdict, only an "
                     f"interval, and with so few seeds that interval is wide (half-width "
                     f"{verdict_half_width(max(int(n_seeds.min()), 2)):.1f} standard deviations of the runs).")
    if len(judged):
        parts.append(f"{len(judged)} comparisons are judged against margins stated before any run "
                     f"(±{SHARE_MARGIN:g} pp for shares, ±{ACCURACY_MARGIN:g} pp for accuracies, "
                     f"±{GAIN_MARGIN:g} pp "
                     f"for the best gain; Bonferroni across them): "
                     + ", ".join(f"{by_verdict.get(v, 0)} {v}" for v in ("compatible", "incompatible", "inconclusive"))
                     + ".")
        if by_verdict.get("inconclusive", 0):
            parts.append("The paper reports one run per number, so its own run-to-run spread enters every "
                         "comparison: a quantity that varies across runs by more than its margin stays "
                         "inconclusive however many seeds are added.")
    if "pct_indistinguishable" in seeds:
        parts.append("Most single-neuron effects are test-image noise: on average "
                     f"{seeds['pct_within_one_image'].mean():.1f} % of a layer's neurons change the test count "
                     f"by at most one image and {seeds['pct_indistinguishable'].mean():.1f} % "
                     f"cannot be told from noise (exact McNemar, BH at q = {Q:g}), so the paper's "
                     "helpful / neutral / harmful split is mostly a property of which test images were drawn")
        if len(reliability):
            parts[-1] += (f"; split-half reliability of per-neuron effects is Spearman "
                          f"{reliability['spearman'].mean():.2f} (Spearman-Brown "
                          f"{reliability['spearman_brown'].mean():.2f})")
        parts[-1] += "."
    return " ".join(parts)


def verdicts_by_scaling(table: pd.DataFrame) -> list[str]:
    """One line per pixel scaling (markdown, no bullet): its seeds per network, how many of the
    paper's numbers got each verdict, and every number judged compatible or incompatible with
    our mean beside the paper's (:func:`reproduction_table`'s ``table``).

    Examples
    --------
    ``raw 0-255 (10 seeds per network): 0 compatible, 4 incompatible (nn_392 layer 0 helpful
    neurons 30.74 % against 65.05 %; ...), 13 inconclusive.``
    """
    judged = table[table["paper"].notna() & (table["scaling"] != "-")]
    lines = []
    for scaling, rows in judged.groupby("scaling", sort=True):
        seeds = rows["n_seeds"].astype(int)
        span = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
        counts = rows["verdict"].value_counts()
        parts = []
        for verdict in VERDICTS:
            if not counts.get(verdict, 0):
                continue
            part = f"{counts[verdict]} {verdict}"
            if verdict in ("compatible", "incompatible"):
                named = rows[rows["verdict"] == verdict]
                part += " (" + "; ".join(
                    f"{r.model}{'' if r.layer == 'network' else f' layer {r.layer}'} {r.quantity} "
                    f"{number(r.mean, 2)} {r.unit} against {number(r.paper, 2)} {r.unit}" for r in named.itertuples()) + ")"
            parts.append(part)
        lines.append(f"**{scaling}** ({span} seeds per network): " + ", ".join(parts) + ".")
    return lines


def compare_seed_tables(first: pd.DataFrame, second: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """The same study's per-seed values made twice (e.g. on two machines): per model, scaling,
    layer and quantity in both, each side's seeds, mean and sd, how many seeds present in both
    have the very same value, and Welch's difference of the means (second minus first) with
    its ``1 - alpha`` interval and two-sided p-value.

    Parameters
    ----------
    first, second : DataFrame — :func:`seed_table`'s rows (``model, scaling, layer, seed`` and
        the :data:`QUANTITIES` columns, as in the per-seed CSV beside the docs)

    Returns
    -------
    DataFrame
        ``model, scaling, layer`` (``network`` for per-network quantities), ``quantity, unit,
        n_first, mean_first, sd_first, n_second, mean_second, sd_second, same_seeds, identical,
        difference, low, high, p``, in the units of :data:`QUANTITIES`.
    """
    keys = ["model", "scaling", "layer"]
    both = first[keys].drop_duplicates().merge(second[keys].drop_duplicates(), on=keys)
    rows = []
    for name, quantity in QUANTITIES.items():
        if name not in first or name not in second:
            continue
        for model, scaling, layer in both.itertuples(index=False):
            if not quantity.per_layer and layer != 0:
                continue
            sides = [t[(t["model"] == model) & (t["scaling"] == scaling) & (t["layer"] == layer)]
                     .set_index("seed")[name] * quantity.scale for t in (first, second)]
            a, b = (side.to_numpy(float) for side in sides)
            paired = sides[0].to_frame("a").join(sides[1].to_frame("b"), how="inner")
            test = stats.ttest_ind(b, a, equal_var=False) if min(len(a), len(b)) > 1 else None
            low, high = test.confidence_interval(1 - alpha) if test is not None else (np.nan, np.nan)
            rows.append({"model": model, "scaling": scaling, "layer": layer if quantity.per_layer else "network",
                         "quantity": quantity.label, "unit": quantity.unit,
                         "n_first": len(a), "mean_first": a.mean(), "sd_first": a.std(ddof=1) if len(a) > 1 else np.nan,
                         "n_second": len(b), "mean_second": b.mean(),
                         "sd_second": b.std(ddof=1) if len(b) > 1 else np.nan,
                         "same_seeds": len(paired), "identical": int(np.isclose(paired["a"], paired["b"], rtol=0,
                                                                                 atol=1e-9).sum()),
                         "difference": b.mean() - a.mean(), "low": low, "high": high,
                         "p": test.pvalue if test is not None else np.nan})
    return pd.DataFrame(rows)


def _noise_of_runs(study: Study, runs: pd.DataFrame, q: float) -> dict[tuple, NetworkNoise]:
    """:func:`network_noise` of every run whose model is present (the study's cached flips)."""
    noises = {}
    for record in runs.itertuples():
        key = NetworkKey(record.dataset, record.model, int(record.seed))
        if study.run(key) is None:
            continue
        net = study.network(key)
        flips = [study.flips(key, layer, "zero") for layer in range(len(net.hidden_sizes))]
        noises[(record.dataset, record.model, record.seed)] = network_noise(
            net, *study.split(key, "test"), q, seed=int(record.seed), flips=flips)
    return noises


def paper_study(study: Study, datasets: dict[str, str] | None = None, q: float = Q) -> dict[str, pd.DataFrame]:
    """The paper's reproduction as tables (empty dict when the study has no neuron sweeps of
    the paper's networks): ``seeds`` (:func:`seed_table`), ``reproduction``
    (:func:`reproduction_table`), ``reliability``, ``variance`` and ``runs``."""
    if not study.has("neuron"):
        return {}
    runs = paper_runs(study.manifest, datasets)
    if runs.empty:
        return {}
    runs = runs.merge(study.runs[[*RUN_KEYS, "train_accuracy"]], on=RUN_KEYS, how="left")
    neurons = study.rows("neuron", "test").merge(runs[RUN_KEYS], on=RUN_KEYS)
    neurons = neurons[neurons["mode"] == "zero"]
    if neurons.empty:
        return {}
    runs = runs.merge(neurons[RUN_KEYS].drop_duplicates(), on=RUN_KEYS)
    noises = _noise_of_runs(study, runs, q)
    seeds = seed_table(neurons, runs, noises, q)
    return {"runs": runs, "seeds": seeds, "reproduction": reproduction_table(seeds),
            "reliability": reliability_table(runs, noises), "variance": variance_table(seeds, noises)}


def paper_sections(study: Study, page: Page, datasets: dict[str, str] | None = None) -> list[Section]:
    """The reproduction of the paper's table (see the module docstring); ``datasets`` maps
    the paper's datasets to this study's (tests let ``digits`` stand for ``mnist``)."""
    tables = paper_study(study, datasets)
    if not tables:
        return []
    table, seeds, runs = tables["reproduction"], tables["seeds"], tables["runs"]
    reliability, variance = tables["reliability"], tables["variance"]
    splits = runs.groupby("scaling")["split_seed"].nunique()
    split_note = ("Each seed drew its own train/test split, so the spread across seeds includes split-to-split "
                  "variance." if (splits > 1).all() else "All seeds share one train/test split: the spread "
                  "across seeds leaves out split-to-split variance (experiment=paper draws one per seed).")
    paragraphs = [honest_answer(table, seeds, reliability), *verdicts_by_scaling(table), split_note]
    best = table[table["quantity"] == QUANTITIES["accuracy_best_removal"].label]
    for r in best[best["n_seeds"] > 0].itertuples():
        paragraphs.append(f"{r.model} with {r.scaling}: test accuracy after the best single removal {r.mean:.2f} % "
                          f"(range {r.min:.2f}-{r.max:.2f} over {r.n_seeds} seeds; paper {r.paper:.2f} %).")
    caption = (
        "The paper's numbers beside ours, per pixel scaling: mean over seeds and range; the interval "
        "(1 - 2a, a = 0.05 / comparisons) in which the paper's setup would have to lie for the two to agree "
        "(our seeds' spread plus the paper's one run; clipped to what the quantity can be, 0-100 % for shares "
        "and accuracies), its width, and the verdict against the margin: compatible (equivalence test), incompatible "
        "(beyond the margin), inconclusive, too few seeds (under 5), not run here. Layer 0 is the paper's first "
        "hidden layer; 'derived': 100 minus the paper's other two shares.")
    sections_tables = {
        "reproduction": Table(table, caption),
        "reproduction_seeds": Table(seeds.drop(columns=["paper_dataset"]), (
            "Every quantity per network (seed) and layer; shares in %, accuracies as fractions; the noise-aware "
            f"shares at q = {Q:g}.")),
    }
    if len(reliability):
        sections_tables["reproduction_reliability"] = Table(reliability, (
            f"How reliable one network's per-neuron effects are on its 7,000-ish test images: Spearman between "
            f"the effects on two random halves of the test split (mean over {N_SPLITS} splits), its Spearman-Brown "
            f"full-length value, the Jaccard overlap of the halves' harmful sets, the % of neurons keeping their "
            f"category in at least 95 % of {N_BOOT} bootstrap resamples (sign only / noise-aware), and the "
            "central 95 % of the resampled harmful share."))
    if len(variance):
        sections_tables["reproduction_variance"] = Table(variance, (
            "Where the spread across runs comes from: test-image sampling (bootstrap within each network) and "
            "the rest (split and seed; separated only when the study also has seeds on one fixed split)."))
    figures = []
    panels = table[(table["quantity"] == QUANTITIES["pct_helpful"].label) & (table["n_seeds"] > 0)].groupby(
        ["model", "layer"]).ngroups
    if panels:
        figure = fig.new_figure(width=4.0 * panels, height=3.6)
        plot_shares(table, np.atleast_1d(figure.subplots(1, panels)))
        figures.append(Figure(fig.save_figure(figure, page.figures, "reproduction_shares", page.svg),
                              "Helpful, neutral and harmful shares of each layer per pixel scaling (dot: mean over "
                              "seeds; bar: range over seeds) against the paper's numbers (black crosses)."))
    if len(variance):
        figure = fig.new_figure(width=7.0, height=1.0 + 0.3 * variance.groupby(
            ["model", "scaling", "layer", "quantity"]).ngroups)
        plot_variance(variance, figure.subplots())
        figures.append(Figure(fig.save_figure(figure, page.figures, "reproduction_variance", page.svg),
                              "Shares of each quantity's variance across runs: test-image sampling and the rest."))
    verdicts = table["verdict"].value_counts()
    summary = ["Paper reproduction: " + ", ".join(f"{n} {v}" for v, n in verdicts.items() if v != "-") + "."]
    if "pct_indistinguishable" in seeds:
        summary.append(f"{seeds['pct_indistinguishable'].mean():.0f} % of neurons per layer are indistinguishable "
                       f"from test-image noise (BH q = {Q:g}).")
    return [Section("Reproduction of the paper", paragraphs, sections_tables, figures, summary)]



# =========================================================================== Amjad et al.

INFORMATION_STATISTICS = ("entropy", "mutual_information", "kl_selectivity")
"""The statistics Amjad et al. order units by (each high-first and low-first)."""

AMJAD_ORDERS = {f"{stat}_{end}" for stat in INFORMATION_STATISTICS for end in ("high", "low")}
"""The orders a study needs for the Amjad et al. section."""


def _seed_areas(df: pd.DataFrame) -> pd.DataFrame:
    """Area under each curve per seed (random orders averaged over their repetitions)."""
    areas = area_under_curves(df)
    keys = [*RUN_KEYS, "mode", "split", "scope", "order"]
    return areas.groupby(keys, sort=True)[["auc", "accuracy_base"]].mean().reset_index()


def _layer_scopes(scopes: pd.Series) -> list[str]:
    return sorted((s for s in scopes.unique() if str(s).startswith("layer")), key=lambda s: int(s[5:]))


def amjad_table(df: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Amjad et al.'s qualitative findings tested per model, each as a per-seed difference of
    curve areas (in pp of mean accuracy along the curve).

    Rows: ``low-first beats high-first`` (area of ``<stat>_low`` minus ``<stat>_high``) for
    mutual information and KL-selectivity in every layer (expected > 0 in the shallow
    layers and < 0 in the last: the reversal); ``random is a moderate choice`` (random minus
    the mean of the information orders' best and worst, per scope: expected inside them, read
    with the ``rank`` column); ``deeper layers more redundant`` (random-order area of layer
    l+1 minus layer l, each divided by the unablated accuracy: expected > 0).

    Returns
    -------
    DataFrame
        ``model, finding, scope, compared, expected``, the :func:`difference_verdict`
        columns (``mean, low, high`` in pp) and ``holds``.
    """
    areas = _seed_areas(df)
    wide = areas.pivot_table(index=["model", "seed", "scope"], columns="order", values="auc").reset_index()
    rows = []
    for model, per_model in wide.groupby("model", sort=True):
        layers = _layer_scopes(per_model["scope"])
        for scope in layers:
            last = scope == layers[-1]
            part = per_model[per_model["scope"] == scope]
            for stat in ("mutual_information", "kl_selectivity"):
                if {f"{stat}_low", f"{stat}_high"} <= set(part.columns):
                    diff = 100 * (part[f"{stat}_low"] - part[f"{stat}_high"]).to_numpy()
                    rows.append(_finding(model, "low-first beats high-first" + (
                        " (reversed in the last layer)" if last else ""), scope, f"{stat}: low - high",
                        "< 0" if last else "> 0", diff, level))
        information = [c for c in per_model.columns if c.rsplit("_", 1)[0] in INFORMATION_STATISTICS]
        for scope, part in per_model.groupby("scope", sort=True):
            if "random" in part and information:
                scores = part[information]
                middle = (scores.max(axis=1) + scores.min(axis=1)) / 2
                inside = ((part["random"] > scores.min(axis=1)) & (part["random"] < scores.max(axis=1))).mean()
                rows.append({**_finding(model, "random is a moderate choice", scope,
                                        f"random is between the best and the worst information order in "
                                        f"{100 * inside:.0f} % of seeds; random - their midpoint", "between",
                                        100 * (part["random"] - middle).to_numpy(), level),
                             "holds": bool(inside >= 0.5)})
        normalized = areas[(areas["model"] == model) & (areas["order"] == "random")].assign(
            value=lambda a: a["auc"] / a["accuracy_base"]).pivot_table(index="seed", columns="scope", values="value")
        for shallow, deep in zip(layers, layers[1:]):
            diff = 100 * (normalized[deep] - normalized[shallow]).to_numpy()
            rows.append(_finding(model, "deeper layers more redundant", f"{deep} vs {shallow}",
                                 "random-order area / unablated accuracy: deeper - shallower", "> 0", diff, level))
    return pd.DataFrame(rows)


def _finding(model: str, finding: str, scope: str, compared: str, expected: str, diff: np.ndarray,
             level: float) -> dict[str, Any]:
    """One row of :func:`amjad_table`: it holds when the difference's verdict is the expected sign."""
    verdict = difference_verdict(diff, level)
    return {"model": model, "finding": finding, "scope": scope, "compared": compared, "expected": expected,
            **verdict, "holds": verdict["verdict"] == expected}


def plot_amjad(df: pd.DataFrame, model: str, axes: np.ndarray) -> None:
    """One panel per layer and one for the whole network: accuracy against the fraction of
    units removed, one line per order, averaged over seeds and repetitions."""
    band = curve_band(df[df["model"] == model], keys=["scope", "order"])
    scopes = [*_layer_scopes(band["scope"]), *(["network"] if (band["scope"] == "network").any() else [])]
    for ax, scope in zip(axes, scopes):
        plot_cumulative(band[band["scope"] == scope], ax, f"{model}: {scope}")


def amjad_sections(study: Study, page: Page) -> list[Section]:
    """Amjad et al.'s findings (see :func:`amjad_table`) with one figure per model, on the test
    split, when the study has curves ordered by mutual information high and low first."""
    if not study.has("cumulative"):
        return []
    df = study.rows("cumulative")
    if not AMJAD_ORDERS <= set(df["order"].unique()):
        return []
    modes = sorted(df["mode"].unique())
    df = df[(df["split"] == "test") & (df["mode"] == ("mean" if "mean" in modes else modes[0]))]
    table = amjad_table(df)
    figures = []
    for model in sorted(df["model"].unique()):
        n_panels = df[df["model"] == model]["scope"].nunique()
        figure = fig.new_figure(width=3.6 * n_panels, height=3.4)
        plot_amjad(df, model, np.atleast_1d(figure.subplots(1, n_panels)))
        figures.append(Figure(
            fig.save_figure(figure, page.figures, f"amjad_{model}", page.svg),
            f"{model}: test accuracy as units are removed cumulatively, one panel per hidden layer and one "
            "for the whole network, one line per order (mean over seeds; random: over seeds and "
            "repetitions, its band the central 95 %)."))
    paragraphs = [
        f"{r.model}, {r.scope}, {r.finding}: {r.compared} = "
        f"{interval_text(r.mean, r.low, r.high, r.n_seeds, '+.2f')} pp (95 % interval of the mean); expected "
        f"{r.expected}: {'holds' if r.holds else 'does not hold'}."
        for r in table.itertuples()
    ]
    failing = sorted(table.loc[~table["holds"], "finding"].unique()) if len(table) else []
    summary = [f"Amjad et al.'s findings: {int(table['holds'].sum())} of {len(table)} tests hold"
               + (f"; not everywhere: {'; '.join(failing)}." if failing else ".")] if len(table) else []
    caption = ("Amjad et al.'s qualitative findings as per-seed differences of areas under the test-accuracy "
               "curves (pp of the mean accuracy along the curve): mean, its 95 % t-interval over seeds, the "
               "expected sign and whether it holds.")
    return [Section("Reproduction of Amjad et al.", paragraphs, {"amjad_findings": Table(table, caption)},
                    figures, summary)]


# =========================================================================== Morcos et al.


def memorization_table(df: pd.DataFrame, manifest: dict[str, Any], level: float = LEVEL) -> pd.DataFrame:
    """Random-ablation robustness per label-noise level on the labels each network was
    trained on: normalised area (area / unablated accuracy) over seeds, and its difference
    from the noise-free networks.

    Returns
    -------
    DataFrame
        ``model, mode, scope, label_noise, train_accuracy`` (mean, %), :func:`over_seeds` columns of
        the normalised area, and ``drop_mean, drop_low, drop_high, drop_verdict`` (noise-free
        minus this level, per seed; > 0: this level breaks sooner).
    """
    areas = _seed_areas(df[df["order"] == "random"]).merge(label_noise_levels(manifest), on=RUN_KEYS)
    areas["normalized"] = areas["auc"] / areas["accuracy_base"]
    accuracy = runs_table(manifest)[[*RUN_KEYS, "train_accuracy"]]
    areas = areas.merge(accuracy, on=RUN_KEYS, how="left")
    rows = []
    for (model, mode, scope), part in areas.groupby(["model", "mode", "scope"], sort=True):
        clean = part[part["label_noise"] == 0].set_index("seed")["normalized"]
        for noise, level_rows in part.groupby("label_noise", sort=True):
            values = level_rows.set_index("seed")["normalized"]
            drop = difference_verdict((clean - values).dropna().to_numpy(), level) if noise > 0 and len(clean) else {}
            rows.append({"model": model, "mode": mode, "scope": scope, "label_noise": noise,
                         "train_accuracy": 100 * level_rows["train_accuracy"].mean(),
                         **over_seeds(values.to_numpy(), level),
                         **{f"drop_{k}": v for k, v in drop.items() if k != "n_seeds"}})
    return pd.DataFrame(rows)


def importance_table(units: pd.DataFrame, neurons: pd.DataFrame, manifest: dict[str, Any],
                     level: float = LEVEL) -> pd.DataFrame:
    """Spearman rho between class selectivity and importance (the accuracy lost when the
    unit alone is removed: minus the effect), per label-noise level, split and layer, over seeds.

    Returns
    -------
    DataFrame
        ``label_noise, split, layer`` and the :func:`difference_verdict` columns of rho
        (``verdict`` ``> 0``: selective units are more important).
    """
    rho = spearman_by_layer(selectivity_importance(units, neurons))
    rho = rho.merge(label_noise_levels(manifest), on=RUN_KEYS).assign(rho=lambda r: -r["rho"])
    rows = [{"label_noise": noise, "split": split, "layer": layer,
             **difference_verdict(part["rho"].dropna().to_numpy(), level)}
            for (noise, split, layer), part in rho.groupby(["label_noise", "split", "layer"], sort=True)
            if part["rho"].notna().any()]
    return pd.DataFrame(rows)


def morcos_sections(study: Study, page: Page) -> list[Section]:
    """Morcos et al.'s two claims, when the study has random cumulative curves at two or more
    label-noise levels (measured on the train split, the labels each network learned)."""
    if not study.has("cumulative"):
        return []
    manifest = study.manifest
    df = study.rows("cumulative")
    df = df[(df["split"] == "train") & (df["order"] == "random")]
    if df.empty or label_noise_levels(manifest)["label_noise"].nunique() < 2:
        return []
    memo = memorization_table(df, manifest)
    tables = {"morcos_memorization": Table(memo, (
        "Random cumulative ablation on the labels each network was trained on: train accuracy, the area under "
        "the curve divided by the unablated accuracy (1: no loss) over seeds (interval of one run, range) "
        "and how much lower it is than the noise-free networks' (per-seed difference, 95 % t-interval)."))}
    paragraphs = [
        f"{r.model} ({r.scope}), label noise {r.label_noise:g}: train accuracy {r.train_accuracy:.1f} %, "
        f"normalised area {r.mean:.3f} (range {r.min:.3f}-{r.max:.3f})"
        + (f", {r.drop_mean:+.3f} below the noise-free networks ([{r.drop_low:+.3f}, {r.drop_high:+.3f}])"
           if r.label_noise > 0 and not pd.isna(getattr(r, "drop_mean", np.nan)) else "") + "."
        for r in memo.itertuples()
    ]
    noisy = memo[memo["label_noise"] > 0]
    breaks = bool(len(noisy)) and noisy["drop_verdict"].eq("> 0").all()
    summary = [f"Networks that memorize break sooner (Morcos et al.): {'holds' if breaks else 'does not hold'} "
               "here; normalised areas " + ", ".join(
                   f"{r.mean:.3f} at noise {r.label_noise:g}" for r in memo[memo["scope"] == "network"].itertuples())
               + "."]
    curves = memorization_curves(df, manifest)
    figures = []
    for model, rows in curves.groupby("model", sort=True):
        figure = fig.new_figure()
        plot_memorization(rows[rows["scope"] == "network"], figure.subplots(), f"{model}: train labels")
        figures.append(Figure(fig.save_figure(figure, page.figures, f"morcos_memorization_{model}", page.svg),
                              f"{model}: accuracy on the labels each network was trained on, divided by the "
                              "unablated accuracy, as random sets of units are removed; one line per label-noise "
                              "level (band: the central 95 % of its seeds' and repetitions' curves)."))
    if study.has("unit") and study.has("neuron"):
        units, neurons = study.rows("unit"), study.rows("neuron")
        importance = importance_table(units, neurons, manifest)
        tables["morcos_selectivity"] = Table(importance, (
            "Spearman rho between each unit's class selectivity (on val, true labels) and its importance "
            "(accuracy lost when it alone is removed), per label-noise level, split and layer: mean over "
            "seeds and its 95 % t-interval (> 0: selective units are more important)."))
        paragraphs += [f"Label noise {r.label_noise:g}, {r.split}, layer {r.layer}: rho(selectivity, importance) "
                       f"{interval_text(r.mean, r.low, r.high, r.n_seeds)}."
                       for r in importance.itertuples()]
        clean = importance[(importance["label_noise"] == 0) & (importance["split"] == "test")]
        if len(clean):
            more = clean["verdict"].eq("> 0")
            summary.append("Selective units are no more important (Morcos et al.): "
                           + ("holds" if not more.any() else f"does not hold in {int(more.sum())} of {len(clean)} layers")
                           + " for the noise-free networks on test (rho " + ", ".join(
                               f"{r.mean:+.2f}" for r in clean.itertuples()) + ").")
        joined = selectivity_importance(units, neurons).merge(label_noise_levels(manifest), on=RUN_KEYS)
        joined = joined[(joined["label_noise"] == 0) & (joined["split"] == "test")]
        if len(joined):
            figure = fig.new_figure()
            plot_selectivity_importance(joined, figure.subplots(), title="noise-free networks, test, all seeds")
            figures.append(Figure(fig.save_figure(figure, page.figures, "morcos_selectivity", page.svg),
                                  "Class selectivity of each unit of the noise-free networks (all seeds) against the "
                                  "change of test accuracy when it alone is removed; Spearman rho per layer."))
    return [Section("Reproduction of Morcos et al.", paragraphs, tables, figures, summary)]


def build(study: Study, page: Page) -> list[Section]:
    """Every reproduction section the study has the results for."""
    return [*paper_sections(study, page), *amjad_sections(study, page), *morcos_sections(study, page)]

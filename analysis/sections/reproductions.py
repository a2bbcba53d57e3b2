"""Published results beside ours: the paper's table (Mourao & Florindo), Amjad et al.'s and
Morcos et al.'s findings, each judged over seeds.

Three report-section builders, each returning a section only when the study holds what it
needs: :func:`paper_sections` (neuron sweeps of NN_392 / NN_392_196 on MNIST, one dataset
partition per pixel scaling, as ``experiment=paper`` writes), :func:`amjad_sections`
(cumulative curves ordered by entropy, mutual information and KL-selectivity, high and low
first, and random) and :func:`morcos_sections` (random cumulative curves at two or more
label-noise levels; neuron sweeps and unit statistics for selectivity against importance).

Every number is summarised over seeds the same way (:func:`over_seeds`): the mean, the 95 %
interval in which one more run would fall (a Student-t prediction interval: the papers report
one run each, so a published number is judged against where a single run lands, not against
the mean's confidence interval), the range, and for differences the mean's t-interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis import figures as fig
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
from analysis.formatting import count
from analysis.sections.base import Figure, Page, Section, Table
from analysis.sections.impact import impact_table, with_categories
from analysis.stats import LEVEL, Q, t_interval
from analysis.study import RUN_KEYS, NetworkKey, Study, runs_table
from sweep.kernels import unit_statistics


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
    """A per-run number of the paper's table: how it is shown."""

    label: str
    unit: str
    scale: float
    per_layer: bool = True
    bounds: tuple[float, float] = (0.0, np.inf)
    """What the quantity can be: intervals are clipped to it (no accuracy above 100 %)."""


PERCENT = (0.0, 100.0)

QUANTITIES: dict[str, Quantity] = {
    "train_accuracy": Quantity("train accuracy", "%", 100.0, per_layer=False, bounds=PERCENT),
    "accuracy_base": Quantity("test accuracy", "%", 100.0, per_layer=False, bounds=PERCENT),
    "pct_helpful": Quantity("helpful neurons", "%", 1.0, bounds=PERCENT),
    "pct_neutral": Quantity("neutral neurons", "%", 1.0, bounds=PERCENT),
    "pct_harmful": Quantity("harmful neurons", "%", 1.0, bounds=PERCENT),
    "max_effect": Quantity("best single-removal gain", "pp", 100.0, bounds=(-100.0, 100.0)),
    "n_harmful_fdr": Quantity(f"harmful neurons surviving BH-FDR (q = {Q:g})", "neurons", 1.0),
    "n_silent": Quantity("units silent on every test image", "units", 1.0),
}
"""The reproduction table's quantities: :func:`analysis.impact.impact_table` columns plus
``n_silent``; accuracies are per network (shown on layer 0's row)."""


@dataclass(frozen=True)
class PaperNumber:
    """One number the paper reports (layer 0 is the paper's first hidden layer)."""

    model: str
    layer: int
    quantity: str
    value: float


PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    PaperNumber("nn_392", 0, "train_accuracy", 99.78),
    PaperNumber("nn_392", 0, "accuracy_base", 98.06),
    PaperNumber("nn_392", 0, "pct_helpful", 65.05),
    PaperNumber("nn_392", 0, "pct_neutral", 27.04),
    PaperNumber("nn_392", 0, "pct_harmful", 7.91),
    PaperNumber("nn_392_196", 0, "pct_harmful", 19.90),
    PaperNumber("nn_392_196", 1, "pct_harmful", 36.73),
)
"""Mourao & Florindo's MNIST numbers for the two networks (the ones available to this
project; a further number is one more entry)."""

PAPER_MODELS = tuple(dict.fromkeys(n.model for n in PAPER_NUMBERS))

SCALINGS = {"none": "raw 0-255", "unit": "pixels / 255", "standard": "z-scored"}
"""How each ``dataset.scale`` is named in the reproduction table."""


def paper_runs(manifest: dict[str, Any], dataset: str = "mnist") -> pd.DataFrame:
    """The study's runs of the paper's networks on ``dataset`` without label noise.

    Returns
    -------
    DataFrame
        ``dataset, model, seed, scaling`` (:data:`SCALINGS` names), ``split_seed``.
    """
    rows = [
        {"dataset": r["dataset"], "model": r["model"], "seed": int(r["seed"]),
         "scaling": SCALINGS.get(p.get("scale", "unit"), p.get("scale")), "split_seed": p.get("split_seed")}
        for r in manifest.get("runs", [])
        if (p := r.get("dataset_params") or {}).get("name") == dataset and r["model"] in PAPER_MODELS
        and not p.get("label_noise")
    ]
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "scaling", "split_seed"])


def silent_units(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """Units whose output never exceeds ``act(0)`` on the test split, per run and layer.

    Returns
    -------
    DataFrame
        ``dataset, model, seed, layer, n_silent``.
    """
    rows = []
    for run in runs[RUN_KEYS].itertuples(index=False):
        key = NetworkKey.of(run)
        if study.run(key) is None:
            continue
        net = study.network(key)
        stats = unit_statistics(net, *study.split(key, "test"))  # "fires": its activation_rate
        silent = np.bincount(stats["layer"], weights=stats["activation_rate"] == 0, minlength=len(net.hidden_sizes))
        rows += [{"dataset": key.dataset, "model": key.model, "seed": key.seed, "layer": layer,
                  "n_silent": int(n)} for layer, n in enumerate(silent)]
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "layer", "n_silent"])


def reproduction_table(impact: pd.DataFrame, runs: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Every :data:`QUANTITIES` value over seeds, per scaling, model and layer, beside the
    paper's number and a verdict.

    Parameters
    ----------
    impact : DataFrame — :func:`analysis.impact.impact_table` rows (test split, zero mode,
        with ``train_accuracy``), plus ``n_silent``
    runs : DataFrame — :func:`paper_runs`

    Returns
    -------
    DataFrame
        ``model, layer, quantity, unit, scaling, paper``, the :func:`over_seeds` columns (the
        interval clipped to the quantity's ``bounds``) and ``verdict``: ``inside`` / ``outside`` the interval one more run falls in, ``-`` where
        the paper gives no number.
    """
    rows = impact.merge(runs[[*RUN_KEYS, "scaling"]], on=RUN_KEYS)
    paper = {(n.model, n.layer, n.quantity): n.value for n in PAPER_NUMBERS}
    out = []
    for name, quantity in QUANTITIES.items():
        chosen = rows if quantity.per_layer else rows[rows["layer"] == 0]
        for (model, layer, scaling), group in chosen.groupby(["model", "layer", "scaling"], sort=True):
            summary = over_seeds(group[name].to_numpy(float) * quantity.scale, level)
            summary["low"], summary["high"] = np.clip([summary["low"], summary["high"]], *quantity.bounds)
            published = paper.get((model, layer, name), np.nan)
            verdict = ("-" if np.isnan(published) else "one seed" if summary["n_seeds"] < 2
                       else "inside" if summary["low"] <= published <= summary["high"] else "outside")
            out.append({"model": model, "layer": layer if quantity.per_layer else "network",
                        "quantity": quantity.label, "unit": quantity.unit, "scaling": scaling,
                        "paper": published, **summary, "verdict": verdict})
    return pd.DataFrame(out)


def plot_shares(table: pd.DataFrame, axes: np.ndarray) -> None:
    """Helpful / neutral / harmful shares per scaling (interval of one run) against the
    paper's (black crosses), one panel per network layer."""
    shares = table[table["unit"].eq("%") & table["quantity"].str.endswith("neurons")]
    panels = list(shares.groupby(["model", "layer"], sort=True))
    scalings = sorted(shares["scaling"].unique())
    categories = ["helpful neurons", "neutral neurons", "harmful neurons"]
    for ax, ((model, layer), rows) in zip(axes, panels):
        for i, scaling in enumerate(scalings):
            part = rows[rows["scaling"] == scaling].set_index("quantity").reindex(categories)
            x = np.arange(len(categories)) + (i - (len(scalings) - 1) / 2) * 0.2
            ax.errorbar(x, part["mean"], yerr=[part["mean"] - part["low"], part["high"] - part["mean"]],
                        fmt="o", capsize=3, label=scaling)
        published = rows.drop_duplicates("quantity").set_index("quantity").reindex(categories)["paper"]
        ax.scatter(np.arange(len(categories)), published, marker="x", color="black", s=60, zorder=3,
                   label="paper")
        ax.set_xticks(np.arange(len(categories)), [c.split()[0] for c in categories])
        ax.set_ylabel("share of the layer (%)")
        ax.set_title(f"{model} layer {layer}")
    axes[0].legend(fontsize=7)


def _paper_paragraphs(table: pd.DataFrame, survivors: pd.DataFrame, n_harmful: int) -> tuple[list[str], list[str]]:
    judged = table[table["verdict"].isin(["inside", "outside"])]
    paragraphs, summary = [], []
    for scaling, rows in judged.groupby("scaling", sort=True):
        inside = rows[rows["verdict"] == "inside"]
        outside = rows[rows["verdict"] == "outside"]
        paragraphs.append(
            f"With {scaling}: {len(inside)} of the paper's {len(rows)} numbers fall inside the interval one "
            f"more run falls in" + (
                "; outside: " + "; ".join(
                    f"{r.model} layer {r.layer} {r.quantity} (paper {r.paper:.2f}, ours {r.mean:.2f} in "
                    f"[{r.low:.2f}, {r.high:.2f}])" for r in outside.itertuples())
                if len(outside) else "") + ".")
        summary.append(f"Reproduction with {scaling}: {len(inside)} of {len(rows)} of the paper's numbers inside "
                       "the interval of one run.")
    silent = table[(table["quantity"] == QUANTITIES["n_silent"].label)]
    neutral = table[(table["quantity"] == QUANTITIES["pct_neutral"].label)]
    for r in silent[silent["model"] == PAPER_MODELS[0]].itertuples():
        share = neutral[(neutral["model"] == r.model) & (neutral["scaling"] == r.scaling)]["mean"]
        paragraphs.append(
            f"{r.model} with {r.scaling}: {r.mean:.1f} units on average (range {r.min:.0f}-{r.max:.0f}) never "
            f"fire on any test image, so removing them changes nothing: they are neutral by construction "
            f"(neutral share {share.iloc[0]:.1f} %)." if len(share) else "")
    paragraphs.append(
        f"Of {count(n_harmful, 'harmful neuron')} in these runs, {len(survivors)} survive Benjamini-Hochberg "
        f"at q = {Q:g} (exact McNemar test per neuron, one family per network, layer and split)."
    )
    summary.append(f"{len(survivors)} of {n_harmful} harmful ('rotten') neurons survive BH-FDR at q = {Q:g}.")
    return [p for p in paragraphs if p], summary


def paper_sections(study: Study, page: Page, dataset: str = "mnist") -> list[Section]:
    """The reproduction of the paper's table (see the module docstring); ``dataset`` is the
    dataset name whose runs are compared (tests use ``digits``)."""
    if not study.has("neuron"):
        return []
    manifest = study.manifest
    runs = paper_runs(manifest, dataset)
    if runs.empty:
        return []
    neurons = study.rows("neuron").merge(runs[RUN_KEYS], on=RUN_KEYS)
    neurons = neurons[(neurons["mode"] == "zero") & (neurons["split"] == "test")]
    if neurons.empty:
        return []
    impact = impact_table(neurons, study.runs, q=Q)
    impact = impact.merge(silent_units(study, runs), on=[*RUN_KEYS, "layer"], how="left")
    table = reproduction_table(impact, runs)
    categorized = with_categories(neurons, Q).merge(runs[[*RUN_KEYS, "scaling"]], on=RUN_KEYS)
    harmful = categorized[categorized["category"] == "harmful"]
    survivors = harmful[harmful["significant"]][
        ["scaling", *RUN_KEYS, "layer", "unit", "effect", "p_mcnemar", "q_value"]].reset_index(drop=True)
    paragraphs, summary = _paper_paragraphs(table, survivors, len(harmful))
    panels = table[table["quantity"] == QUANTITIES["pct_helpful"].label].groupby(["model", "layer"]).ngroups
    figure = fig.new_figure(width=4.0 * panels, height=3.6)
    plot_shares(table, np.atleast_1d(figure.subplots(1, panels)))
    splits = runs.groupby("scaling")["split_seed"].nunique()
    split_note = ("Each seed drew its own train/test split, so the intervals include split-to-split variance."
                  if (splits > 1).all() else "All seeds share one train/test split: the intervals leave out "
                  "split-to-split variance (experiment=paper draws one per seed).")
    caption = (
        "The paper's numbers beside ours, per pixel scaling: mean over seeds, the 95 % interval in which "
        "one more run would fall (Student-t prediction interval; the paper reports one run), the range "
        "(min, max) and whether the paper's number is inside that interval. Layer 0 is the paper's "
        "first hidden layer; accuracies are per network.")
    return [Section(
        "Reproduction of the paper",
        [split_note, *paragraphs],
        {"reproduction": Table(table, caption),
         "reproduction_fdr_survivors": Table(survivors, f"Harmful neurons whose BH q-value is at most {Q:g}.")},
        [Figure(fig.save_figure(figure, page.figures, "reproduction_shares", page.svg),
                "Helpful, neutral and harmful shares of each layer per pixel scaling (dot: mean over seeds; "
                "bar: the 95 % interval of one run) against the paper's numbers (black crosses).")],
        summary,
    )]


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

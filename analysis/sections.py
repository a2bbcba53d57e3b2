"""Report sections built from a results folder: tables, figures and a paragraph per finding.

Each builder has the :data:`SectionBuilder` signature ``(results, study, out_dir) -> list[Section]``
and writes its figures under ``out_dir / "figures"``; :mod:`analysis.report` renders them.
A section holds captioned :class:`Table` s (accuracy changes in pp, accuracies in %, see
:func:`in_units`) and :class:`Figure` s, and its headline findings (``summary``). Other
modules plug in their own builders the same way (import :class:`Section`, :class:`Table` and
:class:`Figure` from here).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures as fig
from analysis.impact import FAMILY_KEYS, LAYER_KEYS, impact_table, most_harmful, with_categories
from analysis.load import (
    RUN_KEYS,
    find_run,
    has_kind,
    has_model,
    load,
    load_data,
    load_manifest,
    load_network,
    runs_table,
)
from analysis.pruning import heldout_pruning, prediction_change
from analysis.stability import (
    bootstrap_harmful,
    interval_half_width,
    seed_ks,
    seed_matching,
    share_intervals,
)
from sweep.data.datasets import DatasetSplits, image_shape, reference_inputs
from sweep.kernels.network import Network, hidden_activations

Q = 0.05
"""FDR level of the report."""

N_BOOT = 50
"""Resamples of the test rows in the bootstrap stability of the harmful sets."""

STABLE = 0.9
"""A harmful neuron is called stable when it stays harmful in this share of resamples."""

SHOWN_IMAGES = 8
"""Test images shown per row of the fixed / broken figure of a harmful neuron."""

CONFIDENCE = 0.95
"""Coverage of the t-intervals across seeds."""

MIN_SEEDS = 3
"""Fewest seeds whose t-interval says anything (two values: the mean ± 8.98 SD at 95 %)."""

INFORMATIVE_SEEDS = 5
"""Seeds from which a t-interval is narrow (± 1.24 SD at 95 %); fewer get a note."""


@dataclass
class Figure:
    """A figure of a report section.

    Attributes
    ----------
    path : Path — the PNG under ``out_dir / "figures"`` (an SVG beside it)
    caption : str — what the figure shows and how to read it (the report numbers it)
    """

    path: Path
    caption: str


@dataclass
class Table:
    """A table of a report section, written as ``tables/<name>.csv``.

    Attributes
    ----------
    frame : DataFrame — accuracy changes in pp (columns ``*_pp``), accuracies and shares in %
        (``*_pct``, ``pct_*``), see :func:`in_units`
    caption : str — what a row is and what the columns mean (the report numbers it)
    note : str — a caveat printed under the table (e.g. intervals from too few seeds)
    """

    frame: pd.DataFrame
    caption: str
    note: str = ""


@dataclass
class Section:
    """One report section.

    Attributes
    ----------
    title : str
    paragraphs : list of str — plain text, one finding each
    tables : dict of str to Table — CSV stem (unique in the report) -> table
    figures : list of Figure
    summary : list of str — the section's headline findings, one sentence each, listed
        under "What this study found" at the top of the report
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)


SectionBuilder = Callable[[str, str, Path], list[Section]]
"""``(results_root, study, out_dir) -> sections``."""


# --------------------------------------------------------------------------- helpers


def family_label(key: dict[str, Any]) -> str:
    """``digits/nn_64 seed 0 (zero, test)`` from a family's keys; mode, split, scope and
    order, where present, go in brackets; other keys are ignored."""
    head = f"{key.get('dataset', '')}/{key.get('model', '')}".strip("/")
    head += f" seed {key['seed']}" if "seed" in key else ""
    rest = [str(key[k]) for k in ("mode", "split", "scope", "order") if k in key]
    return head + (f" ({', '.join(rest)})" if rest else "")


def figure_slug(*parts: Any) -> str:
    """A file-name-safe stem from the parts of a figure's key."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(str(p) for p in parts))


def in_units(frame: pd.DataFrame, pp: Sequence[str] = (), pct: Sequence[str] = ()) -> pd.DataFrame:
    """A report table in the report's units: the fraction columns ``pp`` (accuracy changes)
    become ``<name>_pp`` in percentage points and ``pct`` (accuracies) ``<name>_pct`` in
    percent, both times 100 and in place."""
    out = frame.copy()
    for columns, suffix in ((pp, "_pp"), (pct, "_pct")):
        out[list(columns)] = out[list(columns)] * 100
        out = out.rename(columns={c: c + suffix for c in columns})
    return out


def value_range(values: pd.Series, spec: str = ".2f") -> str:
    """``"a to b"`` from the smallest and largest value (one value when they are equal)."""
    low, high = format(values.min(), spec), format(values.max(), spec)
    return low if low == high else f"{low} to {high}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 neuron"``, ``"3 neurons"`` (``plural`` when it is not ``noun + "s"``)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _pp(fraction: float) -> str:
    """An accuracy change as signed percentage points."""
    return f"{100 * fraction:+.2f} pp"


@functools.lru_cache(maxsize=16)
def _network(model_path: str) -> Network:
    return load_network({"model_path": model_path})


@functools.lru_cache(maxsize=2)
def _data(params: str) -> DatasetSplits:
    return load_data({"dataset_params": json.loads(params)})


def run_resources(run: dict[str, Any]) -> tuple[Network, DatasetSplits]:
    """The run's network and data, cached across builders (a few datasets at most)."""
    return _network(run["model_path"]), _data(json.dumps(run["dataset_params"], sort_keys=True))


def _reference(mode: str, data: DatasetSplits) -> np.ndarray | None:
    """The inputs ``mean`` mode averages over (as the sweep: val if any, else train), None otherwise."""
    return reference_inputs(data.X_train, data.X_val) if mode == "mean" else None


def _needs_neurons(build: SectionBuilder) -> SectionBuilder:
    """Make a builder return no section when the study has no neuron results."""

    @functools.wraps(build)
    def guarded(results: str, study: str, out_dir: Path) -> list[Section]:
        return build(results, study, out_dir) if has_kind(results, study, "neuron") else []

    return guarded


def _families(df: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    return [(dict(zip(FAMILY_KEYS, k)), g) for k, g in df.groupby(FAMILY_KEYS, sort=True)]


def _on_test(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The test-split rows of a table and ``"test"``, or every row and ``"every split"``
    when it has none."""
    test = table["split"] == "test"
    return (table[test], "test") if test.any() else (table, "every split")


# --------------------------------------------------------------------------- impact


def impact_finding(family: pd.DataFrame) -> str:
    """The paragraph of one family from its impact-table rows (all its layers)."""
    key = family.iloc[0].to_dict()
    n, harmful = int(family["n_units"].sum()), int(family["n_harmful"].sum())
    helpful, neutral = int(family["n_helpful"].sum()), int(family["n_neutral"].sum())
    best = family.sort_values(["max_effect", "layer"], ascending=[False, True]).iloc[0]
    return (
        f"On {family_label(key)}, {harmful} of {n} neurons ({100 * harmful / n:.1f} %) are harmful, "
        f"{helpful} ({100 * helpful / n:.1f} %) helpful and {neutral} neutral; "
        f"{int(family['n_harmful_fdr'].sum())} harmful neurons survive FDR at q={Q}. "
        + (f"The largest gain, {_pp(best['max_effect'])}, comes from removing neuron "
           f"{int(best['max_unit'])} of layer {int(best['layer'])}."
           if best["max_effect"] > 0 else "No single removal raises accuracy.")
    )


def impact_summary(table: pd.DataFrame) -> list[str]:
    """Headlines of the impact table: the share of harmful neurons, how many survive FDR,
    and the largest single gain, on the test split when there is one."""
    rows, split = _on_test(table)
    sweeps = rows.groupby(FAMILY_KEYS, sort=True)[["n_units", "n_harmful", "n_harmful_fdr"]].sum()
    shares = 100 * sweeps["n_harmful"] / sweeps["n_units"]
    if len(sweeps) == 1:
        share = (f"{shares.iloc[0]:.1f} % of the neurons ({int(sweeps['n_harmful'].iloc[0])} of "
                 f"{int(sweeps['n_units'].iloc[0])})")
    else:
        share = f"{value_range(shares, '.1f')} % of the neurons of each of {len(sweeps)} sweeps"
    fdr = int(sweeps["n_harmful_fdr"].sum())
    verdict = (f"none survives FDR at q = {Q} (exact McNemar tests), so none stands out from "
               f"{split}-set noise" if fdr == 0 else f"{fdr} survive FDR at q = {Q}")
    lines = [f"Harmful neurons, whose removal alone raises {split} accuracy: {share}; {verdict}."]
    order = [False] + [True] * len(LAYER_KEYS)
    best = rows.sort_values(["max_effect", *LAYER_KEYS], ascending=order).iloc[0]
    lines.append(
        f"The largest gain from removing one neuron is {_pp(best['max_effect'])}: unit "
        f"{int(best['max_unit'])} of layer {int(best['layer'])} of {family_label(best.to_dict())}."
        if best["max_effect"] > 0 else f"No single neuron's removal raises {split} accuracy."
    )
    return lines


def _effects_figure(key: dict[str, Any], rows: pd.DataFrame, out_dir: Path) -> Figure:
    layers = sorted(rows["layer"].unique())
    figure = fig.new_figure(10, 3.2 * len(layers))
    axes = figure.subplots(len(layers), 3, squeeze=False)
    for ax_row, layer in zip(axes, layers):
        layer_rows = rows[rows["layer"] == layer]
        fig.plot_sorted_effects(layer_rows, ax_row[0], f"layer {layer}: sorted effects")
        fig.plot_effect_histogram(layer_rows, ax_row[1], f"layer {layer}: histogram")
        fig.plot_class_effects(layer_rows, ax_row[2], title=f"layer {layer}: per-class effect")
    n = int(rows["n_samples"].iloc[0])
    caption = (
        f"Single-neuron effects of {family_label(key)}, one row per hidden layer: the change of "
        f"accuracy on the {key['split']} split ({n} images, one image = {100 / n:.3g} pp) when one "
        "neuron is removed. Left: every neuron's effect, sorted; above the red zero line are the "
        "harmful neurons. Middle: how many neurons have each effect. Right: the change of each "
        "class's accuracy, neurons in the order of the left panel (red: the class gains, blue: "
        "it loses)."
    )
    path = fig.save_figure(figure, out_dir / "figures", figure_slug("effects", *key.values()))
    return Figure(path, caption)


@_needs_neurons
def impact_sections(results: str, study: str, out_dir: Path) -> list[Section]:
    """The paper's table (every split), per-layer effect figures (test split) and the
    FDR-significant harmful neurons."""
    df = load(results, study, "neuron")
    table = impact_table(df, runs_table(load_manifest(results, study)), q=Q)
    paragraphs = [impact_finding(g) for _, g in table.groupby(FAMILY_KEYS, sort=True)]
    figures = [_effects_figure(key, rows, out_dir) for key, rows in _families(df[df["split"] == "test"])]
    impact = Table(
        in_units(table.rename(columns={"accuracy_base": "accuracy"}), pp=["max_effect"],
                 pct=["train_accuracy", "accuracy"]),
        "Single-neuron removal per network, split and layer (the paper's table). Accuracy: the "
        "unablated network's on the row's split; helpful / neutral / harmful: neurons whose "
        "removal lowers / keeps / raises it; max effect: the largest gain and the unit giving it "
        f"(blank when no removal raises accuracy); n harmful fdr: harmful neurons with a "
        f"Benjamini-Hochberg q-value <= {Q}.",
    )
    rows = with_categories(df, Q)
    significant = rows[rows["significant"] & (rows["category"] == "harmful")]
    columns = [*FAMILY_KEYS, "layer", "unit", "effect", "broken", "fixed", "p_mcnemar", "q_value"]
    n = len(significant)
    finding = (f"{count(n, 'harmful neuron')} {'has' if n == 1 else 'have'}" if n else
               "No harmful neuron has") + f" a Benjamini-Hochberg q-value <= {Q}"
    significance = Table(
        in_units(significant[columns].reset_index(drop=True), pp=["effect"]),
        f"Harmful neurons that survive FDR at q = {Q}: effect, images their removal breaks and "
        "fixes, exact McNemar p-value and Benjamini-Hochberg q-value.",
    )
    return [
        Section("Impact of single-neuron removal", paragraphs, {"impact": impact}, figures,
                impact_summary(table)),
        Section(
            "Significance",
            [f"{finding} (exact McNemar test per ablation, FDR controlled over each run's sweep)."],
            {"significant_harmful": significance},
        ),
    ]


# --------------------------------------------------------------------------- stability


def _share_findings(shares: pd.DataFrame) -> list[str]:
    return [
        f"Across {r.n_seeds} seeds of {r.dataset}/{r.model} layer {r.layer} ({r.mode}, {r.split}), "
        f"harmful neurons make up {r.pct_harmful_mean:.1f} % (95 % CI {r.pct_harmful_low:.1f}–"
        f"{r.pct_harmful_high:.1f}) and helpful ones {r.pct_helpful_mean:.1f} % "
        f"({r.pct_helpful_low:.1f}–{r.pct_helpful_high:.1f})."
        for r in shares.itertuples()
    ]


def interval_note(n_seeds: int, confidence: float = 0.95) -> str:
    """The caveat under a table of t-intervals across ``n_seeds`` seeds; empty from
    :data:`INFORMATIVE_SEEDS` seeds on."""
    if n_seeds >= INFORMATIVE_SEEDS:
        return ""
    level = f"{100 * confidence:.0f} %"
    width = interval_half_width(n_seeds, confidence)
    enough = interval_half_width(INFORMATIVE_SEEDS, confidence)
    if n_seeds < MIN_SEEDS:
        return (
            f"These intervals come from {n_seeds} seeds and say almost nothing: a {level} "
            f"t-interval from {n_seeds} values is the mean ± {width:.2f} standard deviations of "
            f"those values, so it covers most of 0–100 % whatever the data. An interval needs at "
            f"least {MIN_SEEDS} seeds to be informative (± "
            f"{interval_half_width(MIN_SEEDS, confidence):.2f} SD) and about {INFORMATIVE_SEEDS} "
            f"to be narrow (± {enough:.2f} SD): rerun the sweep with more seeds, e.g. "
            f"seeds=[{','.join(map(str, range(INFORMATIVE_SEEDS)))}]."
        )
    return (
        f"These intervals come from {n_seeds} seeds: a {level} t-interval is the mean ± "
        f"{width:.2f} standard deviations of the seeds' values; about {INFORMATIVE_SEEDS} seeds "
        f"narrow it to ± {enough:.2f} SD."
    )


def _matching_finding(r: Any) -> str:
    agreement = (
        f"their effects ({r.mode}, {r.split}) correlate with Spearman rho = {r.spearman:.2f}"
        if not np.isnan(r.spearman) else
        f"their effects ({r.mode}, {r.split}) cannot be correlated (one seed's are all equal)"
    )
    overlap = (
        "neither seed has a harmful neuron in this layer" if np.isnan(r.harmful_jaccard) else
        f"the harmful sets ({r.harmful_a} and {r.harmful_b} neurons) overlap with Jaccard "
        f"{r.harmful_jaccard:.2f}"
    )
    return (
        f"Matching the neurons of seeds {r.seed_a} and {r.seed_b} of {r.dataset}/{r.model} layer "
        f"{r.layer} by activation correlation (mean matched r = {r.mean_correlation:.2f}), "
        f"{agreement}; {overlap}."
    )


def _bootstrap_finding(r: Any) -> str:
    head = f"Layer {r.layer} of {family_label(r._asdict())}"
    if r.n_harmful == 0:
        noise = (f"resampled test rows make {r.mean_harmful_resampled:.1f} of its neurons "
                 "harmful on average (test-set noise)" if r.mean_harmful_resampled > 0 else
                 "no resample of the test rows makes any of its neurons harmful")
        return (f"{head} has no harmful neuron on the full test split, so there is no harmful "
                f"set to resample; {noise}.")
    return (
        f"{head} has {count(r.n_harmful, 'harmful neuron')} on the full test split, {r.n_stable} "
        f"of which {'stays' if r.n_stable == 1 else 'stay'} harmful in at least "
        f"{100 * STABLE:.0f} % of {N_BOOT} resamples of the test rows; the resampled harmful "
        f"sets overlap the full one with mean Jaccard {r.mean_jaccard:.2f}."
    )


def stability_summary(shares: pd.DataFrame, matched: pd.DataFrame, boot: pd.DataFrame) -> list[str]:
    """Headlines of the stability section: whether the seeds' intervals say anything, how
    well matched neurons agree (test split) and how many harmful neurons survive resampling."""
    lines = []
    if not shares.empty:
        n_seeds = int(shares["n_seeds"].min())
        rows, split = _on_test(shares)
        lines.append(
            f"Across {n_seeds} seeds a layer's share of harmful neurons averages "
            f"{value_range(rows['pct_harmful_mean'], '.1f')} % ({split}); "
            + (f"with {n_seeds} seeds its {100 * CONFIDENCE:.0f} % intervals span most of "
               f"0–100 % and say little: they need at least {MIN_SEEDS} seeds."
               if n_seeds < MIN_SEEDS else "see the seed-share table for the intervals.")
        )
    if not matched.empty:
        rows, split = _on_test(matched)
        rho, jaccard = rows["spearman"].dropna(), rows["harmful_jaccard"].dropna()
        text = "Neurons matched across seeds by activation correlation"
        text += (f" have effects that agree with Spearman rho {value_range(rho)} ({split})"
                 if len(rho) else " have constant effects in some seed")
        text += (f"; their harmful sets overlap with Jaccard {value_range(jaccard)}."
                 if len(jaccard) else "; no layer has harmful neurons to compare.")
        lines.append(text)
    if not boot.empty and boot["n_harmful"].sum() > 0:
        stable = int(boot["n_stable"].sum())
        lines.append(
            f"Of the {count(int(boot['n_harmful'].sum()), 'neuron')} harmful on the full test "
            f"split, {stable} {'stays' if stable == 1 else 'stay'} harmful in at least "
            f"{100 * STABLE:.0f} % of {N_BOOT} bootstrap resamples of the test rows."
        )
    return lines


def _matching(results: str, study: str, df: pd.DataFrame) -> pd.DataFrame:
    """Cross-seed matching per (dataset, model, mode, split), activations on the test split
    of the lowest seed's data."""
    manifest = load_manifest(results, study)
    frames = []
    for (dataset, model), group in df.groupby(["dataset", "model"], sort=True):
        runs = [find_run(manifest, dataset, model, s) for s in sorted(group["seed"].unique())]
        runs = [r for r in runs if has_model(r)]
        if len(runs) < 2:
            continue
        X_ref = run_resources(runs[0])[1].X_test
        activations = {int(r["seed"]): hidden_activations(_network(r["model_path"]), X_ref)
                       for r in runs}
        for (mode, split), rows in group.groupby(["mode", "split"], sort=True):
            matched = seed_matching(rows, activations)
            frames.append(matched.assign(dataset=dataset, model=model, mode=mode, split=split))
    if not frames:
        return pd.DataFrame()
    matched = pd.concat(frames, ignore_index=True)
    front = ["dataset", "model", "mode", "split"]
    return matched[front + [c for c in matched.columns if c not in front]]


def _bootstrap(results: str, study: str, df: pd.DataFrame) -> pd.DataFrame:
    """Bootstrap stability of every layer's harmful set, per run and mode, on the test split;
    ``mean_jaccard`` is NaN where the full harmful set is empty."""
    manifest = load_manifest(results, study)
    rows = []
    for key, _ in _families(df[df["split"] == "test"]):
        run = find_run(manifest, key["dataset"], key["model"], key["seed"])
        if not has_model(run):
            continue
        net, data = run_resources(run)
        for layer in range(net.n_hidden_layers):
            result = bootstrap_harmful(net, data.X_test, data.y_test, layer, key["mode"],
                                       n_boot=N_BOOT, reference=_reference(key["mode"], data))
            harmful = result.units[result.units["harmful"]]
            rows.append({**key, "layer": layer, "n_harmful": len(harmful),
                         "n_stable": int((harmful["harmful_frequency"] >= STABLE).sum()),
                         "mean_harmful_resampled": float(result.units["harmful_frequency"].sum()),
                         "mean_jaccard": float(result.jaccard.mean()) if len(harmful) else np.nan})
    return pd.DataFrame(rows)


@_needs_neurons
def stability_sections(results: str, study: str, out_dir: Path) -> list[Section]:
    """Shares across seeds with t-intervals, pairwise KS, matched-neuron agreement, bootstrap."""
    df = load(results, study, "neuron")
    shares = share_intervals(impact_table(df), CONFIDENCE)
    ks = seed_ks(df)
    matched = _matching(results, study, df)
    boot = _bootstrap(results, study, df)
    paragraphs = _share_findings(shares)
    if not ks.empty:
        paragraphs.append(
            f"The seeds' effect distributions differ (two-sample KS p < 0.05) in "
            f"{int((ks['ks_p'] < 0.05).sum())} of {len(ks)} layer-wise seed pairs."
        )
    paragraphs += [_matching_finding(r) for r in matched.itertuples()]
    paragraphs += [_bootstrap_finding(r) for r in boot.itertuples()]
    tables = {
        "seed_shares": Table(
            shares,
            "Share of helpful, neutral and harmful neurons in each layer across seeds, in %: "
            f"mean and {100 * CONFIDENCE:.0f} % Student-t interval (low, high; clipped to "
            "0–100).",
            interval_note(int(shares["n_seeds"].min()), CONFIDENCE) if len(shares) else "",
        ),
        "seed_ks": Table(ks, "Two-sample Kolmogorov-Smirnov tests between the effect "
                             "distributions of every pair of seeds, per layer."),
        "seed_matching": Table(
            matched,
            "Neurons of two seeds matched one to one by activation correlation on the test "
            "images (Hungarian assignment): the matched pairs' mean correlation, the Spearman "
            "correlation of their effects, each seed's harmful neurons and the Jaccard overlap "
            "of the harmful sets (blank when neither seed has one).",
        ),
        "bootstrap_harmful": Table(
            boot,
            f"Each layer's harmful set under {N_BOOT} bootstrap resamples of the test rows: "
            f"harmful neurons on the full split, those harmful in at least {100 * STABLE:.0f} % "
            "of the resamples (stable), how many are harmful in a resample on average, and the "
            "mean Jaccard overlap of a resample's harmful set with the full one (blank when the "
            "full set is empty).",
        ),
    }
    return [Section("Stability across seeds and test resamples", paragraphs, tables, [],
                    stability_summary(shares, matched, boot))]


# --------------------------------------------------------------------------- most harmful neuron


def _shown(n: int, verb: str, how: str) -> str:
    """What a row of the fixed / broken figure shows: ``"8 of the 12 images it fixes (how)"``,
    ``"the 2 images it fixes (how)"``, ``"empty: it fixes no image"``."""
    if not n:
        return f"empty: it {verb} no image"
    some = f"{SHOWN_IMAGES} of the {n} images" if n > SHOWN_IMAGES else f"the {count(n, 'image')}"
    return f"{some} it {verb} ({how})"


def _neuron_figures(results: str, study: str, key: dict[str, Any], row: pd.Series,
                    run: dict[str, Any], out_dir: Path) -> tuple[str, list[Figure]]:
    """Figures 3-5 of the paper for the family's most harmful neuron, and its paragraph."""
    net, data = run_resources(run)
    layer, unit = int(row["layer"]), int(row["unit"])
    shape = image_shape(run["dataset_params"]["name"])
    name = figure_slug(*key.values(), f"L{layer}", f"u{unit}")
    label = f"unit {unit} of layer {layer} of {family_label(key)}"
    figure = fig.new_figure(4, 4)
    fig.plot_vector_image(fig.input_projection(net, layer, unit), shape, figure.subplots(),
                          f"layer {layer} unit {unit}", "weight")
    drawn = ("its incoming weights" if layer == 0 else
             "its incoming weights projected to input space through the earlier layers' weights "
             "(activations ignored)")
    colours = ("colour around mid-grey: the sign and size of the weight on each pixel channel"
               if len(shape) == 3 else "red: positive, blue: negative")
    figures = [Figure(fig.save_figure(figure, out_dir / "figures", f"weights_{name}"),
                      f"The most harmful neuron, {label}: {drawn}, one value per input pixel "
                      f"({colours}).")]
    change = prediction_change(net, data.X_test, data.y_test, [(layer, unit)], key["mode"],
                               _reference(key["mode"], data))
    figure = fig.new_figure(10, 3.4)
    fig.plot_changed_images(figure, data.X_test, data.y_test, change.base, change.ablated,
                            change.fixed, change.broken, shape, SHOWN_IMAGES)
    figures.append(Figure(
        fig.save_figure(figure, out_dir / "figures", f"changed_{name}"),
        f"Test images whose prediction changes when {label} is removed. Top row: "
        f"{_shown(len(change.fixed), 'fixes', 'wrong before, right after')}; bottom row: "
        f"{_shown(len(change.broken), 'breaks', 'right before, wrong after')}. Above each "
        "image: its true label, then the predicted label before → after the removal.",
    ))
    if has_kind(results, study, "synapse"):
        synapses = load(results, study, "synapse", filters=[
            ("dataset", "=", key["dataset"]), ("model", "=", key["model"]),
            ("seed", "=", key["seed"]), ("split", "=", key["split"]),
            ("layer", "=", layer), ("target", "=", unit)])
        sources = "input pixel" if layer == 0 else f"unit of layer {layer - 1}"
        for mode, rows in synapses.groupby("mode", sort=True):
            figure = fig.new_figure(9, 4)
            ax_image, ax_curve = figure.subplots(1, 2)
            source_shape = shape if layer == 0 else (net.coefs[layer].shape[0],)
            fig.plot_synapse_effects(rows, net.coefs[layer].shape[0], source_shape, ax_image,
                                     ax_curve, f"synapse effects into unit {unit} ({mode})")
            figures.append(Figure(
                fig.save_figure(figure, out_dir / "figures", f"synapses_{name}_{mode}"),
                f"The incoming synapses of {label}, each removed alone ({mode} ablation): the "
                f"change of {key['split']} accuracy in pp, left by source {sources} (red: "
                "removing the synapse raises accuracy; synapses not swept are drawn as 0), "
                "right sorted.",
            ))
    text = (
        f"The most harmful neuron of {family_label(key)} is unit {unit} of layer {layer} "
        f"(effect {_pp(row['effect'])}): removing it fixes "
        f"{count(len(change.fixed), 'test image')} and breaks {len(change.broken)}."
    )
    return text, figures


@_needs_neurons
def harmful_neuron_sections(results: str, study: str, out_dir: Path) -> list[Section]:
    """Weights, fixed/broken test images and synapse effects of each run's most harmful
    neuron; a sentence saying there is none where no removal raises test accuracy."""
    df = load(results, study, "neuron", filters=[("split", "=", "test")])
    manifest = load_manifest(results, study)
    paragraphs, figures = [], []
    for _, row in most_harmful(df).iterrows():
        key = {k: row[k] for k in FAMILY_KEYS}
        if row["effect"] <= 0:
            best = ("at best it stays the same" if row["effect"] == 0 else
                    f"at best it changes by {_pp(row['effect'])}")
            paragraphs.append(
                f"No neuron of {family_label(key)} is harmful: removing any one of them keeps or "
                f"lowers test accuracy ({best}), so there is no harmful neuron to show."
            )
            continue
        run = find_run(manifest, key["dataset"], key["model"], key["seed"])
        if not has_model(run):
            paragraphs.append(f"No model artifact for {family_label(key)}; its figures are skipped.")
            continue
        text, drawn = _neuron_figures(results, study, key, row, run, out_dir)
        paragraphs.append(text)
        figures += drawn
    return [Section("The most harmful neurons", paragraphs, {}, figures)]


# --------------------------------------------------------------------------- pruning


def _pruning_finding(r: Any) -> str:
    head = f"{r.dataset}/{r.model} seed {r.seed}"
    if r.n_selected == 0:
        return (f"No neuron of {head} is harmful on the validation split ({r.mode}); nothing "
                "is pruned.")
    singles = (
        "; the test sweep lacks some of them, so their single effects are not summed"
        if np.isnan(r.sum_single_effects) else
        f"; its single test effect is {_pp(r.sum_single_effects)}" if r.n_selected == 1 else
        f"; their single test effects sum to {_pp(r.sum_single_effects)}"
    )
    chosen = (f"the one neuron of {head} that is" if r.n_selected == 1 else
              f"together the {r.n_selected} neurons of {head} that are")
    return (
        f"Removing {chosen} harmful on the validation split ({r.mode}) changes test accuracy by "
        f"{_pp(r.joint_effect)} (from {100 * r.accuracy_base:.2f} % to {100 * r.accuracy:.2f} %)"
        f"{singles}."
    )


@_needs_neurons
def pruning_sections(results: str, study: str, out_dir: Path) -> list[Section]:
    """Held-out pruning: harmful-on-validation neurons removed together, measured on test."""
    df = load(results, study, "neuron")
    manifest = load_manifest(results, study)
    rows = []
    for key, family in df.groupby([*RUN_KEYS, "mode"], sort=True):
        run = find_run(manifest, *key[:3])
        if not has_model(run):
            continue
        net, data = run_resources(run)
        result = heldout_pruning(family, net, data.X_test, data.y_test, key[3],
                                 _reference(key[3], data))
        if result is not None:
            rows.append({**dict(zip([*RUN_KEYS, "mode"], key)), **result})
    if not rows:
        return []
    table = pd.DataFrame(rows)
    pruned = table[table["n_selected"] > 0]
    summary = [] if pruned.empty else [
        "Removing together the neurons that are harmful on the validation split changes test "
        f"accuracy by {value_range(100 * pruned['joint_effect'], '+.2f')} pp "
        f"({count(len(pruned), 'network')})"
        + (": pruning them never helps on test." if (pruned["joint_effect"] <= 0).all() else ".")
    ]
    caption = (
        "Held-out pruning: the neurons harmful on the validation split (selected) removed "
        "together, measured on the test split: accuracy before and after, the joint change, "
        "the sum of their single test effects, and the log-loss before and after."
    )
    units = in_units(table, pp=["joint_effect", "sum_single_effects"],
                     pct=["accuracy_base", "accuracy"])
    return [Section("Held-out pruning", [_pruning_finding(r) for r in table.itertuples()],
                    {"heldout_pruning": Table(units, caption)}, [], summary)]

"""Report sections built from a results folder: tables, figures and a paragraph per finding.

Each builder has the :data:`SectionBuilder` signature ``(results, study, out_dir) -> list[Section]``
and writes its figures under ``out_dir / "figures"``; :mod:`analysis.report` renders them.
Other modules plug in their own builders the same way (import :class:`Section` from here).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import figures as fig
from analysis.impact import FAMILY_KEYS, impact_table, most_harmful, with_categories
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
from analysis.stability import bootstrap_harmful, seed_ks, seed_matching, share_intervals
from sweep.data.datasets import DatasetSplits, image_shape, reference_inputs
from sweep.kernels.network import Network, hidden_activations

Q = 0.05
"""FDR level of the report."""

N_BOOT = 50
"""Resamples of the test rows in the bootstrap stability of the harmful sets."""

STABLE = 0.9
"""A harmful neuron is called stable when it stays harmful in this share of resamples."""


@dataclass
class Section:
    """One report section.

    Attributes
    ----------
    title : str
    paragraphs : list of str — plain text, one finding each
    tables : dict of str to DataFrame — CSV stem (unique in the report) -> table
    figures : list of Path — PNGs under ``out_dir / "figures"`` (an SVG beside each)
    """

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)


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


def _pp(fraction: float) -> str:
    """An accuracy change as signed percentage points."""
    return f"{100 * fraction:+.2f} pp"


@functools.lru_cache(maxsize=16)
def _network(model_path: str) -> Network:
    return load_network({"model_path": model_path})


@functools.lru_cache(maxsize=2)
def _data(params: str) -> DatasetSplits:
    return load_data({"dataset_params": json.loads(params)})


def _resources(run: dict[str, Any]) -> tuple[Network, DatasetSplits]:
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


def _effects_figure(key: dict[str, Any], rows: pd.DataFrame, out_dir: Path) -> Path:
    layers = sorted(rows["layer"].unique())
    figure = fig.new_figure(15, 3.5 * len(layers))
    axes = figure.subplots(len(layers), 3, squeeze=False)
    for ax_row, layer in zip(axes, layers):
        layer_rows = rows[rows["layer"] == layer]
        title = f"{family_label(key)} layer {layer}"
        fig.plot_sorted_effects(layer_rows, ax_row[0], title)
        fig.plot_effect_histogram(layer_rows, ax_row[1], "effect histogram")
        fig.plot_class_effects(layer_rows, ax_row[2], title="per-class effect")
    return fig.save_figure(figure, out_dir / "figures", figure_slug("effects", *key.values()))


@_needs_neurons
def impact_sections(results: str, study: str, out_dir: Path) -> list[Section]:
    """The paper's table (every split), per-layer effect figures (test split) and the
    FDR-significant harmful neurons."""
    df = load(results, study, "neuron")
    table = impact_table(df, runs_table(load_manifest(results, study)), q=Q)
    paragraphs = [impact_finding(g) for _, g in table.groupby(FAMILY_KEYS, sort=True)]
    figures = [_effects_figure(key, rows, out_dir) for key, rows in _families(df[df["split"] == "test"])]
    rows = with_categories(df, Q)
    significant = rows[rows["significant"] & (rows["category"] == "harmful")]
    columns = [*FAMILY_KEYS, "layer", "unit", "effect", "broken", "fixed", "p_mcnemar", "q_value"]
    return [
        Section("Impact of single-neuron removal", paragraphs, {"impact": table}, figures),
        Section(
            "Significance",
            [(f"{len(significant)} harmful neurons have a Benjamini-Hochberg q-value <= {Q} "
              "(exact McNemar test per ablation, FDR controlled over each run's sweep).")],
            {"significant_harmful": significant[columns].reset_index(drop=True)},
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
        X_ref = _resources(runs[0])[1].X_test
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
    """Bootstrap stability of every layer's harmful set, per run and mode, on the test split."""
    manifest = load_manifest(results, study)
    rows = []
    for key, _ in _families(df[df["split"] == "test"]):
        run = find_run(manifest, key["dataset"], key["model"], key["seed"])
        if not has_model(run):
            continue
        net, data = _resources(run)
        for layer in range(net.n_hidden_layers):
            result = bootstrap_harmful(net, data.X_test, data.y_test, layer, key["mode"],
                                       n_boot=N_BOOT, reference=_reference(key["mode"], data))
            harmful = result.units[result.units["harmful"]]
            rows.append({**key, "layer": layer, "n_harmful": len(harmful),
                         "n_stable": int((harmful["harmful_frequency"] >= STABLE).sum()),
                         "mean_jaccard": float(result.jaccard.mean())})
    return pd.DataFrame(rows)


@_needs_neurons
def stability_sections(results: str, study: str, out_dir: Path) -> list[Section]:
    """Shares across seeds with t-intervals, pairwise KS, matched-neuron agreement, bootstrap."""
    df = load(results, study, "neuron")
    shares = share_intervals(impact_table(df))
    ks = seed_ks(df)
    matched = _matching(results, study, df)
    boot = _bootstrap(results, study, df)
    paragraphs = _share_findings(shares)
    if not ks.empty:
        paragraphs.append(
            f"The seeds' effect distributions differ (two-sample KS p < 0.05) in "
            f"{int((ks['ks_p'] < 0.05).sum())} of {len(ks)} layer-wise seed pairs."
        )
    paragraphs += [
        f"Matching the neurons of seeds {r.seed_a} and {r.seed_b} of {r.dataset}/{r.model} layer "
        f"{r.layer} by activation correlation (mean matched r = {r.mean_correlation:.2f}), their "
        f"effects ({r.mode}, {r.split}) correlate with Spearman rho = {r.spearman:.2f}; the "
        f"harmful sets ({r.harmful_a} and {r.harmful_b} neurons) overlap with Jaccard "
        f"{r.harmful_jaccard:.2f}."
        for r in matched.itertuples()
    ]
    paragraphs += [
        f"Layer {r.layer} of {family_label(r._asdict())} has {r.n_harmful} harmful neurons on the full "
        f"test split, {r.n_stable} of which stay harmful in at least {100 * STABLE:.0f} % of "
        f"{N_BOOT} resamples of the test rows; the resampled harmful sets overlap the full one "
        f"with mean Jaccard {r.mean_jaccard:.2f}."
        for r in boot.itertuples()
    ]
    tables = {"seed_shares": shares, "seed_ks": ks, "seed_matching": matched,
              "bootstrap_harmful": boot}
    return [Section("Stability across seeds and test resamples", paragraphs, tables)]


# --------------------------------------------------------------------------- most harmful neuron


def _neuron_figures(results: str, study: str, key: dict[str, Any], row: pd.Series,
                    run: dict[str, Any], out_dir: Path) -> tuple[str, list[Path]]:
    """Figures 3-5 of the paper for the family's most harmful neuron, and its paragraph."""
    net, data = _resources(run)
    layer, unit = int(row["layer"]), int(row["unit"])
    shape = image_shape(run["dataset_params"]["name"])
    name = figure_slug(*key.values(), f"L{layer}", f"u{unit}")
    figure = fig.new_figure(4, 4)
    caption = "incoming weights" if layer == 0 else "incoming weights projected to input space"
    fig.plot_vector_image(fig.input_projection(net, layer, unit), shape, figure.subplots(),
                          f"layer {layer} unit {unit}: {caption}", "weight")
    paths = [fig.save_figure(figure, out_dir / "figures", f"weights_{name}")]
    change = prediction_change(net, data.X_test, data.y_test, [(layer, unit)], key["mode"],
                               _reference(key["mode"], data))
    figure = fig.new_figure(12, 3.5)
    fig.plot_changed_images(figure, data.X_test, data.y_test, change.base, change.ablated,
                            change.fixed, change.broken, shape)
    paths.append(fig.save_figure(figure, out_dir / "figures", f"changed_{name}"))
    if has_kind(results, study, "synapse"):
        synapses = load(results, study, "synapse", filters=[
            ("dataset", "=", key["dataset"]), ("model", "=", key["model"]),
            ("seed", "=", key["seed"]), ("split", "=", key["split"]),
            ("layer", "=", layer), ("target", "=", unit)])
        for mode, rows in synapses.groupby("mode", sort=True):
            figure = fig.new_figure(9, 4)
            ax_image, ax_curve = figure.subplots(1, 2)
            source_shape = shape if layer == 0 else (net.coefs[layer].shape[0],)
            fig.plot_synapse_effects(rows, net.coefs[layer].shape[0], source_shape, ax_image,
                                     ax_curve, f"synapse effects into unit {unit} ({mode})")
            paths.append(fig.save_figure(figure, out_dir / "figures", f"synapses_{name}_{mode}"))
    what = "most harmful neuron" if row["effect"] > 0 else "neuron with the largest effect"
    text = (
        f"The {what} of {family_label(key)} is unit {unit} of layer {layer} "
        f"(effect {_pp(row['effect'])}): removing it fixes {len(change.fixed)} test images and "
        f"breaks {len(change.broken)}."
    )
    return text, paths


@_needs_neurons
def harmful_neuron_sections(results: str, study: str, out_dir: Path) -> list[Section]:
    """Weights, fixed/broken test images and synapse effects of each run's most harmful neuron."""
    df = load(results, study, "neuron", filters=[("split", "=", "test")])
    manifest = load_manifest(results, study)
    paragraphs, paths = [], []
    for _, row in most_harmful(df).iterrows():
        key = {k: row[k] for k in FAMILY_KEYS}
        run = find_run(manifest, key["dataset"], key["model"], key["seed"])
        if not has_model(run):
            paragraphs.append(f"No model artifact for {family_label(key)}; its figures are skipped.")
            continue
        text, figures = _neuron_figures(results, study, key, row, run, out_dir)
        paragraphs.append(text)
        paths += figures
    return [Section("The most harmful neurons", paragraphs, {}, paths)]


# --------------------------------------------------------------------------- pruning


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
        net, data = _resources(run)
        result = heldout_pruning(family, net, data.X_test, data.y_test, key[3],
                                 _reference(key[3], data))
        if result is not None:
            rows.append({**dict(zip([*RUN_KEYS, "mode"], key)), **result})
    if not rows:
        return []
    table = pd.DataFrame(rows)
    paragraphs = [
        f"No neuron of {r.dataset}/{r.model} seed {r.seed} is harmful on the validation split "
        f"({r.mode}); nothing is pruned."
        if r.n_selected == 0 else
        f"Removing together the {r.n_selected} neurons of {r.dataset}/{r.model} seed {r.seed} "
        f"that are harmful on the validation split ({r.mode}) changes test accuracy by "
        f"{_pp(r.joint_effect)} (from {100 * r.accuracy_base:.2f} % to {100 * r.accuracy:.2f} %); "
        f"their single test effects sum to {_pp(r.sum_single_effects)}."
        for r in table.itertuples()
    ]
    return [Section("Held-out pruning", paragraphs, {"heldout_pruning": table})]

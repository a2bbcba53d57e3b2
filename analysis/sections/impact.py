"""Impact of single-neuron removal: the paper's table (helpful / neutral / harmful neurons
per layer, largest gain, FDR), what the data can resolve, per-layer effect figures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import figures as fig
from analysis.formatting import in_units, pp, units_named, value_range
from analysis.sections.base import (
    FAMILY_KEYS,
    LAYER_KEYS,
    Figure,
    Page,
    Section,
    Table,
    families,
    family_label,
    figure_slug,
    on_test,
)
from analysis.stats import CATEGORIES, Q, add_qvalues, categorize
from analysis.study import RUN_KEYS, NetworkKey, Study, network_keys


def with_categories(df: pd.DataFrame, q: float = Q) -> pd.DataFrame:
    """Neuron rows with ``category``, ``q_value`` (BH per family) and ``significant`` columns.

    Parameters
    ----------
    df : DataFrame of neuron rows (``kind=neuron``: ``LAYER_KEYS``, ``unit``, ``effect``,
        ``p_mcnemar``, ...)
    q : float — FDR level

    Returns
    -------
    DataFrame
        A copy of ``df`` plus ``category`` (:data:`~analysis.stats.CATEGORIES`), ``q_value``
        and ``significant`` (``q_value <= q``).
    """
    out = add_qvalues(df, FAMILY_KEYS)
    out["category"] = categorize(out["effect"].to_numpy())
    out["significant"] = out["q_value"] <= q
    return out


def impact_table(df: pd.DataFrame, runs: pd.DataFrame | None = None, q: float = Q) -> pd.DataFrame:
    """Per (dataset, model, seed, mode, split, layer): category counts, shares, largest gain.

    Parameters
    ----------
    df : DataFrame of neuron rows (see :func:`with_categories`)
    runs : DataFrame, optional — :func:`analysis.load.runs_table`; adds ``train_accuracy``
    q : float — FDR level of ``n_harmful_fdr``

    Returns
    -------
    DataFrame
        ``LAYER_KEYS``, [``train_accuracy``], ``accuracy_base`` (the unablated network's
        accuracy on the row's split), ``n_units``, ``n_<category>`` and ``pct_<category>``
        (percent of the layer) for each category, ``max_effect`` and ``max_unit`` (the unit
        whose removal gains most, the lowest index on ties; ``<NA>`` when no removal raises
        accuracy), ``n_max`` (units sharing that largest gain: a tie when > 1),
        ``n_harmful_fdr`` (harmful neurons with BH q-value <= ``q``).
        Accuracies and effects are fractions.
    """
    rows = with_categories(df, q)
    groups = rows.groupby(LAYER_KEYS, sort=True)
    counts = pd.crosstab(
        [rows[k] for k in LAYER_KEYS], rows["category"]
    ).reindex(columns=list(CATEGORIES), fill_value=0)
    table = pd.DataFrame(
        {"accuracy_base": groups["accuracy_base"].first(), "n_units": groups.size()}
    )
    for category in CATEGORIES:
        table[f"n_{category}"] = counts[category]
    for category in CATEGORIES:
        table[f"pct_{category}"] = 100.0 * table[f"n_{category}"] / table["n_units"]
    best = rows.sort_values([*LAYER_KEYS, "effect", "unit"], ascending=[True] * len(LAYER_KEYS) + [False, True])
    best = best.groupby(LAYER_KEYS, sort=True).head(1).set_index(LAYER_KEYS)
    table["max_effect"] = best["effect"]
    table["max_unit"] = best["unit"].astype("Int64").where(best["effect"] > 0)
    at_max = rows["effect"] == rows.groupby(LAYER_KEYS)["effect"].transform("max")
    table["n_max"] = at_max.groupby([rows[k] for k in LAYER_KEYS]).sum().where(best["effect"] > 0)
    table["n_max"] = table["n_max"].astype("Int64")
    harmful_fdr = rows["significant"] & (rows["category"] == "harmful")
    table["n_harmful_fdr"] = harmful_fdr.groupby([rows[k] for k in LAYER_KEYS]).sum()
    table = table.reset_index()
    if runs is not None:
        table = table.merge(runs[[*RUN_KEYS, "train_accuracy"]], on=RUN_KEYS, how="left")
        front = [*LAYER_KEYS, "train_accuracy"]
        table = table[front + [c for c in table.columns if c not in front]]
    return table


# --------------------------------------------------------------------------- presentation


def largest_gain(rows: pd.DataFrame) -> str:
    """The largest single-neuron gain among neuron rows of one split, ties named as ties:
    ``+0.22 pp: unit 129 of layer 0 of digits/nn_392 seed 0 (zero, test)``."""
    best = rows["effect"].max()
    if not best > 0:
        return ""
    top = rows[rows["effect"] == best]
    places = [
        f"{units_named(g['unit'].tolist())} of layer {layer} of {family_label(dict(zip(FAMILY_KEYS, key)))}"
        for (*key, layer), g in top.groupby([*FAMILY_KEYS, "layer"], sort=True)
    ]
    more = f" and {len(places) - 2} more places" if len(places) > 2 else ""
    return f"{pp(best)}: " + "; ".join(places[:2]) + more


def shared_errors(study: Study, keys: list[NetworkKey]) -> pd.DataFrame:
    """Per (dataset, model) whose seeds share one test split: the test images every seed
    gets wrong, and each seed's error count.

    Returns
    -------
    DataFrame
        ``dataset, model, n_seeds, n_test, errors_per_seed`` (min to max), ``shared_errors``.
    """
    rows = []
    by_model: dict[tuple[str, str], list[NetworkKey]] = {}
    for key in keys:
        if study.run(key) is not None:
            by_model.setdefault((key.dataset, key.model), []).append(key)
    for (dataset, model), seeds in by_model.items():
        splits = {id(study.data(k)) for k in seeds}
        if len(seeds) < 2 or len(splits) > 1:
            continue
        y = study.split(seeds[0], "test")[1]
        wrong = np.stack([study.network(k).classes[study.predictions(k, "test")] != y for k in seeds])
        errors = wrong.sum(axis=1)
        rows.append({"dataset": dataset, "model": model, "n_seeds": len(seeds), "n_test": len(y),
                     "errors_per_seed": value_range(errors, 0),
                     "shared_errors": int(wrong.all(axis=0).sum())})
    return pd.DataFrame(rows)


def resolution_line(neurons: pd.DataFrame, shared: pd.DataFrame) -> str:
    """What the data can resolve: one image in pp on each split's test set, and the errors
    every seed shares."""
    n = sorted({int(v) for v in neurons.loc[neurons["split"] == "test", "n_samples"]})
    if not n:
        return ""
    sizes = " / ".join(f"{100 / k:.2g} pp on {k:,} test images" for k in n)
    text = f"What the data can resolve: one image is {sizes}"
    for r in shared.itertuples():
        text += (f"; the {r.n_seeds} seeds of {r.dataset}/{r.model} share one test split and "
                 f"make {r.errors_per_seed} errors each, {r.shared_errors} of them on the same "
                 "images, so their most harmful neurons tend to fix the same few images")
    return text + "."


def impact_summary(table: pd.DataFrame, neurons: pd.DataFrame) -> list[str]:
    """Headlines: the share of harmful neurons and how many survive FDR, and the largest
    single gain, on the test split when there is one."""
    rows, split = on_test(table)
    sweeps = rows.groupby(FAMILY_KEYS, sort=True)[["n_units", "n_harmful", "n_harmful_fdr"]].sum()
    shares = 100 * sweeps["n_harmful"] / sweeps["n_units"]
    share = (f"{shares.iloc[0]:.1f} % of the neurons" if len(sweeps) == 1 else
             f"{value_range(shares, 1)} % of the neurons of each of {len(sweeps)} sweeps")
    fdr = int(sweeps["n_harmful_fdr"].sum())
    verdict = (f"none survives FDR at q = {Q} (exact McNemar tests), so none stands out from "
               f"{split}-set noise" if fdr == 0 else f"{fdr} survive FDR at q = {Q}")
    lines = [f"Harmful neurons (removal alone raises {split} accuracy): {share}; {verdict}."]
    gain = largest_gain(neurons if split == "every split" else neurons[neurons["split"] == "test"])
    lines.append(f"Largest single-neuron gain {gain}." if gain else
                 f"No single neuron's removal raises {split} accuracy.")
    return lines


EFFECT_FIGURE_KEYS: list[str] = ["dataset", "model", "mode", "split"]
"""One effects figure per network kind, mode and split: every seed drawn in it."""


def _effects_figure(key: dict, rows: pd.DataFrame, page: Page) -> Figure:
    layers = sorted(rows["layer"].unique())
    first = int(rows["seed"].min())
    seeds = rows["seed"].nunique()
    figure = fig.new_figure(10, 2.6 * len(layers))
    axes = figure.subplots(len(layers), 3, squeeze=False)
    for ax_row, layer in zip(axes, layers):
        layer_rows = rows[rows["layer"] == layer]
        fig.plot_sorted_effects(layer_rows, ax_row[0], f"layer {layer}: sorted effects")
        fig.plot_effect_histogram(layer_rows, ax_row[1], f"layer {layer}: histogram")
        fig.plot_class_effects(layer_rows[layer_rows["seed"] == first], ax_row[2],
                               title=f"layer {layer}: per-class effect, seed {first}")
    n = int(rows["n_samples"].iloc[0])
    every = f" of every seed ({seeds}, one line each)" if seeds > 1 else ""
    caption = (
        f"Single-neuron effects of {family_label(key)}{every}, one row per hidden layer: the "
        f"change of {key['split']} accuracy ({n} images, one image = {100 / n:.2g} pp) when one "
        "neuron is removed. Left: every neuron's effect, sorted (above the red line: harmful). "
        "Middle: how many neurons have each effect. Right: each class's accuracy change, "
        f"neurons in the order of the left panel, seed {first} (red: the class gains, blue: it "
        "loses)."
    )
    path = fig.save_figure(figure, page.figures, figure_slug("effects", *key.values()), page.svg)
    return Figure(path, caption)


def build(study: Study, page: Page) -> list[Section]:
    """The paper's table (every split), what the data can resolve, the FDR-significant
    harmful neurons, and per-layer effect figures (test split; the first network open, the
    others collapsed)."""
    if not study.has("neuron"):
        return []
    df = study.rows("neuron")
    table = impact_table(df, study.runs)
    rows = with_categories(df)
    significant = rows[rows["significant"] & (rows["category"] == "harmful")]
    shared = shared_errors(study, network_keys(df))
    paragraphs = [p for p in [resolution_line(df, shared)] if p]
    shown = table.drop(columns=["n_helpful", "n_neutral"])  # n units x the shares: a page width
    tables = {"impact": Table(
        in_units(shown.rename(columns={"accuracy_base": "accuracy"}), pp=["max_effect"],
                 pct=["train_accuracy", "accuracy"]),
        "Single-neuron removal per network, split and layer (the paper's table). Accuracy: the "
        "unablated network's on the row's split; helpful / neutral / harmful: neurons whose "
        "removal lowers / keeps / raises it; max effect: the largest gain and the lowest unit "
        "giving it (n max: how many units tie for it; blank when no removal raises accuracy); "
        f"n harmful fdr: harmful neurons with a Benjamini-Hochberg q-value <= {Q}.",
    )}
    if len(significant):
        columns = [*FAMILY_KEYS, "layer", "unit", "effect", "broken", "fixed", "p_mcnemar", "q_value"]
        tables["significant_harmful"] = Table(
            in_units(significant[columns].reset_index(drop=True), pp=["effect"]),
            f"Harmful neurons that survive FDR at q = {Q}: effect, images their removal breaks "
            "and fixes, exact McNemar p-value and Benjamini-Hochberg q-value.")
    else:
        paragraphs.append(
            f"No harmful neuron has a Benjamini-Hochberg q-value <= {Q} (exact McNemar test per "
            "removal, FDR controlled over each sweep): no single removal is distinguishable "
            "from test-set noise.")
    test = families(df[df["split"] == "test"], EFFECT_FIGURE_KEYS)
    figures = [_effects_figure(key, g, page) for key, g in test]
    return [Section("Impact of single-neuron removal", paragraphs, tables, figures,
                    impact_summary(table, df))]

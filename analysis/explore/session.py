"""What the explorer knows and computes: one study's rows, its networks, and live answers.

No web library here: the pages (:mod:`analysis.explore.app`) ask an :class:`Explorer` for
tables, unit profiles and joint ablations, and show what it returns. Results are read only
through :mod:`analysis.load` (so through ``sweep.results``); a model artifact is opened only
when it lies inside the results root the explorer was given.

Live answers use the running pass of the kernels (``sweep.kernels.running_pass``: an MLP's
``PrunedPass``, a torch network's ``TorchUnitSet``), as cumulative curves do: the unablated
forward pass of each split is computed once per mode; a question copies it and ablates its
units into it (for an MLP a rank-k change of the next layer, later layers recomputed on the
changed rows; for a torch network the chain resumed after the earliest site with held units),
measured by ``sweep.kernels.metrics.ablation_metrics``, so the numbers are those of
:func:`sweep.kernels.ablate_joint` on the same units (tested) at a fraction of its cost.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd

from analysis.figures import unit_weights
from analysis.load import (
    AnalysisError,
    check_parts,
    has_kind,
    load,
    load_data,
    load_manifest,
    load_network,
    resolve_study,
)
from analysis.sections.impact import impact_table
from analysis.sections.stability import share_intervals
from sweep.data import DATASETS, DatasetSplits, image_shape, reference_inputs
from sweep.kernels import (
    NEURON_MODES,
    Network,
    PrunedPass,
    TorchNetwork,
    TorchUnitSet,
    ablation_metrics,
    as_units,
    class_index,
    class_knockout,
    fire_thresholds,
    running_pass,
    unit_outputs,
    unit_statistics,
    unit_values,
)
from sweep.kinds import KNOCKOUT_KEYS, knockout_sets, statistics_split

Unit = tuple[int, int]
"""(hidden layer, unit index)."""

MAX_QUESTION_CHARS = 20_000
"""Longest unit list the ask form reads (every unit of NN_392_196 written out is ~4,500)."""

TOP_IMAGES = 8
"""Top-activating test images shown per unit."""

SHOWN_CHANGES = 8
"""Broken and fixed test images shown per answer."""

TABLE_STATISTICS = ("selectivity", "entropy", "mutual_information", "activation_rate")
"""Unit statistics (``sweep.kernels.unitstats.STATISTICS``) in the units table."""

NAMED_REPEATS = 5
"""Most repeated units a message names."""

_TOKEN = re.compile(r"^(\d+):(\d+)(?:-(\d+))?$")
_LINK_UNIT = re.compile(r"^(\d+):(\d+)$")

UNIT_LINK_EXAMPLE = "?model=dataset/model/seed&unit=layer:unit (e.g. ?model=digits/nn/0&unit=1:3)"
"""How a unit link's query string reads (:data:`analysis.explore.UNIT_URL`)."""


class ExploreError(AnalysisError):
    """A question the explorer cannot answer; the message is shown on the page as it is."""


@dataclass(frozen=True)
class ModelKey:
    """One trained network of the study."""

    dataset: str
    model: str
    seed: int

    @property
    def label(self) -> str:
        """``digits/nn_392 seed 0``."""
        return f"{self.dataset}/{self.model} seed {self.seed}"

    @property
    def value(self) -> str:
        """``digits|nn_392|0``: the key as one string (a dropdown value); see :meth:`parse`."""
        return f"{self.dataset}|{self.model}|{self.seed}"

    @classmethod
    def parse(cls, value: str) -> ModelKey:
        dataset, model, seed = value.split("|")
        return cls(dataset, model, int(seed))


@dataclass(frozen=True)
class SplitAnswer:
    """A joint ablation measured on one split.

    Attributes
    ----------
    split : str — ``val`` or ``test``
    n_samples : int
    accuracy_base, accuracy, effect : float — fractions; ``effect = accuracy - accuracy_base``
    broken, fixed : int — rows that go right -> wrong / wrong -> right
    p_mcnemar : float — exact McNemar p-value of ``broken`` against ``fixed``
    broken_rows, fixed_rows : ndarray of int — those rows' indices in the split
    base_labels, labels : ndarray of shape (n_samples,) — predicted labels before and after
    """

    split: str
    n_samples: int
    accuracy_base: float
    accuracy: float
    effect: float
    broken: int
    fixed: int
    p_mcnemar: float
    broken_rows: np.ndarray
    fixed_rows: np.ndarray
    base_labels: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class UnitProfile:
    """What one hidden unit looks for and what removing it does, on the test split.

    Attributes
    ----------
    layer, unit : int
    weights : ndarray of shape (n_weights,) — what :func:`analysis.figures.unit_weights` draws:
        an MLP unit's incoming weights in input space, a convolution channel's filter, a torch
        linear unit's incoming weights
    weights_shape : tuple of int or None — the image ``weights`` reshape to (None: a
        near-square grid)
    weights_drawn : str — what ``weights`` are, in words
    feature_map : ndarray of shape (H, W) or None — a convolution channel's mean output map
        over the test images (None for any other unit)
    classes : ndarray of shape (n_classes,) — class labels
    class_effect : ndarray of shape (n_classes,) or None — per-class accuracy change of its
        single ablation (fractions; None when the sweep lacks the unit)
    class_activation : ndarray of shape (n_classes,) — mean output per true class
    top_rows, top_values : ndarray of shape (TOP_IMAGES,) — the test rows it responds to
        most, and its output on each
    class_views : ndarray of shape (n_classes, n_features) — per class, the mean input
        weighted by the unit's rectified output (above ``act(0)``); NaN where it never fires
    removal : SplitAnswer — the unit ablated alone (the explorer's mode)
    synapses : ndarray of shape (n_sources,) or None — effect of each incoming synapse in
        fractions (0 where not swept), when a synapse sweep holds this unit
    partners : DataFrame or None — its :data:`PARTNERS` strongest partners in the study's pair
        sweep on test (columns ``layer, unit, effect_pair, interaction, p_mcnemar``, by
        ``|interaction|``), when one holds this unit
    """

    layer: int
    unit: int
    weights: np.ndarray
    weights_shape: tuple[int, ...] | None
    weights_drawn: str
    feature_map: np.ndarray | None
    classes: np.ndarray
    class_effect: np.ndarray | None
    class_activation: np.ndarray
    top_rows: np.ndarray
    top_values: np.ndarray
    class_views: np.ndarray
    removal: SplitAnswer
    synapses: np.ndarray | None
    partners: pd.DataFrame | None


PARTNERS = 8
"""Partners a unit view lists from a pair sweep."""


def parse_units(text: str | None, hidden_sizes: tuple[int, ...]) -> list[Unit]:
    """Read a typed unit list: ``layer:unit`` or ``layer:first-last``, separated by commas,
    semicolons or spaces.

    Returns
    -------
    list of (layer, unit), sorted

    Raises
    ------
    ExploreError
        On an empty or over-long list, a token that is not a unit, a unit the network lacks
        (the message names it and what exists), or a unit listed more than once (named, as
        :func:`repeated_units` says).
    """
    text = text or ""
    if len(text) > MAX_QUESTION_CHARS:
        raise ExploreError(f"the unit list is too long ({len(text):,} characters; at most "
                           f"{MAX_QUESTION_CHARS:,})")
    tokens = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
    if not tokens:
        raise ExploreError("choose at least one unit, e.g. 0:3, 0:17 or a range 1:0-9")
    units: list[Unit] = []
    for token in tokens:
        match = _TOKEN.match(token)
        if match is None:
            raise ExploreError(f"cannot read {token[:40]!r}: write a unit as layer:unit (0:3) "
                               "or a range as layer:first-last (0:10-19)")
        layer, first = int(match[1]), int(match[2])
        last = int(match[3]) if match[3] is not None else first
        if layer >= len(hidden_sizes):
            raise ExploreError(f"layer {layer} does not exist: the network's hidden layers are "
                               f"0-{len(hidden_sizes) - 1}")
        for index in (first, last):
            if index >= hidden_sizes[layer]:
                raise ExploreError(f"unit {index} of layer {layer} does not exist: layer {layer} "
                                   f"has units 0-{hidden_sizes[layer] - 1}")
        if last < first:
            raise ExploreError(f"the range {token!r} is empty: write it first-last")
        units.extend((layer, u) for u in range(first, last + 1))
    if repeated := repeated_units(units):
        raise ExploreError(f"{repeated}: write each unit once (a unit is removed once)")
    return sorted(units)


def repeated_units(units: list[Unit]) -> str | None:
    """None when every unit of ``units`` is distinct, else a phrase naming the repeats (at most
    :data:`NAMED_REPEATS`): ``unit 1:3 is listed twice``, ``units 0:2 (twice), 1:3 (3 times)
    are listed more than once``."""
    counts: dict[Unit, int] = {}
    for unit in units:
        counts[unit] = counts.get(unit, 0) + 1
    repeats = sorted((u, n) for u, n in counts.items() if n > 1)
    if not repeats:
        return None

    def times(n: int) -> str:
        return "twice" if n == 2 else f"{n} times"

    if len(repeats) == 1:
        (layer, unit), n = repeats[0]
        return f"unit {layer}:{unit} is listed {times(n)}"
    named = ", ".join(f"{l}:{u} ({times(n)})" for (l, u), n in repeats[:NAMED_REPEATS])
    more = f" and {len(repeats) - NAMED_REPEATS} more" if len(repeats) > NAMED_REPEATS else ""
    return f"units {named}{more} are listed more than once"


def format_units(units: list[Unit]) -> str:
    """``0:3, 0:17-19, 1:5``: sorted, consecutive units as ranges (what :func:`parse_units`
    reads)."""
    runs: list[list[int]] = []  # [layer, first, last]
    for layer, unit in sorted(units):
        if runs and runs[-1][0] == layer and runs[-1][2] == unit - 1:
            runs[-1][2] = unit
        else:
            runs.append([layer, unit, unit])
    return ", ".join(f"{l}:{a}" if a == b else f"{l}:{a}-{b}" for l, a, b in runs)


def unit_link(search: str | None) -> tuple[ModelKey, Unit] | None:
    """The network and unit a URL's query string names (:data:`analysis.explore.UNIT_URL`),
    None when it names neither.

    Parameters
    ----------
    search : str or None — the query string, with or without its ``?``
        (``?model=digits/nn/0&unit=1:3``; other parameters, such as ``token``, are ignored)

    Raises
    ------
    ExploreError
        When it names only one of them, or either is not written as the link writes it.
    """
    fields = dict(part.partition("=")[::2] for part in (search or "").lstrip("?").split("&") if part)
    model, unit = fields.get("model"), fields.get("unit")
    if model is None and unit is None:
        return None
    example = "write it as " + UNIT_LINK_EXAMPLE
    if model is None or unit is None:
        raise ExploreError(f"a unit link needs both model= and unit=: {example}")
    parts = [unquote(p) for p in model.split("/")]
    if len(parts) != 3 or not all(parts) or not parts[2].isdigit():
        raise ExploreError(f"cannot read the link's model {unquote(model)[:80]!r}: {example}")
    match = _LINK_UNIT.match(unquote(unit))
    if match is None:
        raise ExploreError(f"cannot read the link's unit {unquote(unit)[:40]!r}: {example}")
    return ModelKey(parts[0], parts[1], int(parts[2])), (int(match[1]), int(match[2]))


def answers_frame(key: ModelKey, units: list[Unit], mode: str, answers: list[SplitAnswer]) -> pd.DataFrame:
    """A joint ablation's answers as a table, one row per split (what the Ask tab's CSV holds).

    Columns: ``dataset, model, seed, mode, units`` (as :func:`format_units` writes them),
    ``n_units, split, n_samples, accuracy_base_pct, accuracy_pct`` (%), ``effect_pp`` (pp),
    ``broken, fixed, p_mcnemar``, and ``broken_rows, fixed_rows``: those images' row indices
    in the split, separated by spaces.
    """
    return pd.DataFrame([{
        "dataset": key.dataset, "model": key.model, "seed": key.seed, "mode": mode,
        "units": format_units(units), "n_units": len(units), "split": a.split,
        "n_samples": a.n_samples, "accuracy_base_pct": 100 * a.accuracy_base,
        "accuracy_pct": 100 * a.accuracy, "effect_pp": 100 * a.effect, "broken": a.broken,
        "fixed": a.fixed, "p_mcnemar": a.p_mcnemar,
        "broken_rows": " ".join(map(str, a.broken_rows)), "fixed_rows": " ".join(map(str, a.fixed_rows)),
    } for a in answers])


def answers_filename(key: ModelKey, mode: str) -> str:
    """``ask-digits-nn-seed0-zero.csv``: the downloaded CSV's name."""
    return re.sub(r"[^\w.-]+", "_", f"ask-{key.dataset}-{key.model}-seed{key.seed}-{mode}") + ".csv"


@dataclass(frozen=True)
class ReportSection:
    """One numbered section of the report's ``index.html``.

    Attributes
    ----------
    anchor : str — its element id (``s3``): the link is ``index.html#s3``
    title : str — its heading's text (``3 Harmful neurons``)
    units : frozenset of (ModelKey, Unit) — the units its explorer links name
    """

    anchor: str
    title: str
    units: frozenset[tuple[ModelKey, Unit]]


class _SectionParser(HTMLParser):
    """Collects :class:`ReportSection` fields: an element with id ``s<N>`` opens a section,
    its first h1-h3 gives the title, and every ``<a href>`` that is a unit link is its."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, Any]] = []
        self._heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if re.fullmatch(r"s\d+", attributes.get("id") or ""):
            self.sections.append({"anchor": attributes["id"], "title": [], "units": set()})
        if not self.sections:
            return
        current = self.sections[-1]
        if tag in ("h1", "h2", "h3") and not current["title"]:
            self._heading = True
        if tag == "a" and "?" in (attributes.get("href") or ""):
            try:
                link = unit_link(attributes["href"].split("?", 1)[1].split("#")[0])
            except ExploreError:
                link = None
            if link is not None:
                current["units"].add(link)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._heading = False

    def handle_data(self, data: str) -> None:
        if self._heading:
            self.sections[-1]["title"].append(data)


class ReportLinks:
    """The report folder the explorer serves and links to (``python -m analysis RESULTS
    --out DIR``); it may be written, or rewritten, while the explorer runs.

    Parameters
    ----------
    folder : path of the report folder (its ``index.html`` is the report)
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.index = self.folder / "index.html"
        self._read: tuple[int, list[ReportSection]] | None = None
        self._lock = threading.Lock()

    @property
    def exists(self) -> bool:
        """Whether the report has been written."""
        return self.index.is_file()

    def sections(self) -> list[ReportSection]:
        """The report's numbered sections in page order (read again when ``index.html``
        changes); empty while there is no report."""
        try:
            stamp = self.index.stat().st_mtime_ns
        except OSError:
            return []
        with self._lock:
            if self._read is None or self._read[0] != stamp:
                parser = _SectionParser()
                parser.feed(self.index.read_text(encoding="utf-8", errors="replace"))
                self._read = (stamp, [ReportSection(s["anchor"], " ".join("".join(s["title"]).split()),
                                                    frozenset(s["units"])) for s in parser.sections])
            return self._read[1]

    def naming(self, key: ModelKey, unit: Unit) -> list[ReportSection]:
        """The sections that link to ``unit`` of network ``key``."""
        return [s for s in self.sections() if (key, unit) in s.units]


def inside(root: str, location: str) -> bool:
    """Whether ``location`` (a path or URI) lies inside the results root ``root``."""
    if "://" in root or "://" in location:
        base = root.split("?")[0].rstrip("/") + "/"
        return location.split("?")[0].startswith(base)
    return Path(location).resolve().is_relative_to(Path(root).expanduser().resolve())


class LiveSplit:
    """One split of a network: its unablated forward pass, run once per mode.

    Parameters
    ----------
    net : Network or TorchNetwork
    name : str — the split's name
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels
    """

    def __init__(self, net: Network | TorchNetwork, name: str, X: np.ndarray, y: np.ndarray) -> None:
        self.net, self.name, self.X, self.y = net, name, X, y
        self.y_index = class_index(net, y)
        self._base: dict[str, PrunedPass | TorchUnitSet] = {}
        self.base_pred, self.base_loss = self.base("zero", unit_values(net, "zero")).outcome()

    def base(self, mode: str, values: list[Any]) -> PrunedPass | TorchUnitSet:
        """The unablated running state whose ablated units take ``values`` (those of ``mode``;
        ``sweep.kernels.running_pass``)."""
        if mode not in self._base:  # a per-image mode: draw 0 of seed 0, as sweep.kernels.ablate_joint
            self._base[mode] = running_pass(self.net, self.X, self.y, values, mode)
        return self._base[mode]

    def answer(self, units: np.ndarray, mode: str, values: list[np.ndarray]) -> SplitAnswer:
        """``units`` (k >= 1, 2) replaced by ``values[layer]`` (those of ``mode``) together,
        measured on this split: the unablated state copied and the units ablated into it
        (a rank-k change of the next layer, as cumulative curves do)."""
        state = self.base(mode, values).copy()
        state.remove_units(units)
        pred, loss = state.outcome()
        m = {k: v[0] for k, v in ablation_metrics(self.y_index, self.base_pred, self.base_loss,
                                                   pred[None], loss[None], len(self.net.classes)).items()}
        right_before, right_after = self.base_pred == self.y_index, pred == self.y_index
        return SplitAnswer(
            self.name, int(m["n_samples"]), float(m["accuracy_base"]), float(m["accuracy"]),
            float(m["effect"]), int(m["broken"]), int(m["fixed"]), float(m["p_mcnemar"]),
            np.flatnonzero(right_before & ~right_after), np.flatnonzero(~right_before & right_after),
            self.net.classes[self.base_pred], self.net.classes[pred],
        )


@dataclass(frozen=True)
class KnockoutSet:
    """Bau's question for one class of one network: the smallest unit set, chosen greedily on
    val (:func:`sweep.kernels.class_knockout`), whose removal brings the class to chance while
    every other class loses at most 1 pp.

    Attributes
    ----------
    target : class label knocked out
    units : list of (layer, unit) — the set, in the order chosen
    knocked_out : bool — the class reached chance on val
    accuracy_base, accuracy : float — the class's val accuracy before and after the whole set
    max_other_loss : float — the most val accuracy another class was allowed to lose (fraction)
    stored : bool — read from the study's ``ablation=class_knockout`` rows (else computed now)
    """

    target: Any
    units: list[Unit]
    knocked_out: bool
    accuracy_base: float
    accuracy: float
    max_other_loss: float
    stored: bool

    @property
    def message(self) -> str:
        """One line for the page: what the set does on val and where it came from."""
        source = "the study's class_knockout sweep" if self.stored else "computed now"
        if not self.units:
            return (f"class {self.target}: no unit lowers its val accuracy while every other class stays within "
                    f"{100 * self.max_other_loss:g} pp ({source}); allow the other classes more loss")
        reached = ("knocked out" if self.knocked_out else
                   f"not knocked out: no further unit kept the other classes within {100 * self.max_other_loss:g} pp")
        return (f"class {self.target}: {len(self.units)} unit{'s' * (len(self.units) != 1)} chosen greedily on val "
                f"take its val accuracy from {100 * self.accuracy_base:.1f} % to {100 * self.accuracy:.1f} % "
                f"({reached}; {source}). Ask to see test.")


class ModelView:
    """One trained network of the study: its sweep rows, weights, data and live answers.

    Parameters
    ----------
    explorer : Explorer — the study it belongs to
    key : ModelKey
    run : dict — its manifest entry
    """

    def __init__(self, explorer: Explorer, key: ModelKey, run: dict[str, Any]) -> None:
        self.explorer, self.key, self.run = explorer, key, run
        neurons = explorer.neurons
        self.rows = neurons[(neurons["dataset"] == key.dataset) & (neurons["model"] == key.model)
                            & (neurons["seed"] == key.seed)]
        self.net: Network | TorchNetwork = load_network(run)
        self.data: DatasetSplits = load_data(run)
        name = run["dataset_params"]["name"]
        shape = image_shape(name) if name in DATASETS else None
        self.shape = shape if shape and int(np.prod(shape)) == self.net.layer_sizes[0] else None
        self.splits = {"test": LiveSplit(self.net, "test", self.data.X_test, self.data.y_test)}
        if len(self.data.X_val):
            self.splits["val"] = LiveSplit(self.net, "val", self.data.X_val, self.data.y_val)
        self.test_activations = unit_outputs(self.net, self.data.X_test)
        self._values: dict[str, list[Any]] = {}

    @property
    def description(self) -> str:
        """The network's units in words: an MLP's hidden layers and activation, a torch
        network's unit sites (``act1 8 channels``, ``act3 32 features``)."""
        if not isinstance(self.net, TorchNetwork):
            return f"hidden layers {list(self.net.hidden_sizes)}, {self.net.activation}"
        maps = self.mean_maps
        sites = [f"{layer}: {site} {width} {'channels' if m.ndim == 3 else 'features'}"
                 for layer, (site, width, m) in enumerate(zip(self.net.sites, self.net.widths, maps))]
        return "unit sites (layer: module) " + ", ".join(sites)

    @functools.cached_property
    def mean_maps(self) -> list[np.ndarray]:
        """A torch network's mean unit outputs over the test images: per site an array of shape
        ``(width, *unit_shape)`` (``(width, H, W)``: a convolution channel's mean feature map)."""
        return [np.asarray(v) for v in unit_values(self.net, "mean", self.data.X_test)]

    def values(self, mode: str) -> list[Any]:
        """Replacement values of every hidden unit in ``mode`` (``sweep.kernels.unit_values``; a
        mode that needs reference inputs, such as ``mean``, takes them from val, else train:
        ``sweep.data.datasets.reference_inputs``)."""
        if mode not in NEURON_MODES:
            raise ExploreError(f"unknown mode {mode!r}; expected one of {', '.join(NEURON_MODES)}")
        if mode not in self._values:
            reference = (reference_inputs(self.data.X_train, self.data.X_val)
                         if NEURON_MODES[mode].needs_reference else None)
            self._values[mode] = unit_values(self.net, mode, reference)
        return self._values[mode]

    # ----------------------------------------------------------------------- overview

    def impact(self, mode: str) -> pd.DataFrame:
        """:func:`analysis.impact.impact_table` of this network in ``mode`` (every split)."""
        return impact_table(self.rows[self.rows["mode"] == mode])

    def effects(self, mode: str, split: str) -> pd.DataFrame:
        """Single-neuron rows of one mode and split (``layer, unit, effect, p_mcnemar, ...``)."""
        rows = self.rows[(self.rows["mode"] == mode) & (self.rows["split"] == split)]
        return rows.sort_values(["layer", "unit"]).reset_index(drop=True)

    def seed_shares(self, mode: str) -> pd.DataFrame:
        """:func:`analysis.stability.share_intervals` of this dataset and model's seeds in
        ``mode`` (empty with one seed)."""
        neurons = self.explorer.neurons
        same = neurons[(neurons["dataset"] == self.key.dataset) & (neurons["model"] == self.key.model)
                       & (neurons["mode"] == mode)]
        return share_intervals(impact_table(same))

    @functools.cached_property
    def statistics(self) -> pd.DataFrame:
        """Every unit's statistics (``sweep.kernels.unit_statistics``, as ``kind=unit``
        computes them) on val when there is one, else train; column ``split`` says which."""
        split = statistics_split({"val": len(self.data.X_val)})
        X, y = (self.data.X_val, self.data.y_val) if split == "val" else (self.data.X_train, self.data.y_train)
        return pd.DataFrame(unit_statistics(self.net, X, y)).assign(split=split)

    def unit_table(self, mode: str) -> pd.DataFrame:
        """One row per hidden unit: ``layer, unit``, the test effect (``effect_pp``) and its
        McNemar p-value, the val effect (``val_effect_pp``) when swept, and
        :data:`TABLE_STATISTICS`."""
        table = self.statistics[["layer", "unit", *TABLE_STATISTICS]].copy()
        table[list(TABLE_STATISTICS)] += 0.0  # no -0.000 in the table
        for split, prefix in (("test", ""), ("val", "val_")):
            rows = self.effects(mode, split)
            if len(rows):
                picked = rows[["layer", "unit", "effect", "p_mcnemar"]].rename(
                    columns={"effect": f"{prefix}effect_pp", "p_mcnemar": f"{prefix}p_mcnemar"})
                picked[f"{prefix}effect_pp"] *= 100
                table = table.merge(picked, on=["layer", "unit"], how="left")
        front = [c for c in ("layer", "unit", "effect_pp", "p_mcnemar", "val_effect_pp") if c in table]
        return table[front + list(TABLE_STATISTICS)]

    # ----------------------------------------------------------------------- one unit

    def profile(self, layer: int, unit: int, mode: str) -> UnitProfile:
        """:class:`UnitProfile` of one unit (test split)."""
        (layer, unit), = as_checked(self.net, [(layer, unit)])
        a = self.test_activations[layer][:, unit]
        y_index = self.splits["test"].y_index
        classes = self.net.classes
        n_classes = len(classes)
        counts = np.bincount(y_index, minlength=n_classes)
        class_activation = np.bincount(y_index, weights=a, minlength=n_classes) / np.maximum(counts, 1)
        fired = np.maximum(a - fire_thresholds(self.net)[layer], 0.0)
        one_hot = (y_index[:, None] == np.arange(n_classes)).astype(float) * fired[:, None]
        mass = one_hot.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            class_views = (one_hot.T @ self.data.X_test) / mass[:, None]
        top = np.argsort(-a, kind="stable")[:TOP_IMAGES]
        row = self.effects(mode, "test")
        row = row[(row["layer"] == layer) & (row["unit"] == unit)]
        class_effect = np.asarray(row["class_effect"].iloc[0], dtype=float) if len(row) else None
        removal = self.splits["test"].answer(np.array([[layer, unit]]), mode, self.values(mode))
        weights, weights_shape, drawn = unit_weights(self.net, layer, unit, self.shape)
        if weights_shape is not None and len(weights_shape) == 1:
            weights_shape = None  # a torch linear unit's incoming weights: a near-square grid
        feature_map = None
        if isinstance(self.net, TorchNetwork) and self.mean_maps[layer].ndim == 3:
            feature_map = self.mean_maps[layer][unit]
        return UnitProfile(layer, unit, weights, weights_shape, drawn, feature_map, classes, class_effect,
                           class_activation, top, a[top], class_views, removal, self.synapses(layer, unit),
                           self.partners(layer, unit, mode))

    def synapses(self, layer: int, unit: int) -> np.ndarray | None:
        """Test effect of each synapse into ``unit`` of hidden ``layer`` (fractions, 0 where not
        swept), from the study's synapse sweep; None without one."""
        if not self.explorer.has_synapses:
            return None
        rows = load(self.explorer.results, self.explorer.study, "synapse", filters=[
            ("dataset", "=", self.key.dataset), ("model", "=", self.key.model),
            ("seed", "=", self.key.seed), ("split", "=", "test"), ("layer", "=", layer),
            ("target", "=", unit)])
        if rows.empty:
            return None
        values = np.zeros(self.net.coefs[layer].shape[0])
        values[rows["source"].to_numpy()] = rows["effect"].to_numpy()
        return values

    def partners(self, layer: int, unit: int, mode: str) -> pd.DataFrame | None:
        """The unit's :data:`PARTNERS` strongest partners in the pair sweep on test (by
        ``|interaction|``; fractions); None without a pair sweep of this unit."""
        if not self.explorer.has_pairs:
            return None
        keys = [("dataset", "=", self.key.dataset), ("model", "=", self.key.model), ("seed", "=", self.key.seed),
                ("split", "=", "test"), ("mode", "=", mode)]
        found = [load(self.explorer.results, self.explorer.study, "pair", filters=[
                     *keys, (f"layer_{side}", "=", layer), (f"unit_{side}", "=", unit)])
                 for side in ("a", "b")]
        other = {"a": "b", "b": "a"}
        rows = pd.concat([
            f.rename(columns={f"layer_{other[side]}": "partner_layer", f"unit_{other[side]}": "partner_unit"})
            for side, f in zip(("a", "b"), found)], ignore_index=True)
        if rows.empty:
            return None
        rows = rows.assign(strength=rows["interaction"].abs()).sort_values(
            ["strength", "partner_layer", "partner_unit"], ascending=[False, True, True], kind="stable")
        table = rows.head(PARTNERS)[["partner_layer", "partner_unit", "effect", "interaction", "p_mcnemar"]]
        return table.rename(columns={"partner_layer": "layer", "partner_unit": "unit", "effect": "effect_pair"}
                            ).reset_index(drop=True)

    # ----------------------------------------------------------------------- questions

    def choose(self, rule: str, mode: str, k: int | None = None) -> list[Unit]:
        """Units chosen on the val sweep (selection hygiene: never on test).

        Parameters
        ----------
        rule : ``"harmful"`` (effect > 0 on val) or ``"top"`` (the ``k`` largest val effects)
        k : int — for ``"top"``

        Raises
        ------
        ExploreError
            Without a val sweep in ``mode``, or on a ``k`` that is not a positive integer.
        """
        val = self.effects(mode, "val")
        if val.empty:
            raise ExploreError(f"this network has no val sweep in mode {mode}: units are chosen "
                               "on val (rerun the sweep with dataset.val_fraction=0.1), or type them")
        if rule == "harmful":
            chosen = val[val["effect"] > 0]
        else:
            if k is None or not 1 <= k <= len(val):
                raise ExploreError(f"k must be a whole number from 1 to {len(val)}")
            chosen = val.sort_values(["effect", "layer", "unit"], ascending=[False, True, True]).head(k)
        if chosen.empty:
            raise ExploreError(f"no unit is harmful on val in mode {mode}")
        return sorted((int(l), int(u)) for l, u in zip(chosen["layer"], chosen["unit"]))

    def knockout(self, target: int, mode: str, max_other_loss: float = 0.01) -> KnockoutSet:
        """The network-wide knockout set of class index ``target`` in ``mode``: the study's
        stored ``class_knockout`` search when it has one made with the same ``max_other_loss``
        (and chance 1 / classes), else computed now on val by the kernel.

        Parameters
        ----------
        target : int — index into the network's classes
        mode : str — a key of ``NEURON_MODES``
        max_other_loss : float — the most val accuracy any other class may lose (fraction)

        Raises
        ------
        ExploreError
            On a torch network, without a val split, on a class index outside the network's
            classes, or on a ``max_other_loss`` outside [0, 1].
        """
        if isinstance(self.net, TorchNetwork):
            raise ExploreError("class knockout runs on scikit-learn networks only: a torch network has no "
                               "pruned running pass yet (as ablation=class_knockout refuses torch models)")
        if "val" not in self.splits:
            raise ExploreError("class knockout chooses units on val: this network has no val split "
                               "(rerun the sweep with dataset.val_fraction=0.1)")
        classes = self.net.classes
        if not 0 <= target < len(classes):
            raise ExploreError(f"class index {target} is outside 0..{len(classes) - 1}")
        if not 0 <= max_other_loss <= 1:
            raise ExploreError(f"the other classes' largest loss must be 0-100 pp, not {100 * max_other_loss:g}")
        stored = self.explorer.knockout_rows(max_other_loss)
        key = dict(zip(KNOCKOUT_KEYS, (self.key.dataset, self.key.model, self.key.seed, mode, "network", target)))
        if not stored.empty:
            stored = stored[np.logical_and.reduce([stored[k] == v for k, v in key.items()])]
        if not stored.empty:
            found = knockout_sets(stored, split="val").iloc[0]
            units = [tuple(int(i) for i in unit.split(":")) for unit in found["units"].split()]
            return KnockoutSet(classes[target], units, bool(found["knocked_out"]), float(found["target_accuracy_base"]),
                               float(found["target_accuracy"]), max_other_loss, stored=True)
        val = self.splits["val"]
        path = class_knockout(self.net, {"val": (val.X, val.y)}, target, self.values(mode), mode=mode,
                              max_other_loss=max_other_loss)
        chosen = path["step"] > 0
        return KnockoutSet(classes[target], list(zip(path["layer"][chosen].tolist(), path["unit"][chosen].tolist())),
                           bool(path["knocked_out"][0]), float(path["target_accuracy"][0]),
                           float(path["target_accuracy"][-1]), max_other_loss, stored=False)

    def ask(self, units: list[Unit], mode: str) -> list[SplitAnswer]:
        """Ablate ``units`` together in ``mode``; one answer per split (val first, if any)."""
        values = self.values(mode)
        checked = as_checked(self.net, units)
        return [self.splits[s].answer(checked, mode, values) for s in ("val", "test") if s in self.splits]


def as_checked(net: Network | TorchNetwork, units: list[Unit]) -> np.ndarray:
    """``units`` as an int64 array of shape (k, 2), at least one, every one in the network.

    Raises
    ------
    ExploreError
        With the kernel's message (``sweep.kernels.as_units``) or for an empty set.
    """
    if not len(units):
        raise ExploreError("choose at least one unit, e.g. 0:3, 0:17 or a range 1:0-9")
    try:
        return as_units(units, net)
    except ValueError as error:
        raise ExploreError(str(error)) from error


class Explorer:
    """One study of a results root, opened for exploring.

    Parameters
    ----------
    results : path or URI of the results root (the only place read from, besides the
        dataset files the manifest names)
    study : str, optional — see :func:`analysis.load.resolve_study`

    Raises
    ------
    AnalysisError
        If the study is missing, has a broken part, no neuron sweep, or no network whose
        model artifact lies inside ``results``.
    """

    def __init__(self, results: str | os.PathLike[str], study: str | None = None) -> None:
        self.results = os.fspath(results)
        self.study = resolve_study(self.results, study)
        check_parts(self.results, self.study)
        if not has_kind(self.results, self.study, "neuron"):
            raise AnalysisError(f"study {self.study!r} has no neuron sweep to explore "
                                "(run python -m sweep first)")
        self.neurons = load(self.results, self.study, "neuron")
        self.has_synapses = has_kind(self.results, self.study, "synapse")
        self.has_pairs = has_kind(self.results, self.study, "pair")
        runs = {ModelKey(r["dataset"], r["model"], int(r["seed"])): r
                for r in load_manifest(self.results, self.study).get("runs", [])}
        swept = {ModelKey(d, m, int(s)) for d, m, s in
                 self.neurons[["dataset", "model", "seed"]].drop_duplicates().itertuples(index=False)}
        self.runs = {k: runs[k] for k in sorted(swept & runs.keys(), key=lambda k: k.value)
                     if runs[k].get("model_path") and inside(self.results, runs[k]["model_path"])}
        if not self.runs:
            raise AnalysisError(f"no network of study {self.study!r} has its model inside "
                                f"{self.results!r}")
        self._views: dict[ModelKey, ModelView] = {}
        self._knockout: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def knockout_rows(self, max_other_loss: float) -> pd.DataFrame:
        """The study's ``class_knockout`` rows when its sweep used ``max_other_loss`` and the
        default chance (else empty: those sets answer another question), read on first use."""
        settings = load_manifest(self.results, self.study).get("configs", {}).get("class_knockout", {}).get(
            "ablation", {})
        if settings.get("max_other_loss") != max_other_loss or settings.get("chance") is not None:
            return pd.DataFrame()
        if self._knockout is None:
            self._knockout = load(self.results, self.study, "knockout")
        return self._knockout

    @property
    def keys(self) -> list[ModelKey]:
        """The networks that can be explored, sorted."""
        return list(self.runs)

    def view(self, key: ModelKey) -> ModelView:
        """The :class:`ModelView` of one network (loaded once, shared by every page)."""
        if key not in self.runs:
            raise ExploreError(f"no network {key.label} in study {self.study!r}")
        with self._lock:
            if key not in self._views:
                self._views[key] = ModelView(self, key, self.runs[key])
            return self._views[key]

"""``kind=pruning``: hidden units removed one at a time, chosen on val, measured on val and test
after every step (``ablation=pruning``); one shard per mode, scope, method (and repetition of
``random``), each a whole path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from sweep.kernels import (
    PRUNING_COLUMNS,
    PRUNING_METHODS,
    pruning_path,
    removal_limit,
    scope_units,
)
from sweep.kernels.pruning import SELECTION_SPLIT
from sweep.kinds.base import (
    NEEDS_VAL,
    RESAMPLE_SETTINGS,
    Ablation,
    AblationSettings,
    Columns,
    DataArrays,
    ModelInputs,
    ModeSettings,
    Plan,
    PlanInputs,
    ResultKind,
    replacements,
)
from sweep.kinds.neuron import neuron_cost
from sweep.results.shards import Shard
from sweep.results.store import ResultStore

if TYPE_CHECKING:
    from sweep.spec import RunSpec

PATH_SPLITS: tuple[str, ...] = (SELECTION_SPLIT, "test")
"""The splits every step is measured on: val (where the path is chosen) and test."""

WITHIN_PP: tuple[float, ...] = (0.1, 0.5, 1.0)
"""Test-accuracy losses (percentage points) the removable fractions are reported at."""


@dataclass(frozen=True)
class PruningSettings(ModeSettings, AblationSettings):
    """``ablation=pruning``: ``modes`` (as for neurons), ``methods`` (greedy, single_shot,
    magnitude, activation, random), ``scopes`` (network or layer<i>), ``max_removed`` (null:
    every unit of the scope; below 1: a fraction; from 1: a count), ``tolerance`` (stop once
    val accuracy is more than this below the unpruned net's, e.g. 0.01; null: no such stop),
    ``repetitions`` of the random order. Every choice is made on the val split; both val and
    test are recorded after every step (``splits`` does not apply)."""

    kind: str = "pruning"
    methods: list[str] = field(
        default_factory=lambda: list(PRUNING_METHODS), metadata={"choices": PRUNING_METHODS}
    )
    scopes: list[str] = field(default_factory=lambda: ["network"])
    max_removed: Optional[float] = field(default=None, metadata={"interval": (0.0, None, False)})
    tolerance: Optional[float] = field(default=None, metadata={"interval": (0.0, 1.0, True, True)})
    repetitions: int = field(default=5, metadata={"interval": (1, None, True)})

    def check(self, hidden_sizes: tuple[int, ...], has_val: bool) -> None:
        if not has_val:
            raise ValueError(f"ablation=pruning chooses every unit on the validation split, but {NEEDS_VAL}")
        if self.splits is not None:
            raise ValueError(
                "ablation.splits does not apply to ablation=pruning (chosen on val, recorded on val and test); "
                "leave it null"
            )
        scopes = all_scopes(hidden_sizes)
        for scope in self.scopes:
            if scope not in scopes:
                raise ValueError(f"ablation.scopes has {scope!r}; choose from {', '.join(scopes)}")
        removal_limit(self.max_removed, sum(hidden_sizes))


def all_scopes(hidden_sizes: tuple[int, ...]) -> list[str]:
    """``network`` and ``layer<i>`` for each hidden layer: the scopes a path (or a knockout
    search) may remove units from."""
    return ["network", *(f"layer{i}" for i in range(len(hidden_sizes)))]


def _selection(scope: str, method: str, repetition: int | None) -> str:
    """``<scope>.<method>`` (``.<repetition>`` for random): a shard's ``selection``."""
    return f"{scope}.{method}" + ("" if repetition is None else f".{repetition}")


def plan(cfg: RunSpec, model: PlanInputs, store: ResultStore) -> Plan:
    settings = cfg.ablation
    shape = model.shape
    shards = []
    for mode in settings.modes:
        for scope in settings.scopes:
            units = scope_units(model.net, scope)
            limit = removal_limit(settings.max_removed, len(units))
            rows = len(PATH_SPLITS) * (limit + 1)
            step = neuron_cost(shape, int(units[:, 0].min()), sum(model.sizes[s] for s in PATH_SPLITS))
            for method in settings.methods:
                repetitions = range(settings.repetitions) if method == "random" else [None]
                cost = step * limit * (len(units) if method == "greedy" else 1)
                shards += [
                    Shard(model.run, "pruning", mode, SELECTION_SPLIT, -1, 0, rows, _selection(scope, method, rep),
                          cost=cost, cut_short=settings.tolerance is not None)
                    for rep in repetitions
                ]
    return Plan(shards, ModelInputs(model.net, settings))


def compute(shard: Shard, model: ModelInputs, data: DataArrays) -> Columns:
    """One pruning path; ``shard.selection`` is ``<scope>.<method>[.<repetition>]``."""
    scope, method, *repetition = shard.selection.split(".")
    settings = model.settings
    return pruning_path(
        model.net, {split: data.splits[split] for split in PATH_SPLITS}, method,
        replacements(model, data, shard.mode), mode=shard.mode, scope=scope,
        max_removed=settings.max_removed, tolerance=settings.tolerance, seed=shard.run.seed,
        repetition=int(repetition[0]) if repetition else 0, draws=settings.resample_draws,
        resample_seed=settings.seed_for(shard.run.seed),
    )


PATH_KEYS: list[str] = ["dataset", "model", "seed", "mode", "scope", "method", "repetition"]
"""Columns identifying one pruning path."""


def removable_fractions(
    df: pd.DataFrame, within_pp: tuple[float, ...] = WITHIN_PP, split: str = "test"
) -> pd.DataFrame:
    """Per path, the largest fraction removed before ``split`` accuracy first falls more than
    ``w`` percentage points below the unpruned network's, for each ``w`` of ``within_pp``.

    Parameters
    ----------
    df : DataFrame — pruning rows (:data:`PATH_KEYS` present, ``split, step, fraction,
        accuracy, effect``)

    Returns
    -------
    DataFrame
        The path keys present, ``steps`` (the path's last step), ``fraction_<w>pp`` for each
        ``w``, and ``max_gain`` (the largest ``effect`` along the path, >= 0).
    """
    keys = [k for k in PATH_KEYS if k in df.columns]
    rows = df[df["split"] == split].sort_values([*keys, "step"])

    def summarise(path: pd.DataFrame) -> pd.Series:
        effect = path["effect"].to_numpy()
        fraction = path["fraction"].to_numpy()
        out = {"steps": int(path["step"].max())}
        for w in within_pp:
            beyond = np.flatnonzero(effect < -w / 100 - 1e-12)
            out[f"fraction_{w:g}pp"] = float(fraction[beyond[0] - 1] if len(beyond) else fraction[-1])
        out["max_gain"] = float(effect.max())
        return pd.Series(out)

    table = rows.groupby(keys, sort=True, observed=True)[["step", "fraction", "effect"]].apply(summarise)
    return table.reset_index().astype({"steps": "int64"})


def path_summary(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`removable_fractions` on test, averaged over the repetitions of each method, in
    the console's units: ``removed_%_within_<w>pp`` (% of the units) and ``max_gain_pp``."""
    if df.empty:
        return pd.DataFrame()
    table = removable_fractions(df)
    keys = [k for k in PATH_KEYS if k in table.columns and k != "repetition"]
    mean = table.drop(columns="repetition").groupby(keys, sort=True, observed=True).mean().reset_index()
    percent = {f"fraction_{w:g}pp": f"removed_%_within_{w:g}pp" for w in WITHIN_PP}
    mean[[*percent, "max_gain"]] = (mean[[*percent, "max_gain"]] * 100).round(2)
    return mean.rename(columns={**percent, "max_gain": "max_gain_pp"})


KIND = ResultKind(
    name="pruning",
    columns={"mode": "str", **PRUNING_COLUMNS},
    constants=("mode",),
    settings=("tolerance",),
    added_settings=RESAMPLE_SETTINGS,
    plan=plan,
    compute=compute,
    summary=path_summary,
    summary_title="pruning paths chosen on val: the % of units removed before test accuracy fell more than "
    "0.1 / 0.5 / 1 pp below the unpruned net, and the largest test gain in pp (mean over random repetitions):",
)

ABLATION = Ablation(
    "pruning", PruningSettings, (KIND,),
    "units pruned one at a time, chosen on val (greedy, single-shot, magnitude, activation, random), "
    "measured on val and test",
)

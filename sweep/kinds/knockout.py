"""``kind=knockout``: for each class, the smallest set of hidden units (greedy, chosen on val)
whose joint removal brings that class to chance while every other class loses at most
``max_other_loss`` (``ablation=class_knockout``); val and test recorded after every step. One
shard per mode, scope and class, each a whole search (:mod:`sweep.kernels.knockout`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import pandas as pd

from sweep.kernels import removal_limit, scope_units
from sweep.kernels.knockout import KNOCKOUT_COLUMNS, class_knockout
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
from sweep.kinds.pruning import PATH_SPLITS, all_scopes
from sweep.results.shards import Shard
from sweep.results.store import ResultStore

if TYPE_CHECKING:
    from sweep.spec import RunSpec

"""The splits every step is measured on: val (where the set is chosen) and test."""


@dataclass(frozen=True)
class KnockoutSettings(ModeSettings, AblationSettings):
    """``ablation=class_knockout``: ``modes`` (as for neurons), ``scopes`` (null: the whole
    network and each hidden layer; or a list of ``network`` / ``layer<i>``), ``classes``
    (class indices to knock out; null: every class), ``max_units`` (the most units a set may
    hold: null every unit of the scope, below 1 a fraction, from 1 a count),
    ``max_other_loss`` (the most val accuracy any other class may lose, a fraction: 0.01 is
    1 pp), ``chance`` (the target's val accuracy that counts as knocked out; null: 1 / classes).
    Chosen on val; val and test are recorded after every step (``splits`` does not apply)."""

    kind: str = "class_knockout"
    scopes: Optional[list[str]] = None
    classes: Optional[list[int]] = None
    max_units: Optional[float] = field(default=None, metadata={"interval": (0.0, None, False)})
    max_other_loss: float = field(default=0.01, metadata={"interval": (0.0, 1.0, True, True)})
    chance: Optional[float] = field(default=None, metadata={"interval": (0.0, 1.0, True, True)})

    def check(self, hidden_sizes: tuple[int, ...], has_val: bool) -> None:
        if not has_val:
            raise ValueError(f"ablation=class_knockout chooses every unit on the validation split, but {NEEDS_VAL}")
        if self.splits is not None:
            raise ValueError(
                "ablation.splits does not apply to ablation=class_knockout (chosen on val, recorded on val and "
                "test); leave it null"
            )
        valid = all_scopes(hidden_sizes)
        for scope in self.scopes or []:
            if scope not in valid:
                raise ValueError(f"ablation.scopes has {scope!r}; choose from {', '.join(valid)}")
        removal_limit(self.max_units, sum(hidden_sizes))


def plan(cfg: RunSpec, model: PlanInputs, store: ResultStore) -> Plan:
    settings = cfg.ablation
    n_classes = len(model.net.classes)
    classes = list(range(n_classes)) if settings.classes is None else settings.classes
    for target in classes:
        if not 0 <= target < n_classes:
            raise ValueError(f"ablation.classes has {target}; the model has {n_classes} classes: 0..{n_classes - 1}")
    shards = []
    rows_measured = sum(model.sizes[s] for s in PATH_SPLITS)
    for mode in settings.modes:
        for scope in settings.scopes or all_scopes(model.net.hidden_sizes):
            units = scope_units(model.net, scope)
            limit = removal_limit(settings.max_units, len(units))
            step = neuron_cost(model.shape, int(units[:, 0].min()), rows_measured) * len(units)
            shards += [
                Shard(model.run, "knockout", mode, SELECTION_SPLIT, -1, 0, len(PATH_SPLITS) * (limit + 1),
                      f"{scope}.{target}", cost=step * min(limit, 32), cut_short=True)
                for target in classes
            ]
    return Plan(shards, ModelInputs(model.net, settings))


def compute(shard: Shard, model: ModelInputs, data: DataArrays) -> Columns:
    """One class's knockout search; ``shard.selection`` is ``<scope>.<class index>``."""
    scope, target = shard.selection.split(".")
    settings = model.settings
    return class_knockout(
        model.net, {split: data.splits[split] for split in PATH_SPLITS}, int(target),
        replacements(model, data, shard.mode), mode=shard.mode, scope=scope, max_units=settings.max_units,
        max_other_loss=settings.max_other_loss, chance=settings.chance, draws=settings.resample_draws,
        resample_seed=settings.seed_for(shard.run.seed),
    )


KNOCKOUT_KEYS: list[str] = ["dataset", "model", "seed", "mode", "scope", "target"]
"""Columns identifying one knockout search."""


def knockout_sets(df: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per search: the set found on val and what it does on ``split``.

    Parameters
    ----------
    df : DataFrame — knockout rows (:data:`KNOCKOUT_KEYS` present, ``split, step, layer, unit,
        knocked_out, target_accuracy, other_max_loss, broken``)

    Returns
    -------
    DataFrame
        The search keys present, ``set_size`` (units removed), ``knocked_out`` (reached chance
        on val), ``units`` (``"l:u"`` of the set, in order), and on ``split``:
        ``target_accuracy_base``, ``target_accuracy`` (after the whole set), ``other_max_loss``
        and ``broken`` (images the set turns wrong, all classes).
    """
    keys = [k for k in KNOCKOUT_KEYS if k in df.columns]
    rows = df[df["split"] == split].sort_values([*keys, "step"])

    def summarise(search: pd.DataFrame) -> pd.Series:
        last = search.iloc[-1]
        removed = search[search["step"] > 0]
        return pd.Series({
            "set_size": int(last["step"]), "knocked_out": bool(last["knocked_out"]),
            "units": " ".join(f"{int(l)}:{int(u)}" for l, u in zip(removed["layer"], removed["unit"])),
            "target_accuracy_base": float(search.iloc[0]["target_accuracy"]),
            "target_accuracy": float(last["target_accuracy"]), "other_max_loss": float(last["other_max_loss"]),
            "broken": int(last["broken"]),
        })

    columns = ["step", "layer", "unit", "knocked_out", "target_accuracy", "other_max_loss", "broken"]
    table = rows.groupby(keys, sort=True, observed=True)[columns].apply(summarise)
    return table.reset_index()


def knockout_summary(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`knockout_sets` on test without the unit lists."""
    return pd.DataFrame() if df.empty else knockout_sets(df).drop(columns="units")


KIND = ResultKind(
    name="knockout",
    columns={"mode": "str", **KNOCKOUT_COLUMNS},
    constants=("mode",),
    settings=("max_units", "max_other_loss", "chance"),
    added_settings=RESAMPLE_SETTINGS,
    plan=plan,
    compute=compute,
    summary=knockout_summary,
    summary_title="class knockout sets chosen on val (smallest greedy set bringing one class to chance, every "
    "other class within max_other_loss): set size, reached chance on val, and on test the class's accuracy "
    "before / after, the largest other-class loss and the images broken:",
)

ABLATION = Ablation(
    "class_knockout", KnockoutSettings, (KIND,),
    "per class, the smallest unit set (greedy on val) whose removal brings that class to chance while the "
    "others lose at most max_other_loss; measured on val and test",
)

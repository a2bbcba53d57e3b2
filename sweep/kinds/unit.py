"""``kind=unit``: per-unit statistics of every hidden unit (activation, selectivity, entropy,
mutual information, KL-selectivity) with its zero-mode effect on val; written as the first
phase of ``ablation=cumulative`` (statistic orders read it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sweep.kernels import UNIT_COLUMNS, unit_statistics
from sweep.kinds.base import Columns, DataArrays, ModelInputs, Plan, PlanInputs, ResultKind
from sweep.results.shards import Shard
from sweep.results.store import ResultStore

if TYPE_CHECKING:
    from sweep.spec import RunSpec


def statistics_split(sizes: dict[str, int]) -> str:
    """Unit statistics (which order cumulative ablation) come from val when it exists, else train."""
    return "val" if sizes["val"] else "train"


def plan(cfg: RunSpec, model: PlanInputs, store: ResultStore) -> Plan:
    settings = cfg.ablation
    tag = f"{settings.quantizer}{settings.n_bins}"
    shard = Shard(model.run, "unit", "stats", statistics_split(model.sizes), -1, 0, sum(model.net.hidden_sizes), tag)
    zero = store.read_model_rows("neuron", model.run, model.weights)
    zero = zero[(zero["mode"] == "zero") & (zero["split"] == "val")]
    written = store.read_model_rows("unit", model.run, model.weights)
    stale = (shard,) if len(zero) and len(written) and written["effect"].isna().all() else ()
    # stale: written before the neuron sweep existed; recomputed to add its effects
    return Plan([shard], ModelInputs(model.net, settings, effects={"zero": zero} if len(zero) else {}), stale)


def compute(shard: Shard, model: ModelInputs, data: DataArrays) -> Columns:
    """Every hidden unit's statistics on the shard's split, and its zero-mode single-ablation
    effect on val where that neuron sweep exists (else NaN). A unit "fires" when its output
    exceeds ``act(0)`` (0 for ReLU and tanh, 0.5 for logistic)."""
    X, y = data.splits[shard.split]
    settings = model.settings
    columns = unit_statistics(model.net, X, y, quantizer=settings.quantizer, n_bins=settings.n_bins)
    effects = model.effects.get("zero")
    by_unit = {} if effects is None else dict(zip(zip(effects["layer"], effects["unit"]), effects["effect"]))
    columns["effect"] = np.array([by_unit.get(key, np.nan) for key in zip(columns["layer"], columns["unit"])])
    return columns


KIND = ResultKind(
    name="unit",
    columns={"split": "str", **UNIT_COLUMNS, "effect": "float64"},
    constants=("split",),
    settings=("quantizer", "n_bins"),
    plan=plan,
    compute=compute,
)

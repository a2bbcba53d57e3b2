"""Typed configuration: the Hydra schema, its validation, and the plain objects sent to workers.

Hydra stops here: :func:`to_run_config` turns the composed ``DictConfig`` into the plain
dataclasses below (no OmegaConf past this point) and checks every value against the
lookup tables of allowed values, raising :class:`ConfigError` with one line that names the
key, what was given and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sweep import storage
from sweep.cumulative import ORDER_KEYS


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and the allowed values."""


@dataclass
class ModelConfig:
    """``MLPClassifier`` hyper-parameters; ``random_state`` is the seed of each run."""

    name: str = MISSING
    hidden_layer_sizes: list[int] = MISSING
    activation: str = "relu"
    solver: str = "adam"
    alpha: float = 0.0001
    batch_size: Any = "auto"
    learning_rate: str = "constant"
    learning_rate_init: float = 0.001
    power_t: float = 0.5
    max_iter: int = 200
    shuffle: bool = True
    tol: float = 1e-4
    verbose: bool = False
    warm_start: bool = False
    momentum: float = 0.9
    nesterovs_momentum: bool = True
    early_stopping: bool = False
    validation_fraction: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    n_iter_no_change: int = 10
    max_fun: int = 15000

    def classifier_params(self) -> dict[str, Any]:
        """Keyword arguments of ``MLPClassifier`` (all fields but ``name``)."""
        params = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}
        params["hidden_layer_sizes"] = tuple(self.hidden_layer_sizes)
        return params


@dataclass
class DatasetConfig:
    """Arguments of :func:`sweep.datasets.load_dataset` (``name`` is the dataset)."""

    name: str = MISSING
    data_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    split: str = "holdout"
    test_fraction: float = 0.1
    split_seed: int = 0
    val_fraction: float = 0.0
    scale: str = "unit"
    label_noise: float = 0.0
    label_noise_seed: int = 0
    mirrors: Optional[list[str]] = None

    @property
    def tag(self) -> str:
        """The ``dataset=`` partition value: the name, plus the label-noise level if any."""
        return self.name if self.label_noise == 0 else f"{self.name}-noise{self.label_noise:g}"

    def loader_params(self) -> dict[str, Any]:
        """Keyword arguments of ``load_dataset`` including ``name``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def content_params(self) -> dict[str, Any]:
        """The settings that decide the arrays, without those that say where files are."""
        return {k: v for k, v in self.loader_params().items() if k not in LOCATION_KEYS}


LOCATION_KEYS = ("data_dir", "cache_dir", "mirrors")
"""Dataset settings that say where data is, not what it is."""


@dataclass
class AblationConfig:
    """What to ablate and how to measure it."""

    kind: str = "neurons"
    metrics: str = "full"
    modes: list[str] = field(default_factory=lambda: ["zero"])
    splits: Optional[list[str]] = None
    layers: Optional[list[int]] = None
    top_harmful: Optional[int] = None
    direction: str = "both"
    orders: list[str] = field(default_factory=lambda: ["random"])
    scopes: list[str] = field(default_factory=lambda: ["network"])
    repetitions: int = 5
    k_points: int = 0
    quantizer: str = "binary"
    n_bins: int = 2
    shard_cost: float = 2e9


@dataclass
class RayConfig:
    """Where and how Ray runs. ``address: null`` starts a local Ray."""

    address: Optional[str] = None
    num_cpus: Optional[int] = None
    num_gpus: Optional[float] = None
    num_gpus_per_worker: float = 0.0
    threads_per_worker: int = 1
    max_in_flight: int = 0
    max_retries: int = 3
    include_dashboard: bool = False


@dataclass
class PathsConfig:
    """``results``: a local folder or a pyarrow filesystem URI (``s3://bucket/x``);
    ``models``: where trained models are cached (default ``<results>/models``)."""

    results: str = "results"
    models: Optional[str] = None


@dataclass
class RunConfig:
    """The whole run: every config group plus the seeds and the study name."""

    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    ablation: AblationConfig = MISSING
    ray: RayConfig = MISSING
    paths: PathsConfig = MISSING
    seeds: list[int] = field(default_factory=lambda: [0])
    study: str = "default"
    progress: bool = True


ALLOWED: dict[str, tuple[str, ...]] = {
    "model.activation": ("identity", "logistic", "tanh", "relu"),
    "model.solver": ("lbfgs", "sgd", "adam"),
    "model.learning_rate": ("constant", "invscaling", "adaptive"),
    "dataset.name": ("digits", "mnist", "svhn"),
    "dataset.split": ("holdout", "official"),
    "dataset.scale": ("unit", "none", "standard"),
    "ablation.kind": ("neurons", "synapses", "cumulative"),
    "ablation.metrics": ("full", "accuracy"),
    "ablation.modes": ("zero", "remove", "mean"),
    "ablation.splits": ("test", "val", "train"),
    "ablation.direction": ("incoming", "outgoing", "both"),
    "ablation.quantizer": ("binary", "quantile", "uniform"),
    "ablation.orders": tuple(ORDER_KEYS),
}
"""Allowed values of the string settings (list settings: of each element)."""

FRACTIONS: dict[str, tuple[float, float, bool]] = {
    "dataset.test_fraction": (0.0, 1.0, False),
    "dataset.val_fraction": (0.0, 1.0, True),
    "dataset.label_noise": (0.0, 1.0, True),
    "model.validation_fraction": (0.0, 1.0, False),
}
"""Numeric settings in an interval: (low, high, low included); high is excluded except
for ``label_noise``, which may be 1."""


def register_schema() -> None:
    """Register :class:`RunConfig` in Hydra's ConfigStore as ``run_schema``."""
    ConfigStore.instance().store(name="run_schema", node=RunConfig)


def _lookup(cfg: RunConfig, key: str) -> Any:
    group, name = key.split(".")
    return getattr(getattr(cfg, group), name)


def _check_allowed(cfg: RunConfig) -> None:
    for key, allowed in ALLOWED.items():
        value = _lookup(cfg, key)
        for item in value if isinstance(value, list) else [] if value is None else [value]:
            if item not in allowed:
                raise ConfigError(f"{key}={item!r} is not allowed; choose one of {', '.join(allowed)}")


def _check_fractions(cfg: RunConfig) -> None:
    for key, (low, high, low_ok) in FRACTIONS.items():
        value = _lookup(cfg, key)
        above = value >= low if low_ok else value > low
        below = value <= high if key == "dataset.label_noise" else value < high
        if not (above and below and math.isfinite(value)):
            raise ConfigError(f"{key}={value} is out of range; expected a number in ({low}, {high})")


def _check_counts(cfg: RunConfig) -> None:
    sizes = cfg.model.hidden_layer_sizes
    if not sizes or any(s < 1 for s in sizes):
        raise ConfigError(
            f"model.hidden_layer_sizes={list(sizes)} is invalid; expected a non-empty list of "
            "positive integers, e.g. [392, 196]"
        )
    if not cfg.seeds or any(s < 0 for s in cfg.seeds) or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds={cfg.seeds} is invalid; expected distinct non-negative integers, e.g. [0,1,2]")
    if cfg.model.max_iter < 1:
        raise ConfigError(f"model.max_iter={cfg.model.max_iter} is invalid; expected a positive integer")
    batch = cfg.model.batch_size
    if not (batch == "auto" or (isinstance(batch, int) and batch > 0)):
        raise ConfigError(f"model.batch_size={batch!r} is invalid; expected 'auto' or a positive integer")
    if cfg.ablation.repetitions < 1:
        raise ConfigError(f"ablation.repetitions={cfg.ablation.repetitions} is invalid; expected >= 1")
    if cfg.ablation.k_points < 0 or cfg.ablation.n_bins < 2:
        raise ConfigError("ablation.k_points must be >= 0 (0: every k) and ablation.n_bins >= 2")
    if cfg.ablation.top_harmful is not None and cfg.ablation.top_harmful < 1:
        raise ConfigError(f"ablation.top_harmful={cfg.ablation.top_harmful} is invalid; expected null or >= 1")
    if "val" in (cfg.ablation.splits or []) and cfg.dataset.val_fraction == 0:
        raise ConfigError(
            "ablation.splits includes 'val' but dataset.val_fraction=0; set dataset.val_fraction=0.1"
        )
    if cfg.ray.num_gpus_per_worker < 0 or cfg.ray.threads_per_worker < 1:
        raise ConfigError("ray.num_gpus_per_worker must be >= 0 and ray.threads_per_worker >= 1")
    if not cfg.study or "/" in cfg.study or cfg.study.startswith("."):
        raise ConfigError(f"study={cfg.study!r} is invalid; expected a plain folder name such as 'paper'")


def _check_layers(cfg: RunConfig) -> None:
    """Layers and scopes must exist in the model; synapses have one mode, ``zero``."""
    n_hidden = len(cfg.model.hidden_layer_sizes)
    n_layers = {"neurons": n_hidden, "synapses": n_hidden + 1, "cumulative": n_hidden}[cfg.ablation.kind]
    what = "weight matrices" if cfg.ablation.kind == "synapses" else "hidden layers"
    for layer in cfg.ablation.layers or []:
        if not 0 <= layer < n_layers:
            raise ConfigError(f"ablation.layers has {layer}; the model has {n_layers} {what}: 0..{n_layers - 1}")
    scopes = ["network", *(f"layer{i}" for i in range(n_hidden))]
    for scope in cfg.ablation.scopes:
        if scope not in scopes:
            raise ConfigError(f"ablation.scopes has {scope!r}; choose from {', '.join(scopes)}")
    if cfg.ablation.kind == "synapses" and cfg.ablation.modes != ["zero"]:
        raise ConfigError("ablation.modes must be [zero] for synapses (a synapse is removed by zeroing its weight)")


def validate(cfg: RunConfig) -> RunConfig:
    """Check every value of a run configuration; return it unchanged or raise ConfigError."""
    _check_allowed(cfg)
    _check_fractions(cfg)
    _check_counts(cfg)
    _check_layers(cfg)
    return cfg


def _absolute(location: str | None) -> str | None:
    """A local path made absolute (relative to where the sweep is started); URIs and None as they are."""
    return None if location is None else storage.absolute(location)


def resolve_paths(cfg: RunConfig) -> RunConfig:
    """The same config with every local path absolute, so that the manifest, the Ray workers
    and ``analysis`` find the files whatever their working directory."""
    return replace(
        cfg,
        dataset=replace(cfg.dataset, data_dir=_absolute(cfg.dataset.data_dir), cache_dir=_absolute(cfg.dataset.cache_dir)),
        paths=replace(cfg.paths, results=_absolute(cfg.paths.results), models=_absolute(cfg.paths.models)),
    )


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Resolve a composed Hydra config into a validated :class:`RunConfig` of plain objects
    with absolute local paths."""
    run = OmegaConf.to_object(cfg)
    if not isinstance(run, RunConfig):
        raise ConfigError("the configuration is not a RunConfig; keep `- run_schema` first in conf/config.yaml")
    return resolve_paths(validate(run))

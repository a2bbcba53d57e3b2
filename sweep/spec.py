"""What a sweep runs: frozen plain dataclasses, built from a plain mapping and validated.

No Hydra and no OmegaConf here (:mod:`sweep.hydra_config` is the adapter): :func:`from_mapping`
turns the composed configuration (plain dicts and lists) into a :class:`RunSpec`, refusing any
key the schema does not know (naming the nearest valid one), and :func:`validate` checks every
value. Allowed values are read from the registries: a field's ``choices`` metadata (modes,
metric sets, orders, quantizers from :mod:`sweep.kernels`; activations from its table;
datasets from :data:`sweep.data.datasets.DATASETS`) and each ablation kind's settings class,
which :data:`sweep.kinds.ABLATIONS` passes in (this module imports no kind, so the kinds may
import it).
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Optional

from sweep.data.datasets import DATASETS, SCALERS
from sweep.data.torch_models import ARCHITECTURES, check_model
from sweep.kernels.network import ACTIVATIONS
from sweep.results import storage

MISSING = "???"
"""A value the configuration must provide (OmegaConf's marker for a mandatory value)."""


class SpecError(ValueError):
    """An invalid configuration value; the message names the key, what was given and the fix."""


def _choices(*allowed: str) -> dict[str, Any]:
    return {"choices": tuple(allowed)}


def _interval(low: float | None, high: float | None, low_closed: bool = True, high_closed: bool = False) -> dict[str, Any]:
    return {"interval": (low, high, low_closed, high_closed)}


TORCH_FIELDS = ("architecture", "factory", "sites", "epochs")
"""ModelSpec fields of torch models only (``architecture: mlp`` is scikit-learn's MLP)."""


@dataclass(frozen=True)
class ModelSpec:
    """``MLPClassifier`` hyper-parameters (scikit-learn's defaults); ``random_state`` is the seed.

    ``architecture`` other than ``mlp`` is a torch model
    (:data:`sweep.data.torch_models.ARCHITECTURES`): ``factory`` and ``sites`` for
    ``architecture: torch``, ``epochs``; it reads ``solver``, ``alpha``, ``batch_size``,
    ``learning_rate_init``, ``beta_1``, ``beta_2``, ``epsilon``, ``momentum``,
    ``nesterovs_momentum`` and ``shuffle`` and ignores ``hidden_layer_sizes``.
    """

    name: str = MISSING
    hidden_layer_sizes: list[int] = MISSING  # type: ignore[assignment]
    architecture: str = field(default="mlp", metadata=_choices("mlp", *ARCHITECTURES))
    factory: Optional[str] = None
    sites: Optional[list[str]] = None
    epochs: int = field(default=10, metadata=_interval(1, None))
    activation: str = field(default="relu", metadata=_choices(*ACTIVATIONS))
    solver: str = field(default="adam", metadata=_choices("lbfgs", "sgd", "adam"))
    alpha: float = 0.0001
    batch_size: Any = "auto"
    learning_rate: str = field(default="constant", metadata=_choices("constant", "invscaling", "adaptive"))
    learning_rate_init: float = 0.001
    power_t: float = 0.5
    max_iter: int = field(default=200, metadata=_interval(1, None))
    shuffle: bool = True
    tol: float = 1e-4
    verbose: bool = False
    warm_start: bool = False
    momentum: float = 0.9
    nesterovs_momentum: bool = True
    early_stopping: bool = False
    validation_fraction: float = field(default=0.1, metadata=_interval(0.0, 1.0, False, False))
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    n_iter_no_change: int = 10
    max_fun: int = 15000

    def classifier_params(self) -> dict[str, Any]:
        """Keyword arguments of ``MLPClassifier`` (all fields but ``name`` and the torch ones)."""
        params = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", *TORCH_FIELDS)}
        params["hidden_layer_sizes"] = tuple(self.hidden_layer_sizes)
        return params

    def torch_params(self) -> dict[str, Any]:
        """The settings a torch model's weights depend on (its content key)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "verbose")}

    @property
    def iterations(self) -> int:
        """Training iterations shown as progress: ``max_iter`` (MLP) or ``epochs`` (torch)."""
        return self.max_iter if self.architecture == "mlp" else self.epochs


LOCATION_KEYS = ("data_dir", "cache_dir", "mirrors")
"""Dataset settings that say where data is, not what it is."""

NAMING_KEYS = ("label",)
"""Dataset settings that name where results go, not what the arrays are."""


@dataclass(frozen=True)
class DatasetSpec:
    """Arguments of :func:`sweep.data.datasets.load_dataset` (``name`` is the dataset), plus
    ``label``, the results partition's name (``dataset=<label>``; default the name).

    ``split_seed: null`` draws each model seed's own split (:meth:`for_seed`), so that
    intervals over seeds include split-to-split variance.
    """

    name: str = field(default=MISSING, metadata=_choices(*DATASETS))
    data_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    split: str = field(default="holdout", metadata=_choices("holdout", "official"))
    test_fraction: float = field(default=0.1, metadata=_interval(0.0, 1.0, False, False))
    split_seed: Optional[int] = field(default=0, metadata=_interval(0, None))
    val_fraction: float = field(default=0.0, metadata=_interval(0.0, 1.0, True, False))
    scale: str = field(default="unit", metadata=_choices(*SCALERS))
    label_noise: float = field(default=0.0, metadata=_interval(0.0, 1.0, True, True))
    label_noise_seed: int = field(default=0, metadata=_interval(0, None))
    mirrors: Optional[list[str]] = None
    label: Optional[str] = None

    @property
    def tag(self) -> str:
        """The ``dataset=`` partition value: ``label`` (default: the name), plus the label-noise
        level if any."""
        base = self.label or self.name
        return base if self.label_noise == 0 else f"{base}-noise{self.label_noise:g}"

    def for_seed(self, seed: int) -> "DatasetSpec":
        """The settings model ``seed`` is trained and measured on: ``split_seed: null`` draws
        each seed's own split (``split_seed = seed``); otherwise these settings."""
        return self if self.split_seed is not None else replace(self, split_seed=seed)

    def loader_params(self) -> dict[str, Any]:
        """Keyword arguments of ``load_dataset`` including ``name``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NAMING_KEYS}

    def content_params(self) -> dict[str, Any]:
        """The settings that decide the arrays, without those that say where files are."""
        return {k: v for k, v in self.loader_params().items() if k not in LOCATION_KEYS}


@dataclass(frozen=True)
class RaySpec:
    """Where and how Ray runs. ``address: null`` starts a private local Ray on 127.0.0.1."""

    address: Optional[str] = None
    num_cpus: Optional[int] = field(default=None, metadata=_interval(1, None))
    num_gpus: Optional[float] = field(default=None, metadata=_interval(0, None))
    num_gpus_per_worker: float = field(default=0.0, metadata=_interval(0, None))
    num_gpus_per_train: float = field(default=0.0, metadata=_interval(0, None))
    threads_per_worker: int = field(default=1, metadata=_interval(1, None))
    max_in_flight: int = field(default=0, metadata=_interval(0, None))
    max_retries: int = field(default=3, metadata=_interval(0, None))
    include_dashboard: bool = False


@dataclass(frozen=True)
class PathsSpec:
    """``results``: a local folder or a pyarrow filesystem URI (``s3://bucket/x``);
    ``models``: where trained models are cached (default ``<results>/models``)."""

    results: str = "results"
    models: Optional[str] = None


SPLITS: tuple[str, ...] = ("test", "val", "train")
"""Splits an ablation can be measured on."""


@dataclass(frozen=True)
class AblationSettings:
    """Settings every ablation kind has.

    Attributes
    ----------
    kind : str — the ablation (a key of :data:`sweep.kinds.ABLATIONS`, which holds one
        subclass per kind)
    splits : list of str, optional — splits measured; default test, plus val when the
        dataset has one (anything chosen from results is chosen on val)
    shard_cost : float — multiply-adds per shard (scheduling only)
    """

    kind: str = "???"
    splits: Optional[list[str]] = field(default=None, metadata={"choices": SPLITS})
    shard_cost: float = field(default=2e9, metadata={"interval": (0.0, None, False)})

    def check(self, hidden_sizes: tuple[int, ...], has_val: bool) -> None:
        """Raise ValueError (naming the key and the fix) for settings that do not fit the
        model (``hidden_sizes``) or the data (``has_val``: the dataset has a validation split)."""


@dataclass(frozen=True)
class RunSpec:
    """The whole run: every config group plus the seeds and the study name.

    ``ablation`` is the settings object of the chosen ablation kind
    (:data:`sweep.kinds.ABLATIONS`), e.g. :class:`sweep.kinds.neuron.NeuronSettings`.
    """

    model: ModelSpec = MISSING  # type: ignore[assignment]
    dataset: DatasetSpec = MISSING  # type: ignore[assignment]
    ablation: AblationSettings = MISSING  # type: ignore[assignment]
    ray: RaySpec = field(default_factory=RaySpec)
    paths: PathsSpec = field(default_factory=PathsSpec)
    seeds: list[int] = field(default_factory=lambda: [0])
    study: str = "default"
    progress: bool = True


# --------------------------------------------------------------------------- building


def _dataclass_type(annotation: Any) -> type | None:
    """The dataclass an annotation names (``Optional[X]`` included), else None."""
    hint = annotation
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    return hint if isinstance(hint, type) and is_dataclass(hint) else None


def unknown_key(key: str, known: list[str], where: str) -> SpecError:
    """The error for a key outside the schema, naming the nearest valid one."""
    near = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {where}{near[0]}?" if near else f"; known keys: {', '.join(known)}"
    return SpecError(f"{where}{key} is not a setting{hint}")


def build(cls: type, values: Mapping[str, Any], settings: Mapping[str, type], where: str = "") -> Any:
    """An instance of dataclass ``cls`` from a plain mapping; nested dataclasses recursively.

    Parameters
    ----------
    settings : mapping of str to type
        Each ablation kind's :class:`AblationSettings` subclass by name (the registry,
        :data:`sweep.kinds.ABLATIONS`, passes it in: this module imports no kind).

    Raises
    ------
    SpecError
        For a key ``cls`` does not have (naming the nearest valid key).
    """
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise unknown_key(key, known, where)
        nested = _dataclass_type(hints[key])
        if nested is AblationSettings and isinstance(value, Mapping):
            nested = ablation_settings(value, settings)
        kwargs[key] = build(nested, value, settings, f"{where}{key}.") if nested and isinstance(value, Mapping) else value
    return cls(**kwargs)


def ablation_settings(values: Mapping[str, Any], settings: Mapping[str, type]) -> type:
    """The settings class of the ablation kind ``values["kind"]`` names.

    Raises
    ------
    SpecError
        For an unknown kind, listing the known ones.
    """
    kind = values.get("kind", MISSING)
    if kind not in settings:
        raise SpecError(f"ablation.kind={kind!r} is not allowed; choose one of {', '.join(settings)}")
    return settings[kind]


def from_mapping(values: Mapping[str, Any], settings: Mapping[str, type]) -> RunSpec:
    """A validated :class:`RunSpec` with absolute local paths, from plain nested mappings.

    ``settings``: each ablation kind's settings class by name, e.g.
    ``{name: a.settings for name, a in sweep.kinds.ABLATIONS.items()}``.

    Examples
    --------
    >>> from sweep.kinds import ABLATION_SETTINGS
    >>> run = from_mapping({"model": {"name": "tiny", "hidden_layer_sizes": [8]},
    ...                     "dataset": {"name": "digits"}, "ablation": {"kind": "neurons"}},
    ...                    ABLATION_SETTINGS)
    >>> run.ablation.modes, run.seeds
    (['zero'], [0])
    >>> from_mapping({"model": {"name": "tiny", "hidden_layer_sizes": [8], "activaton": "relu"}},
    ...              ABLATION_SETTINGS)
    Traceback (most recent call last):
    ...
    sweep.spec.SpecError: model.activaton is not a setting; did you mean model.activation?
    """
    return resolve_paths(validate(build(RunSpec, values, settings)))


# --------------------------------------------------------------------------- validation


def _items(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def _check_field(obj: Any, f: Any, key: str) -> None:
    value = getattr(obj, f.name)
    if value == MISSING:
        raise SpecError(f"{key} is missing; set it, e.g. {key}=...")
    allowed = f.metadata.get("choices")
    for item in _items(value) if allowed else []:
        if item not in allowed:
            raise SpecError(f"{key}={item!r} is not allowed; choose one of {', '.join(map(str, allowed))}")
    interval = f.metadata.get("interval")
    for item in _items(value) if interval else []:
        low, high, low_closed, high_closed = (*interval, False)[:4]
        numeric = isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item)
        above = low is None or (item >= low if low_closed else item > low) if numeric else False
        below = high is None or (item <= high if high_closed else item < high) if numeric else False
        if not (numeric and above and below):
            span = (f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}" if high is not None
                    else f"{'>=' if low_closed else '>'} {low:g}")
            raise SpecError(f"{key}={item!r} is out of range; expected a number {'in ' if high is not None else ''}{span}")


def _check_tree(obj: Any, prefix: str = "") -> None:
    """Every field's ``choices`` and ``interval`` metadata, recursively."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            _check_tree(value, f"{prefix}{f.name}.")
        else:
            _check_field(obj, f, f"{prefix}{f.name}")


def _check_counts(run: RunSpec) -> None:
    sizes = run.model.hidden_layer_sizes
    if run.model.architecture == "mlp" and (not sizes or any(not isinstance(s, int) or s < 1 for s in sizes)):
        raise SpecError(
            f"model.hidden_layer_sizes={list(sizes)} is invalid; expected a non-empty list of "
            "positive integers, e.g. [392, 196]"
        )
    if not run.seeds or any(s < 0 for s in run.seeds) or len(set(run.seeds)) != len(run.seeds):
        raise SpecError(f"seeds={run.seeds} is invalid; expected distinct non-negative integers, e.g. [0,1,2]")
    batch = run.model.batch_size
    if not (batch == "auto" or (isinstance(batch, int) and batch > 0)):
        raise SpecError(f"model.batch_size={batch!r} is invalid; expected 'auto' or a positive integer")
    if "val" in (run.ablation.splits or []) and run.dataset.val_fraction == 0:
        raise SpecError("ablation.splits includes 'val' but dataset.val_fraction=0; set dataset.val_fraction=0.1")
    _check_names(run)
    if run.dataset.data_dir is not None and not str(run.dataset.data_dir).strip():
        raise SpecError("dataset.data_dir is empty; give the folder holding the dataset's files, e.g. "
                        "dataset.data_dir=path/to/mnist, or leave it out to download them")


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A value that becomes a folder or a file-name part: letters, digits, ``.``, ``_``, ``-``, at
most 64 characters, starting with a letter or digit; so never a path (``/``, ``..``), a Hive
``key=value`` or a name pyarrow skips (``_``, ``.``)."""

NAMED_KEYS: dict[str, str] = {"study": "paper", "model.name": "my_net", "dataset.label": "mnist-raw"}
"""Every setting whose value names a folder or file under the results root, with an example."""


def _check_names(run: RunSpec) -> None:
    """Each of :data:`NAMED_KEYS` matches :data:`NAME_PATTERN`, so every file of a run lies
    under ``<root>/<study>`` and ``<root>/models``."""
    values = {"study": run.study, "model.name": run.model.name, "dataset.label": run.dataset.label}
    for key, example in NAMED_KEYS.items():
        value = values[key]
        if value is not None and not (isinstance(value, str) and NAME_PATTERN.fullmatch(value)):
            shown = repr(value) if len(str(value)) <= 80 else repr(str(value)[:60]) + f"... ({len(str(value))} characters)"
            raise SpecError(f"{key}={shown} is invalid; expected a name of letters, digits, '.', '_' or '-' "
                            f"(at most 64, starting with a letter or digit), e.g. {key}={example}")


TORCH_ABLATIONS = ("neurons", "cumulative")
"""``ablation=`` choices that run on torch models."""


def _torch_widths(run: RunSpec) -> tuple[int, ...]:
    """A torch model's unit counts per site, from the module built for the dataset's images;
    every problem (torch missing, a bad factory or site, images the architecture does not
    take, an ablation or GPU setting torch models lack) is one line, before any training."""
    if run.ablation.kind not in TORCH_ABLATIONS:
        raise SpecError(f"ablation={run.ablation.kind} does not run on torch models yet; use ablation=neurons or cumulative "
                        f"(model={run.model.name})")
    if run.ray.num_gpus_per_worker > 0:
        raise SpecError("ray.num_gpus_per_worker > 0 ablates MLPs only: torch models are ablated on CPU "
                        "(ablation.torch_precision: float64, or float32 with near-ties re-settled in float64); "
                        "set ray.num_gpus_per_worker=0 (ray.num_gpus_per_train trains on a GPU)")
    record = DATASETS[run.dataset.name]
    try:
        return check_model(run.model, record.image_shape, record.n_classes)
    except ValueError as error:
        raise SpecError(f"model={run.model.name} on dataset={run.dataset.name}: {error}") from error


def validate(run: RunSpec) -> RunSpec:
    """Check every value of a run; return it unchanged or raise :class:`SpecError`."""
    _check_tree(run)
    _check_counts(run)
    sizes = tuple(run.model.hidden_layer_sizes) if run.model.architecture == "mlp" else _torch_widths(run)
    try:
        run.ablation.check(sizes, run.dataset.val_fraction > 0)
    except ValueError as error:
        raise SpecError(str(error)) from error
    return run


def _absolute(location: str | None) -> str | None:
    """A local path made absolute (relative to where the sweep is started); URIs and None as they are."""
    return None if location is None else storage.absolute(location)


def resolve_paths(run: RunSpec) -> RunSpec:
    """The same run with every local path absolute, so that the manifest, the workers and
    ``analysis`` find the files whatever their working directory."""
    return replace(
        run,
        dataset=replace(run.dataset, data_dir=_absolute(run.dataset.data_dir), cache_dir=_absolute(run.dataset.cache_dir)),
        paths=replace(run.paths, results=_absolute(run.paths.results), models=_absolute(run.paths.models)),
    )

"""The Hydra adapter: the only module that imports Hydra or OmegaConf.

It registers the schemas Hydra composes against (mutable copies of :mod:`sweep.spec`'s frozen
dataclasses, one per ablation kind in the ``ablation`` group as ``<kind>_schema``), turns a
composed config into a :class:`~sweep.spec.RunSpec` (plain objects: nothing of OmegaConf goes
further), and reports a bad command line in one line.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue

from sweep import spec
from sweep.kernels.modes import NEURON_MODES
from sweep.kinds import ABLATION_SETTINGS, ABLATIONS
from sweep.spec import AblationSettings


def config_dir() -> str:
    """``conf/`` of a source checkout, or the copy installed as ``sweep/conf``."""
    installed = Path(__file__).parent / "conf"
    return str(installed if installed.is_dir() else Path(__file__).parent.parent / "conf")


@functools.cache
def _mutable(cls: type) -> type:
    """A non-frozen copy of dataclass ``cls`` that OmegaConf can merge overrides into (frozen
    dataclasses become read-only configs); the ablation field is left open (``Any``): its
    schema comes from the chosen ``ablation/<kind>_schema``."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        nested = spec._dataclass_type(hints[f.name])
        hint = Any if nested is AblationSettings else _mutable(nested) if nested else hints[f.name]
        if f.default_factory is not dataclasses.MISSING:
            default = dataclasses.field(default_factory=_mutable(nested) if nested else f.default_factory)
        else:
            default = dataclasses.field(default=f.default)
        specs.append((f.name, hint, default))
    return dataclasses.make_dataclass(cls.__name__, specs)


def register_schema() -> None:
    """Register ``run_schema`` and every ``ablation/<kind>_schema`` in Hydra's ConfigStore, and
    the ``sweep_tmp`` resolver (where a multirun's ``multirun.yaml`` goes)."""
    if not OmegaConf.has_resolver("sweep_tmp"):
        OmegaConf.register_new_resolver("sweep_tmp", lambda: str(Path(tempfile.gettempdir()) / "ablation-sweep"))
    store = ConfigStore.instance()
    store.store(name="run_schema", node=_mutable(spec.RunSpec))
    for name, ablation in ABLATIONS.items():
        store.store(group="ablation", name=f"{name}_schema", node=_mutable(ablation.settings))


HELP_HEAD = """\
python -m sweep: exact ablation sweeps of scikit-learn MLPs, on a laptop or a Ray cluster.

It trains the networks a configuration names (model, dataset, seeds), removes every hidden neuron
on its own (or every synapse, or growing sets of units in an order), measures the accuracy change
exactly (the same predictions as editing the weights and calling sklearn), and writes one Parquet
row per ablation under paths.results. A rerun skips what is done; `python -m analysis` reports it.

Start with:
  python -m sweep                                  NN_392 on the bundled digits, every neuron removed
  python -m sweep model=nn_392 dataset=mnist dataset.data_dir=DIR dataset.val_fraction=0.1
                                                   the paper's network on MNIST, selections on val
  python -m analysis results                       the report of every study under results/
"""


def _allowed(cls: type, prefix: str) -> list[str]:
    """``  prefix.key: a, b, c`` for every field of ``cls`` with a choices list."""
    return [f"  {prefix}{f.name}: {', '.join(map(str, f.metadata['choices']))}"
            for f in dataclasses.fields(cls) if "choices" in f.metadata]


def _keys(cls: type, prefix: str) -> list[str]:
    """``  prefix.key=default`` for every plain (not nested) field of ``cls``."""
    hints = typing.get_type_hints(cls)
    shown = []
    for f in dataclasses.fields(cls):
        if spec._dataclass_type(hints[f.name]) is None:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            text = ("null" if default is None else str(default).lower() if isinstance(default, bool)
                    else "(set by the group's choice)" if default == spec.MISSING else str(default).replace(" ", ""))
            shown.append(f"  {prefix}{f.name}={text}")
    return shown


def help_text() -> str:
    """``--help``: what the tool does, where to start, the config groups and the allowed values
    (read from the registries, like the validation)."""
    conf = Path(config_dir())
    groups = [f"  {g.name}: {', '.join(sorted(y.stem for y in g.glob('*.yaml')))}"
              for g in sorted(conf.iterdir()) if g.is_dir()]
    lines = [HELP_HEAD, "Config groups (group=option; each YAML holds only what differs from the defaults):", *groups, ""]
    lines += ["Allowed values:", *_allowed(spec.ModelSpec, "model."), *_allowed(spec.DatasetSpec, "dataset.")]
    for name, ablation in ABLATIONS.items():
        lines += [f" ablation={name}: {ablation.description}", *_allowed(ablation.settings, "ablation.")]
    lines += [" neuron modes:", *(f"  {name}: {mode.description}" for name, mode in NEURON_MODES.items()), ""]
    lines += ["Keys and their defaults (model.*: every MLPClassifier parameter, scikit-learn's defaults):",
              *_keys(spec.RunSpec, ""), *_keys(spec.DatasetSpec, "dataset."), *_keys(spec.PathsSpec, "paths."),
              *_keys(spec.RaySpec, "ray."), ""]
    lines += ["Every key and its value: python -m sweep --cfg job      Hydra's own flags: python -m sweep --hydra-help"]
    return "\n".join(lines)


def to_run_spec(cfg: DictConfig) -> spec.RunSpec:
    """A composed Hydra config as a validated :class:`~sweep.spec.RunSpec` with absolute
    local paths.

    Raises
    ------
    SpecError
        For a missing value, an unknown key or a value out of its allowed set.
    """
    try:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as error:
        raise spec.SpecError(f"{error.full_key} is missing; set it on the command line ({error.full_key}=...)") from error
    return spec.from_mapping(values, ABLATION_SETTINGS)


def compose_run(overrides: list[str]) -> spec.RunSpec:
    """The :class:`~sweep.spec.RunSpec` that ``python -m sweep OVERRIDES`` would run."""
    register_schema()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return to_run_spec(compose(config_name="config", overrides=overrides))


def _unknown_key(cause: BaseException | None) -> str | None:
    """One line for an override of a key the schema lacks (Hydra suggests appending it with
    ``+``, which would only be refused later): the nearest valid key instead."""
    if not isinstance(cause, (ConfigAttributeError, ConfigKeyError)) or not dataclasses.is_dataclass(getattr(cause, "object_type", None)):
        return None
    group, _, key = str(cause.full_key).rpartition(".")
    known = [f.name for f in dataclasses.fields(cause.object_type)]
    message = str(spec.unknown_key(key, known, f"{group}." if group else ""))
    kind = getattr(cause.object_type, "kind", None)
    return message + (f" (settings of ablation={kind}: {', '.join(known)})" if group == "ablation" and kind else "")


EXAMPLES: dict[str, str] = {"seeds": "[0,1,2]", "model.hidden_layer_sizes": "[392,196]", "study": "paper",
                            "model.name": "my_net", "dataset.data_dir": "path/to/mnist",
                            "paths.results": "path/to/results", "ray.address": "auto"}
"""Example values for keys whose schema default does not make a good one."""


def _setting(key: str) -> dataclasses.Field | None:
    """The schema field an override key names (``ablation.*``: the first kind that has it)."""
    group, _, name = key.lstrip("+~").rpartition(".")
    owners = {"": [spec.RunSpec], "model": [spec.ModelSpec], "dataset": [spec.DatasetSpec], "ray": [spec.RaySpec],
              "paths": [spec.PathsSpec], "ablation": list(ABLATION_SETTINGS.values())}.get(group, [])
    found = [f for cls in owners for f in dataclasses.fields(cls) if f.name == name]
    return found[0] if found else None


def _expected(key: str) -> str:
    """What ``key`` takes, in words, with an example: ``a list of integers, e.g. seeds=[0,1,2]``."""
    field = _setting(key)
    if field is None:
        return f"write key=value, e.g. seeds={EXAMPLES['seeds']}"
    hint = str(field.type).replace("Optional[", "").rstrip("]")
    choices = field.metadata.get("choices")
    default = field.default if field.default is not dataclasses.MISSING else None
    if hint.startswith("list"):
        words = "a list" + (" of integers" if "int" in hint else "")
        example = f"[{','.join(map(str, choices[:2]))}]" if choices else "[0,1,2]"
    elif choices:
        words, example = f"one of {', '.join(map(str, choices))}", choices[0]
    elif hint == "bool":
        words, example = "true or false", "false"
    elif hint in ("int", "float"):
        words, example = ("an integer" if hint == "int" else "a number"), default if default not in (None, spec.MISSING) else 1
    else:
        words, example = "a value", default if default not in (None, spec.MISSING) else "x"
    name = key.lstrip("+~")
    return f"{name} takes {words}, e.g. {name}={EXAMPLES.get(name, example)}"


def _syntax_error(error: BaseException, overrides: list[str]) -> str | None:
    """One line for an override Hydra cannot parse or convert, in the project's words (the
    key, what it takes, an example), without OmegaConf's type names; None for other errors."""
    if isinstance(error, OverrideParseException):
        parser = OverridesParser.create()
        for text in overrides:
            try:
                parser.parse_overrides([text])
            except OverrideParseException:
                key = text.split("=", 1)[0] if "=" in text else None
                if key is None:
                    return f"{text!r} is not an override; write key=value, e.g. seeds={EXAMPLES['seeds']}"
                return (f"{text!r} cannot be read: {_expected(key)}; close every bracket and quote, and "
                        f"quote a value with spaces or special characters: {key}='...'")
        return None
    cause = error.__cause__
    if isinstance(error, ConfigCompositionException) and str(error).startswith("Error merging override"):
        key = re.sub(r"\[\d+\]$", "", str(getattr(cause, "full_key", "") or ""))  # seeds[0]: seeds
        given = next((o for o in overrides if o.lstrip("+~").split("=", 1)[0] == key), str(error).split("override ", 1)[-1])
        return f"{given} is invalid: {_expected(key)}" if key else None
    return None


MULTIRUN_FLAGS = ("-m", "--multirun")
MAX_CHECKED_JOBS = 64
"""Multirun jobs whose composed configs are checked before any runs (the first ones)."""


def _jobs(overrides: list[str]) -> Iterator[list[str]] | None:
    """The override lists of every job a command line runs (one without sweeps; each
    combination of a multirun's values), or None when a sweep needs Hydra's own loader
    (``glob``)."""
    choices = []
    for override, text in zip(OverridesParser.create().parse_overrides(overrides), overrides):
        if not override.is_sweep_override():
            choices.append([text])
            continue
        try:
            values = list(override.sweep_string_iterator())
        except HydraException:
            return None
        choices.append([f"{override.get_key_element()}={value}" for value in values])
    return (list(job) for job in itertools.product(*choices))


def override_error(args: list[str]) -> str | None:
    """Compose the config of every job the command line runs; one line saying what is wrong.

    Hydra reports a bad override over many lines (search paths, stack hints), and in a
    multirun only when its job starts; this names the key and the allowed values on one, before
    anything runs. Hydra's own flags (``--cfg``, ``--help``...) are left to Hydra.
    """
    overrides = [a for a in args if a not in MULTIRUN_FLAGS]
    if any(a.startswith("-") or a.startswith("hydra") for a in overrides):
        return None
    problem = _first_problem(overrides)
    return None if problem is None else " ".join(line.strip() for line in problem.splitlines() if line.strip())


def _first_problem(overrides: list[str]) -> str | None:
    """What :func:`override_error` reports, possibly over several lines."""
    try:
        jobs = _jobs(overrides)
        for job in itertools.islice(jobs or [], MAX_CHECKED_JOBS):
            compose_run(job)
    except Exception as error:  # noqa: BLE001 - every composition failure is reported the same way
        unknown = _unknown_key(error.__cause__) or _syntax_error(error, overrides)
        if unknown:
            return unknown
        text = str(error).split("Config search path")[0]
        if error.__cause__ is not None and not isinstance(error, spec.SpecError):
            text += ": " + str(error.__cause__).split("full_key")[0].strip() + f" (key {getattr(error.__cause__, 'full_key', '?')})"
        return text
    return None

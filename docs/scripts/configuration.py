"""Write ``docs/configuration.md`` from the registries: every config group and its options,
every key with its default and allowed values, every ablation kind's settings, the neuron
modes, datasets, unit statistics and each result kind's columns.

    python docs/scripts/configuration.py          # rewrite docs/configuration.md
    python docs/scripts/configuration.py --check  # exit 1 if it is out of date (tests run this)
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from pathlib import Path

from sweep import spec
from sweep.data.datasets import DATASETS
from sweep.hydra_config import config_dir
from sweep.kernels.modes import NEURON_MODES
from sweep.kernels.unitstats import STATISTICS
from sweep.kinds import ABLATIONS, KINDS

OUT = Path(__file__).resolve().parents[1] / "configuration.md"


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        value = f.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return "(required)" if value == spec.MISSING else f"`{value}`".replace("'", "")


def _allowed(f: dataclasses.Field) -> str:
    if "choices" in f.metadata:
        return ", ".join(f"`{c}`" for c in f.metadata["choices"])
    if "interval" in f.metadata:
        low, high, low_closed, high_closed = (*f.metadata["interval"], False)[:4]
        if high is None:
            return f"{'≥' if low_closed else '>'} {low:g}"
        return f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"
    return ""


def _table(cls: type, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    rows = ["| key | default | allowed |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        if spec._dataclass_type(hints[f.name]) is None:
            rows.append(f"| `{prefix}{f.name}` | {_default(f)} | {_allowed(f)} |")
    return rows


def _first_comment(path: Path) -> str:
    """The first sentence of a YAML's leading comment."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#") or line.lstrip("# ").startswith("python -m"):
            if lines:
                break
            continue
        if "@package" not in line:
            lines.append(line[1:].strip())
    text = " ".join(lines)
    return re.split(r"(?<!e\.g)\. ", text, maxsplit=1)[0].rstrip(".:") + "."


def render() -> str:
    conf = Path(config_dir())
    out = ["# Configuration", "",
           "Written by `python docs/scripts/configuration.py` from the registries (the same tables",
           "that validate a command line); `python -m sweep --help` prints the same in short.",
           "Override any key on the command line (`key=value`, lists as `key=[a,b]`), choose a",
           "group's option with `group=option`, sweep with `-m` and commas.", "",
           "## Groups", ""]
    for group in sorted(p for p in conf.iterdir() if p.is_dir()):
        out += [f"### `{group.name}=`", ""]
        for option in sorted(group.glob("*.yaml")):
            out.append(f"* `{option.stem}`: {_first_comment(option)}")
        out.append("")
    out += ["## Top-level keys", "", *_table(spec.RunSpec, ""), "",
            "## `model.*`", "", "Every `MLPClassifier` parameter, with scikit-learn's defaults; `random_state` is the seed.", "",
            *_table(spec.ModelSpec, "model."), "",
            "## `dataset.*`", "", *_table(spec.DatasetSpec, "dataset."), "",
            "## `paths.*`", "", *_table(spec.PathsSpec, "paths."), "",
            "## `ray.*`", "", *_table(spec.RaySpec, "ray."), "",
            "## `ablation.*`", "", "Each `ablation=<name>` has its own settings; a key of another is an error.", ""]
    for name, ablation in ABLATIONS.items():
        kinds = ", ".join(f"`kind={k.name}`" for k in ablation.phases)
        out += [f"### `ablation={name}`", "", f"{ablation.description}. Writes {kinds}.", "",
                *_table(ablation.settings, "ablation."), ""]
    out += ["## Neuron modes", "", "| mode | what removing a unit does |", "|---|---|",
            *(f"| `{n}` | {m.description} |" for n, m in NEURON_MODES.items()), "",
            "## Datasets", "", "| name | image shape | classes | files | splits |", "|---|---|---|---|---|",
            *(f"| `{n}` | {r.image_shape} | {r.n_classes} | {', '.join(f'`{s.name}`' for s in r.files.values()) or 'bundled'} "
              f"| {', '.join(r.splits)} |" for n, r in DATASETS.items()), "",
            "## Unit statistics", "", "Columns of `kind=unit`; each orders cumulative ablation as `<statistic>_high` / `_low`.", "",
            ", ".join(f"`{s}`" for s in STATISTICS), "",
            "## Result kinds and their columns", "",
            "Hive keys `kind, dataset, model, seed` live in the path; parts carry every kind's columns (the others null).", "",
            "| kind | columns |", "|---|---|",
            *(f"| `{n}` | {', '.join(f'`{f.name}` ({f.type})' for f in k.schema)} |" for n, k in KINDS.items()), ""]
    return "\n".join(out)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else 1)
    OUT.write_text(text)

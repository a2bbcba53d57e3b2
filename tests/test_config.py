"""Config composition, validation, and the one-line errors of the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sweep.spec import SpecError as ConfigError
from tests.conftest import compose_run


def test_defaults_compose_to_plain_objects():
    cfg = compose_run([])
    assert cfg.model.name == "nn_392" and cfg.model.hidden_layer_sizes == [392]
    assert cfg.dataset.name == "digits" and cfg.seeds == [0]
    assert type(cfg.model.hidden_layer_sizes) is list  # no OmegaConf containers past the entry point
    params = cfg.model.classifier_params()
    assert params["hidden_layer_sizes"] == (392,) and params["solver"] == "adam" and params["alpha"] == 1e-4


def test_model_yaml_spells_out_every_sklearn_default():
    from sklearn.neural_network import MLPClassifier

    defaults = MLPClassifier().get_params()
    for name in ("nn_392", "nn_392_196"):
        params = compose_run([f"model={name}"]).model.classifier_params()
        unset = set(defaults) - set(params) - {"random_state"}
        assert not unset, unset
        differing = {k for k in params if k != "hidden_layer_sizes" and params[k] != defaults[k]}
        assert not differing, differing
    assert compose_run(["model=nn_392_196"]).model.hidden_layer_sizes == [392, 196]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.hidden_layer_sizes=[-3]", "model.hidden_layer_sizes"),
        ("dataset.scale=foo", "dataset.scale='foo' is not allowed; choose one of unit, none, standard"),
        ("ablation.modes=[zap]", "ablation.modes"),
        ("dataset.val_fraction=1.5", "dataset.val_fraction"),
        ("seeds=[1,1]", "seeds"),
        ("ablation.splits=[val]", "dataset.val_fraction=0"),
    ],
)
def test_invalid_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        compose_run([override])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model=nn_999", "Available options in 'model': lenet5 logistic_200_200 logistic_200_200_200 mlp_128_128 nn_392 nn_392_196 small_cnn torch"),
        ("seeds=[a]", "seeds=[a] is invalid: seeds takes a list of integers, e.g. seeds=[0,1,2]"),
        ("model.hidden_layer_sizes=[-3]", "positive integers"),
        ("nonsense=1", "nonsense"),
    ],
)
def test_cli_reports_one_line_and_fails(override, fragment, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sweep", override], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_installed_package_runs_from_any_directory(tmp_path):
    """A regular (non-editable) install carries conf/ as package data: no source tree needed."""
    import os

    from tests.conftest import REPO

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(REPO)],
                   check=True, timeout=600, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import sweep.__main__ as m; print(m.config_dir())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip() == str(site / "sweep" / "conf")
    shown = subprocess.run([sys.executable, "-m", "sweep", "model=nn_392_196", "--cfg", "job"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "- 392\n  - 196" in shown.stdout, shown.stderr


def test_local_paths_become_absolute_and_uris_stay(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    cfg = compose_run(["dataset.data_dir=data/mnist", "paths.results=out"])
    assert cfg.dataset.data_dir == str(tmp_path / "data" / "mnist") and cfg.paths.results == str(tmp_path / "out")
    assert cfg.dataset.cache_dir is None and cfg.paths.models is None
    assert compose_run(["paths.results='s3://bucket/x?scheme=http'"]).paths.results == "s3://bucket/x?scheme=http"


def test_reproduction_presets_compose_to_the_papers_settings():
    paper = compose_run(["experiment=paper", "dataset.scale=standard", "model=nn_392_196"])
    assert (paper.study, paper.dataset.tag, paper.dataset.split_seed, paper.seeds) == (
        "paper", "mnist-standard", None, [0, 1, 2, 3, 4])
    assert paper.dataset.for_seed(3).split_seed == 3 and "label" not in paper.dataset.loader_params()

    amjad = compose_run(["experiment=amjad", "model=logistic_200_200_200"])
    assert amjad.model.activation == "logistic" and amjad.model.hidden_layer_sizes == [200, 200, 200]
    assert (amjad.dataset.split, round(amjad.dataset.val_fraction * 60_000)) == ("official", 10_000)
    assert amjad.ablation.kind == "cumulative" and amjad.ablation.modes == ["mean"]
    assert amjad.ablation.quantizer == "binary" and amjad.ablation.scopes == ["network", "layers"]
    assert {o.rsplit("_", 1)[0] for o in amjad.ablation.orders} == {
        "random", "entropy", "mutual_information", "kl_selectivity"}

    for kind in ("neurons", "cumulative"):
        morcos = compose_run(["experiment=morcos", f"ablation={kind}", "dataset.label_noise=0.5"])
        assert morcos.ablation.kind == kind and morcos.ablation.splits == ["train", "test"]
        assert morcos.dataset.tag == "mnist-noise0.5" and 60_000 - round(morcos.dataset.val_fraction * 60_000) == 10_000

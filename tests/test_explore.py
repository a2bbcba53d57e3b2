"""The explorer without a browser: unit lists, live answers against the kernel, images,
the token guard, the results-root boundary, object stores and the command line."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

from analysis.__main__ import main
from analysis.explore.images import input_rgb, signed_rgb
from analysis.explore.session import (
    ExploreError,
    Explorer,
    ModelKey,
    format_units,
    inside,
    parse_units,
)
from analysis.load import AnalysisError
from sweep.data.datasets import image_shape, reference_inputs
from sweep.kernels import ablate_joint, hidden_activations
from sweep.kernels.modes import NEURON_MODES
from tests.test_analysis_fixtures import trained_study
from tests.test_s3 import s3_root  # noqa: F401  (fixture)

KEY = ModelKey("digits", "nn", 0)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    trained_study(root, seeds=(0,))  # digits, (32, 16), val + test sweeps, synapses
    return root


@pytest.fixture(scope="module")
def explorer(results: Path) -> Explorer:
    return Explorer(results)


# --------------------------------------------------------------------------- unit lists


def test_unit_lists_read_units_and_ranges_once_each() -> None:
    units = parse_units(" 1:2-4, 0:7;0:7  1:3\n0:0 0:8 ", (32, 16))
    assert units == [(0, 0), (0, 7), (0, 8), (1, 2), (1, 3), (1, 4)]
    assert format_units(units) == "0:0, 0:7-8, 1:2-4"
    assert parse_units(format_units(units), (32, 16)) == units


@pytest.mark.parametrize(("text", "message"), [
    (None, "choose at least one unit"),
    (" ,; ", "choose at least one unit"),
    ("0:32", "unit 32 of layer 0 does not exist: layer 0 has units 0-31"),
    ("1:0-10000000000000", "unit 10000000000000 of layer 1 does not exist: layer 1 has units 0-15"),
    ("2:0", "layer 2 does not exist: the network's hidden layers are 0-1"),
    ("0:5-2", "the range '0:5-2' is empty"),
    ("0:-1", "cannot read '0:-1'"),
    ("unit7", "cannot read 'unit7': write a unit as layer:unit"),
    ("0:1," * 5001, "the unit list is too long (20,004 characters; at most 20,000)"),
])
def test_malformed_unit_lists_are_one_message(text: str | None, message: str) -> None:
    with pytest.raises(ExploreError, match=rf"^{re.escape(message)}"):
        parse_units(text, (32, 16))


# --------------------------------------------------------------------------- live answers


@pytest.mark.parametrize("mode", list(NEURON_MODES))
def test_answers_equal_ablate_joint_on_val_and_test(explorer: Explorer, mode: str) -> None:
    view = explorer.view(KEY)
    units = [(0, 3), (0, 17), (1, 5)]
    data = view.data
    reference = reference_inputs(data.X_train, data.X_val) if mode == "mean" else None
    answers = view.ask(units, mode)
    assert [a.split for a in answers] == ["val", "test"]
    for answer, X, y in zip(answers, (data.X_val, data.X_test), (data.y_val, data.y_test)):
        expected = ablate_joint(view.net, X, y, units, mode, reference)
        assert answer.n_samples == len(y)
        assert answer.accuracy == expected["accuracy"][0] and answer.effect == expected["effect"][0]
        assert (answer.broken, answer.fixed) == (expected["broken"][0], expected["fixed"][0])
        assert answer.p_mcnemar == expected["p_mcnemar"][0]
        assert (len(answer.broken_rows), len(answer.fixed_rows)) == (answer.broken, answer.fixed)
        assert (answer.base_labels[answer.broken_rows] == y[answer.broken_rows]).all()
        assert (answer.labels[answer.fixed_rows] == y[answer.fixed_rows]).all()


def test_an_empty_or_unknown_set_is_refused(explorer: Explorer) -> None:
    view = explorer.view(KEY)
    with pytest.raises(ExploreError, match="^choose at least one unit"):
        view.ask([], "zero")
    with pytest.raises(ExploreError, match="^unit index out of range for its layer"):
        view.ask([(1, 16)], "zero")
    with pytest.raises(ExploreError, match="^unknown mode 'half'"):
        view.ask([(0, 1)], "half")
    with pytest.raises(ExploreError, match="^no network digits/nn seed 9"):
        explorer.view(ModelKey("digits", "nn", 9))


def test_units_are_chosen_on_val(explorer: Explorer) -> None:
    view = explorer.view(KEY)
    val = view.effects("zero", "val")
    harmful = sorted(zip(val.loc[val["effect"] > 0, "layer"], val.loc[val["effect"] > 0, "unit"]))
    assert view.choose("harmful", "zero") == harmful
    top = val.sort_values(["effect", "layer", "unit"], ascending=[False, True, True]).head(4)
    assert view.choose("top", "zero", 4) == sorted(zip(top["layer"], top["unit"]))
    with pytest.raises(ExploreError, match="^k must be a whole number from 1 to 48"):
        view.choose("top", "zero", 49)


def test_a_unit_profile_describes_the_unit_on_test(explorer: Explorer) -> None:
    view = explorer.view(KEY)
    profile = view.profile(1, 5, "zero")
    a = np.asarray(hidden_activations(view.net, view.data.X_test)[1])[:, 5]
    y = view.data.y_test
    assert profile.class_activation[3] == pytest.approx(a[y == 3].mean())
    assert np.array_equal(profile.top_values, np.sort(a)[::-1][:8])
    fired = np.maximum(a, 0)[y == 3]
    expected = fired @ view.data.X_test[y == 3] / fired.sum() if fired.sum() else np.full(64, np.nan)
    assert np.allclose(profile.class_views[3], expected, equal_nan=True)
    assert profile.weights.shape == (64,) and profile.synapses.shape == (32,)
    single = view.effects("zero", "test").query("layer == 1 and unit == 5").iloc[0]
    assert profile.removal.effect == pytest.approx(single["effect"], abs=1e-12)
    assert np.allclose(profile.class_effect, single["class_effect"])


def test_the_units_table_has_effects_and_statistics(explorer: Explorer) -> None:
    table = explorer.view(KEY).unit_table("zero")
    assert list(table.columns) == ["layer", "unit", "effect_pp", "p_mcnemar", "val_effect_pp", "selectivity",
                                   "entropy", "mutual_information", "activation_rate"]
    assert len(table) == 48 and table["effect_pp"].notna().all()
    assert (table["entropy"] >= 0).all() and not np.signbit(table["entropy"]).any()


# --------------------------------------------------------------------------- boundary and stores


def test_models_outside_the_results_root_are_not_opened(results: Path, tmp_path: Path) -> None:
    assert inside(str(results), str(results / "models" / "a.npz"))
    assert not inside(str(results), str(results / ".." / "elsewhere" / "a.npz"))
    assert inside("s3://b/r?scheme=http", "s3://b/r/models/a.npz?scheme=http")
    assert not inside("s3://b/r?scheme=http", "s3://b/r2/models/a.npz")
    copy = tmp_path / "copy"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("models"))  # models stay behind
    with pytest.raises(AnalysisError, match="^no network of study 's' has its model inside"):
        Explorer(copy)


def test_results_on_an_object_store_answer_the_same(results: Path, s3_root: str) -> None:  # noqa: F811
    fs, base = pafs.FileSystem.from_uri(s3_root)
    pafs.copy_files(str(results), base, destination_filesystem=fs)
    bucket_root, query = s3_root.split("?")
    manifest = json.loads((results / "s" / "manifest.json").read_text())
    for run in manifest["runs"]:
        relative = Path(run["model_path"]).relative_to(results).as_posix()
        run["model_path"] = f"{bucket_root}/{relative}?{query}"
    with fs.open_output_stream(f"{base}/s/manifest.json") as out:
        out.write(json.dumps(manifest).encode())
    remote = Explorer(s3_root).view(KEY).ask([(0, 3), (1, 5)], "zero")
    local = Explorer(results).view(KEY).ask([(0, 3), (1, 5)], "zero")
    assert [(a.effect, a.broken, a.fixed) for a in remote] == [(a.effect, a.broken, a.fixed) for a in local]


# --------------------------------------------------------------------------- images


def test_colour_images_are_drawn_in_colour() -> None:
    shape = image_shape("svhn")
    pixels = np.zeros(shape)
    pixels[..., 0] = 1.0  # a red image
    rgb = input_rgb(pixels.ravel(), shape)
    assert rgb.shape == (32, 32, 3) and (rgb[..., 0] == 255).all() and (rgb[..., 1:] == 0).all()
    signed = signed_rgb(-pixels.ravel(), shape)  # a negative red weight: less red than grey
    assert tuple(signed[0, 0]) == (0, 128, 128)


def test_grey_images_are_dark_ink_on_white_and_other_vectors_heatmaps() -> None:
    image = np.zeros((8, 8))
    image[2, 3] = 16.0
    rgb = input_rgb(image.ravel(), (8, 8))
    assert tuple(rgb[2, 3]) == (0, 0, 0) and tuple(rgb[0, 0]) == (255, 255, 255)
    heat = signed_rgb(np.array([1.0, -1.0, 0.0, 0.5, 0.2]), None)  # no image shape: 2 x 3 grid
    assert heat.shape == (2, 3, 3)
    assert heat[0, 0, 0] > heat[0, 0, 2] and heat[0, 1, 2] > heat[0, 1, 0]  # red +, blue -
    assert tuple(heat[1, 2]) == (255, 255, 255)  # padding


# --------------------------------------------------------------------------- server and CLI


def test_the_app_refuses_requests_without_the_token(explorer: Explorer) -> None:
    pytest.importorskip("dash", reason="the explore extra")
    from analysis.explore.app import make_app

    client = make_app(explorer, "secret-token").server.test_client()
    assert client.get("/").status_code == 403
    assert client.get("/_dash-layout").status_code == 403
    assert client.get("/?token=secret-tokem").status_code == 403
    page = client.get("/?token=secret-token")
    assert page.status_code == 200 and "HttpOnly" in page.headers["Set-Cookie"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/_dash-layout").status_code == 200  # the cookie now carries the token


def test_explore_errors_are_one_line_with_exit_code_2(results: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["explore", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"error: results folder {str(tmp_path / 'missing')!r} does not exist\n"
    pytest.importorskip("dash", reason="the explore extra")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", str(results), "--port", str(port)]) == 2
    assert capsys.readouterr() == ("", f"error: cannot listen on port {port}: Address already in use\n")
    monkeypatch.setattr("analysis.explore.EXTRA_PACKAGES", ("dash", "no_such_module_for_explore"))
    assert main(["explore", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "error: the explorer needs the explore extra (no_such_module_for_explore not installed): "
        'pip install "ablation-sweep[explore]" (from a checkout: pip install ".[explore]")\n')


def test_a_unit_profile_lists_its_strongest_partners_when_a_pair_sweep_exists(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from sweep.kernels import ablate_pairs, scope_units
    from sweep.kinds import SCHEMAS
    from sweep.results import to_table

    root = tmp_path / "results"
    trained_study(root, seeds=(0,))
    assert Explorer(root).view(KEY).profile(1, 5, "zero").partners is None  # no pair sweep: no list
    view = Explorer(root).view(KEY)
    columns = ablate_pairs(view.net, view.data.X_test, view.data.y_test, scope_units(view.net, "network"),
                           mode="zero", metrics="full")
    folder = root / "s" / "kind=pair" / "dataset=digits" / "model=nn" / "seed=0"
    folder.mkdir(parents=True)
    pq.write_table(to_table(SCHEMAS["pair"], columns, {"mode": "zero", "split": "test"}), folder / "part-0.parquet")
    partners = Explorer(root).view(KEY).profile(1, 5, "zero").partners
    mine = [(int(la), int(ua), int(lb), int(ub), i)
            for la, ua, lb, ub, i in zip(columns["layer_a"], columns["unit_a"], columns["layer_b"], columns["unit_b"],
                                         columns["interaction"]) if (la, ua) == (1, 5) or (lb, ub) == (1, 5)]
    assert len(mine) == 32 + 16 - 1
    strongest = sorted(mine, key=lambda r: (-abs(r[4]), *((r[2], r[3]) if (r[0], r[1]) == (1, 5) else (r[0], r[1]))))
    expected = [(lb, ub) if (la, ua) == (1, 5) else (la, ua) for la, ua, lb, ub, _ in strongest[:8]]
    assert list(zip(partners["layer"], partners["unit"])) == expected
    assert np.allclose(partners["interaction"], [r[4] for r in strongest[:8]])

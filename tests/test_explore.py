"""The explorer without a browser: unit lists, live answers against the kernel, images,
the token guard, the results-root boundary, object stores and the command line."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest

from analysis.__main__ import main
from analysis.explore import UNIT_URL, unit_url
from analysis.explore.images import flat_value, input_rgb
from analysis.explore.session import (
    ExploreError,
    Explorer,
    ModelKey,
    ReportLinks,
    answers_filename,
    answers_frame,
    format_units,
    inside,
    parse_units,
    unit_link,
)
from analysis.load import AnalysisError
from sweep.data.datasets import image_shape, reference_inputs
from sweep.kernels import NEURON_MODES, ablate_joint, constant_modes, hidden_activations
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


def test_unit_lists_read_units_and_ranges() -> None:
    units = parse_units(" 1:2-4, 0:7;  \n0:0 0:8 ", (32, 16))
    assert units == [(0, 0), (0, 7), (0, 8), (1, 2), (1, 3), (1, 4)]
    assert format_units(units) == "0:0, 0:7-8, 1:2-4"
    assert parse_units(format_units(units), (32, 16)) == units


@pytest.mark.parametrize(("text", "message"), [
    ("1:3, 0:1 1:3", "unit 1:3 is listed twice"),
    ("1:2-4, 1:3", "unit 1:3 is listed twice"),
    ("0:5 0:5 0:5", "unit 0:5 is listed 3 times"),
    ("1:3 0:2 1:3 0:2 0:2", "units 0:2 (3 times), 1:3 (twice) are listed more than once"),
    ("0:0-9 0:0-9", "units 0:0 (twice), 0:1 (twice), 0:2 (twice), 0:3 (twice), 0:4 (twice) and 5 more "
                    "are listed more than once"),
])
def test_repeated_units_are_named_not_dropped(text: str, message: str) -> None:
    with pytest.raises(ExploreError, match=rf"^{re.escape(message)}: write each unit once"):
        parse_units(text, (32, 16))


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


@pytest.mark.parametrize("mode", NEURON_MODES)
def test_answers_equal_ablate_joint_on_val_and_test(explorer: Explorer, mode: str) -> None:
    view = explorer.view(KEY)
    units = [(0, 3), (0, 17), (1, 5)]
    data = view.data
    reference = reference_inputs(data.X_train, data.X_val) if NEURON_MODES[mode].needs_reference else None
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


def test_grey_images_are_dark_ink_on_white() -> None:
    image = np.zeros((8, 8))
    image[2, 3] = 16.0
    rgb = input_rgb(image.ravel(), (8, 8))
    assert tuple(rgb[2, 3]) == (0, 0, 0) and tuple(rgb[0, 0]) == (255, 255, 255)


def test_flat_values_are_found() -> None:
    assert flat_value(np.zeros(5)) == 0.0 and flat_value(np.array([0.5, np.nan, 0.5])) == 0.5
    assert np.isnan(flat_value(np.full(3, np.nan)))
    assert flat_value(np.array([0.0, 1e-12])) is None


def app_module():
    pytest.importorskip("dash", reason="the explore extra")
    from analysis.explore import app

    return app


def test_signed_values_are_a_heatmap_with_a_colour_scale() -> None:
    app = app_module()
    figure = app.signed_heatmap(np.array([1.0, -2.0, 0.0, 0.5, 0.2]), None, "weight", "unit")
    heat, = figure.data  # no image shape: a 2 x 3 grid, padded with NaN
    assert np.array_equal(np.asarray(heat.z, dtype=float), [[1.0, -2.0, 0.0], [0.5, 0.2, np.nan]], equal_nan=True)
    assert np.array_equal(np.asarray(heat.customdata, dtype=float), [[0, 1, 2], [3, 4, np.nan]], equal_nan=True)
    axis = figure.layout.coloraxis
    assert (axis.cmin, axis.cmax, axis.colorbar.title.text) == (-2.0, 2.0, "weight")
    assert figure.layout.width >= app.MAP_PX >= 240 and figure.layout.yaxis.autorange == "reversed"
    shape = image_shape("svhn")
    pixels = np.zeros(shape)
    pixels[..., 0] = -1.0  # a negative red weight: one panel per channel, on one scale
    colour = app.signed_heatmap(pixels.ravel(), shape, "weight", "pixel")
    assert [t.z.shape for t in colour.data] == [(32, 32)] * 3
    assert np.asarray(colour.data[0].z).min() == -1 and not np.asarray(colour.data[1].z).any()
    assert (colour.layout.coloraxis.cmin, colour.layout.coloraxis.cmax) == (-1.0, 1.0)


def test_a_flat_panel_is_a_sentence_not_a_grey_image() -> None:
    app = app_module()
    flat = app.signed_panel(np.zeros(32), None, "synapses", "effect (pp)", "unit",
                            "every synapse changes accuracy by {value} pp", "synapse-map")
    shown = flat.children[1]
    assert type(shown).__name__ == "P" and shown.children == "every synapse changes accuracy by 0 pp"
    drawn = app.signed_panel(np.arange(4.0), None, "weights", "weight", "pixel", "{value}", "unit-weights")
    assert type(drawn.children[1]).__name__ == "Graph"
    bars = app.bar_panel(np.arange(3), np.full(3, -0.0), "per-class effect", "pp", "changes by {value} pp")
    assert bars.children[1].children == "changes by 0 pp"


def test_a_unit_without_synapse_effects_or_firing_says_so(explorer: Explorer) -> None:
    app = app_module()
    view = explorer.view(KEY)
    profile = view.profile(1, 5, "zero")
    silent = dataclasses.replace(profile, synapses=np.zeros(32), class_views=np.full_like(profile.class_views, np.nan))
    page = app.profile_view(view, silent, "zero")
    assert type(page["synapse-map"]).__name__ == "P"
    assert page["synapse-map"].children.startswith(
        "removing any one incoming synapse alone changes test accuracy by 0 pp (32 synapses")
    assert str(page).count("never fires on its test images") == 10
    drawn = app.profile_view(view, profile, "zero")
    assert type(drawn["synapse-map"]).__name__ == type(drawn["unit-weights"]).__name__ == "Graph"
    assert str(drawn).count("never fires") == (~np.isfinite(profile.class_views).any(axis=1)).sum()


# --------------------------------------------------------------------------- links, CSV, modes


def test_unit_links_round_trip() -> None:
    assert UNIT_URL == "/?model={dataset}/{model}/{seed}&unit={layer}:{unit}"
    assert unit_url("digits", "nn_392", 0, 1, 3) == "/?model=digits/nn_392/0&unit=1:3"
    assert unit_link("?model=digits/nn/0&unit=1:3") == (KEY, (1, 3))
    assert unit_link("token=abc&unit=0:17&model=digits/nn/0") == (KEY, (0, 17))
    odd = unit_url("my data", "a/b", 2, 0, 4)
    assert odd == "/?model=my%20data/a%2Fb/2&unit=0:4"
    assert unit_link(odd[1:]) == (ModelKey("my data", "a/b", 2), (0, 4))
    assert unit_link(None) is None and unit_link("?token=abc") is None


@pytest.mark.parametrize(("search", "message"), [
    ("?model=digits/nn/0", "a unit link needs both model= and unit="),
    ("?unit=1:3", "a unit link needs both model= and unit="),
    ("?model=digits/nn&unit=1:3", "cannot read the link's model 'digits/nn'"),
    ("?model=digits/nn/x&unit=1:3", "cannot read the link's model 'digits/nn/x'"),
    ("?model=digits/nn/0&unit=1:3-5", "cannot read the link's unit '1:3-5'"),
])
def test_malformed_unit_links_are_one_message(search: str, message: str) -> None:
    with pytest.raises(ExploreError, match=rf"^{re.escape(message)}: write it as \?model=dataset/model/seed"):
        unit_link(search)


def test_answers_export_as_csv(explorer: Explorer) -> None:
    view = explorer.view(KEY)
    units = [(0, 3), (0, 4), (1, 5)]
    answers = view.ask(units, "remove")
    frame = pd.read_csv(io.StringIO(answers_frame(KEY, units, "remove", answers).to_csv(index=False)),
                        keep_default_na=False)
    assert list(frame.columns) == [
        "dataset", "model", "seed", "mode", "units", "n_units", "split", "n_samples", "accuracy_base_pct",
        "accuracy_pct", "effect_pp", "broken", "fixed", "p_mcnemar", "broken_rows", "fixed_rows"]
    assert frame[["dataset", "model", "seed", "mode", "units", "n_units"]].drop_duplicates().values.tolist() == [
        ["digits", "nn", 0, "remove", "0:3-4, 1:5", 3]]
    assert frame["split"].tolist() == ["val", "test"]
    for row, split, X, y in zip(frame.itertuples(), ("val", "test"), (view.data.X_val, view.data.X_test),
                                (view.data.y_val, view.data.y_test)):
        expected = ablate_joint(view.net, X, y, units, "remove")
        assert row.n_samples == len(y)
        assert row.accuracy_pct == pytest.approx(100 * expected["accuracy"][0], abs=1e-12)
        assert row.effect_pp == pytest.approx(100 * expected["effect"][0], abs=1e-12)
        assert (row.broken, row.fixed) == (expected["broken"][0], expected["fixed"][0])
        answer = answers[0 if split == "val" else 1]
        assert [int(r) for r in str(row.broken_rows).split()] == answer.broken_rows.tolist()
        assert [int(r) for r in str(row.fixed_rows).split()] == answer.fixed_rows.tolist()
    assert answers_filename(KEY, "remove") == "ask-digits-nn-seed0-remove.csv"
    assert answers_filename(ModelKey("my data", "a/b", 1), "zero") == "ask-my_data-a_b-seed1-zero.csv"


def test_a_mode_that_needs_reference_inputs_gets_them(explorer: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    view = explorer.view(KEY)
    monkeypatch.setitem(NEURON_MODES, "mean_again", NEURON_MODES["mean"])  # a new mode, same record
    assert all(np.array_equal(a, b) for a, b in zip(view.values("mean_again"), view.values("mean")))


def test_one_mode_selector_offers_every_mode(explorer: Explorer) -> None:
    app = app_module()
    options, first = app.mode_options(explorer)
    assert [o["value"] for o in options] == list(NEURON_MODES) and first == "zero"
    assert "resample" in NEURON_MODES and "resample" not in constant_modes()  # per image, live as one draw
    assert [o["label"] for o in options] == ["zero", *(f"{m} (live only: not swept)" for m in list(NEURON_MODES)[1:])]
    page = str(app.layout(explorer))
    dropdowns = re.findall(r"Dropdown\((?:[^()]|\([^()]*\))*?id='([\w-]+)'", page)
    assert sorted(dropdowns) == ["knockout-class", "mode", "model"] and "ask-mode" not in page


def callback(app, first_output: str, inputs: dict, states: dict | None = None) -> dict:
    """What the app's callback whose first output is ``first_output`` returns for ``inputs`` and
    ``states`` (component id -> value), through the server as the page calls it."""
    key = next(k for k in app.callback_map if k.lstrip(".").startswith(first_output))
    spec = app.callback_map[key]
    outputs = [dict(zip(("id", "property"), o.split("@")[0].split("."))) for o in key.strip(".").split("...")]
    client = app.server.test_client()
    client.get("/?token=t")
    response = client.post("/_dash-update-component", json={
        "output": key, "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": [{**i, "value": inputs.get(i["id"])} for i in spec["inputs"]],
        "state": [{**s, "value": (states or {}).get(s["id"])} for s in spec["state"]],
        "changedPropIds": [f"{i['id']}.{i['property']}" for i in spec["inputs"] if i["id"] in inputs]})
    return response.get_json()["response"] if response.status_code == 200 else {"status": response.status_code}


def test_the_pages_answer_links_modes_repeats_and_downloads(explorer: Explorer) -> None:
    app = app_module().make_app(explorer, "t")
    opened = callback(app, "model.value", {"url": "?model=digits/nn/0&unit=1:5"})
    assert opened == {"model": {"value": "digits|nn|0"}, "selected": {"data": {"model": "digits|nn|0", "layer": 1,
                                                                               "unit": 5}},
                      "tabs": {"value": "unit"}, "link-message": {"children": ""}}
    for search, message in (("?model=digits/nn/7&unit=0:3", "no network digits/nn seed 7 in study 's'"),
                            ("?model=digits/nn/0&unit=2:0", "the link's unit 2:0 is not in digits/nn seed 0"),
                            ("?model=digits/nn/0", "a unit link needs both model= and unit=")):
        shown = callback(app, "model.value", {"url": search})
        assert list(shown) == ["link-message"]  # the page stays where it is
        assert shown["link-message"]["children"].startswith(f"cannot open the link: {message}")
    assert callback(app, "model.value", {"url": "?token=t"}) == {"status": 204}  # no link: nothing changes
    unswept = callback(app, "run-line", {"model": "digits|nn|0", "mode": "remove"})
    assert unswept["stability-block"]["children"]["props"]["children"] == "No neuron sweep in mode remove."
    assert unswept["counts-block"]["children"]["props"]["children"].startswith(
        "The study's neuron sweep has no rows in mode remove (swept: zero)")
    states = {"model": "digits|nn|0", "mode": "remove"}
    repeated = callback(app, "answer.children", {"ask": 1}, {**states, "question": "0:1-3, 0:2"})
    assert repeated["ask-message"]["children"] == ("unit 0:2 is listed twice: write each unit once "
                                                   "(a unit is removed once)")
    answered = callback(app, "answer.children", {"ask": 1}, {**states, "question": "0:1-3"})
    csv = answered["answer-csv"]["data"]
    view = explorer.view(KEY)
    units = [(0, 1), (0, 2), (0, 3)]
    assert csv == {"filename": "ask-digits-nn-seed0-remove.csv",
                   "content": answers_frame(KEY, units, "remove", view.ask(units, "remove")).to_csv(index=False)}
    assert callback(app, "download.data", {"download-answer": 1}, {"answer-csv": csv}) == {
        "download": {"data": {**csv, "type": "text/csv"}}}
    added = callback(app, "question.value", {"add-selected": 1},
                     {"question": "0:1, 1:5", "selected": {"model": "digits|nn|0", "layer": 1, "unit": 5}, **states})
    assert added == {"pick-message": {"children": "unit 1:5 is already in the question"}}


REPORT_HTML = """<!doctype html><main><h1>Ablation study s</h1>
<nav><ol><li><a href="#s1">Impact</a></li><li><a href="#s2">Harmful</a></li></ol></nav>
<section id="s1"><h2><span class="num">1</span> Impact of single neurons</h2>
<p>See <a href="/?model=digits/nn/0&amp;unit=1:5">unit 1:5</a> and <a href="figures/f.png">a figure</a>.</p></section>
<section id="s2"><h2><span class="num">2</span> Harmful neurons</h2>
<p><a href="/?model=digits/nn/0&amp;unit=0:3">0:3</a>, <a href="/?model=digits/nn/1&amp;unit=1:5">seed 1</a>,
<a href="/?model=digits/nn/0&amp;unit=1:5#x">again</a>, <a href="/?model=broken">broken</a></p></section></main>
"""


@pytest.fixture
def report(tmp_path: Path) -> ReportLinks:
    (tmp_path / "report" / "figures").mkdir(parents=True)
    (tmp_path / "report" / "index.html").write_text(REPORT_HTML)
    (tmp_path / "report" / "figures" / "f.png").write_bytes(b"\x89PNG")
    (tmp_path / "secret.txt").write_text("not the report's")
    return ReportLinks(tmp_path / "report")


def test_report_sections_and_the_units_they_name(report: ReportLinks, tmp_path: Path) -> None:
    assert [(s.anchor, s.title) for s in report.sections()] == [
        ("s1", "1 Impact of single neurons"), ("s2", "2 Harmful neurons")]
    assert [s.anchor for s in report.naming(KEY, (1, 5))] == ["s1", "s2"]
    assert [s.anchor for s in report.naming(KEY, (0, 3))] == ["s2"]
    assert report.naming(KEY, (0, 4)) == []
    missing = ReportLinks(tmp_path / "nowhere")
    assert not missing.exists and missing.sections() == []


def test_the_report_is_served_behind_the_token_and_linked(explorer: Explorer, report: ReportLinks) -> None:
    app = app_module()
    client = app.make_app(explorer, "secret-token", report).server.test_client()
    assert client.get("/report/index.html").status_code == 403
    page = client.get("/report/?token=secret-token")
    assert page.status_code == 200 and page.text == REPORT_HTML
    assert client.get("/report/figures/f.png").data == b"\x89PNG"  # the cookie carries the token
    assert client.get("/report/../secret.txt").status_code == 404
    assert client.get("/report/figures/../../secret.txt").status_code == 404
    assert client.get("/?model=digits/nn/0&unit=1:5").status_code == 200  # a unit link from the report
    top = str(app.header(explorer, report))
    assert "href='/report/index.html'" in top and "href='/report/index.html#s2'" in top
    view = explorer.view(KEY)
    unit = str(app.profile_view(view, view.profile(1, 5, "zero"), "zero", report.naming(KEY, (1, 5))))
    assert "Named in the report: " in unit and "href='/report/index.html#s1'" in unit
    (report.index).unlink()
    assert "report-link" not in str(app.header(explorer, report))
    gone = client.get("/report/index.html")
    assert gone.status_code == 404 and "write it with python -m analysis RESULTS --out DIR" in gone.text


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

    from sweep.kernels import ablate_pairs, no_draws, scope_units
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
    rows = {**no_draws(len(columns["layer_a"])), **columns}  # as the kind writes a constant mode's
    pq.write_table(to_table(SCHEMAS["pair"], rows, {"mode": "zero", "split": "test"}), folder / "part-0.parquet")
    partners = Explorer(root).view(KEY).profile(1, 5, "zero").partners
    mine = [(int(la), int(ua), int(lb), int(ub), i)
            for la, ua, lb, ub, i in zip(columns["layer_a"], columns["unit_a"], columns["layer_b"], columns["unit_b"],
                                         columns["interaction"]) if (la, ua) == (1, 5) or (lb, ub) == (1, 5)]
    assert len(mine) == 32 + 16 - 1
    strongest = sorted(mine, key=lambda r: (-abs(r[4]), *((r[2], r[3]) if (r[0], r[1]) == (1, 5) else (r[0], r[1]))))
    expected = [(lb, ub) if (la, ua) == (1, 5) else (la, ua) for la, ua, lb, ub, _ in strongest[:8]]
    assert list(zip(partners["layer"], partners["unit"])) == expected
    assert np.allclose(partners["interaction"], [r[4] for r in strongest[:8]])


# --------------------------------------------------------------------------- class knockout


def knockout_accuracy(view, units: list, target: int, split: str) -> float:
    """The target class's accuracy on ``split`` after removing ``units`` together (live ask)."""
    answer = next(a for a in view.ask(units, "zero") if a.split == split)
    y = view.splits[split].y
    on_target = y == view.net.classes[target]
    return float(np.mean(answer.labels[on_target] == y[on_target]))


def test_knockout_sets_are_chosen_on_val_by_the_kernel_and_stored_sets_are_reused(explorer: Explorer) -> None:
    from sweep.kernels import class_knockout
    from tests.test_analysis_fixtures import write_results

    view = explorer.view(KEY)
    val = view.splits["val"]
    on_3 = val.y == view.net.classes[3]
    stuck = view.knockout(3, "zero")  # 1 pp on ~32 val images of a class: no unit qualifies
    assert stuck.units == [] and not stuck.knocked_out and stuck.accuracy == stuck.accuracy_base
    assert stuck.message == (f"class {stuck.target}: no unit lowers its val accuracy while every other class stays "
                             "within 1 pp (computed now); allow the other classes more loss")
    found = view.knockout(3, "zero", 0.1)
    path = class_knockout(view.net, {"val": (val.X, val.y)}, 3, view.values("zero"), mode="zero", max_other_loss=0.1)
    assert not found.stored and found.target == view.net.classes[3]
    assert found.units == list(zip(path["layer"][1:].tolist(), path["unit"][1:].tolist())) and len(found.units) >= 1
    assert found.accuracy_base == pytest.approx(np.mean(val.base_pred[on_3] == val.y_index[on_3]))
    assert found.accuracy == pytest.approx(knockout_accuracy(view, found.units, 3, "val"), abs=1e-12)
    assert found.knocked_out == (found.accuracy <= 1 / len(view.net.classes))
    assert found.message.startswith(f"class {found.target}: {len(found.units)} unit")
    assert f"take its val accuracy from {100 * found.accuracy_base:.1f} % to {100 * found.accuracy:.1f} %" \
        in found.message
    # a stored class_knockout search made with the same max_other_loss is read, not recomputed:
    # here one whose set is the kernel's reversed, so reading it is visible
    stored_units = found.units[::-1]
    rows = pd.DataFrame({"layer": [-1, *[u[0] for u in stored_units]], "unit": [-1, *[u[1] for u in stored_units]],
                         "step": range(len(stored_units) + 1)})
    rows = rows.assign(dataset="digits", model="nn", seed=0, mode="zero", scope="network", target=3, split="val",
                       knocked_out=1, target_accuracy=np.linspace(0.9, 0.05, len(rows)), other_max_loss=0.0, broken=0)
    results, manifest = Path(explorer.results), Path(explorer.results) / explorer.study / "manifest.json"
    written = manifest.read_text()
    write_results(results, explorer.study, "knockout", rows)
    manifest.write_text(json.dumps({**json.loads(written), "configs": {
        "class_knockout": {"ablation": {"kind": "class_knockout", "max_other_loss": 0.1, "chance": None}}}}))
    try:
        again = Explorer(results).view(KEY)
        reread, other = again.knockout(3, "zero", 0.1), again.knockout(3, "zero", 0.2)
    finally:
        shutil.rmtree(results / explorer.study / "kind=knockout")
        manifest.write_text(written)
    assert reread.stored and reread.units == stored_units and reread.knocked_out
    assert (reread.accuracy_base, reread.accuracy) == (0.9, pytest.approx(0.05))
    assert "(knocked out; the study's class_knockout sweep)" in reread.message
    assert not other.stored  # the stored sweep answers another question (0.1, not 0.2)
    with pytest.raises(ExploreError, match="^class index 10 is outside 0..9"):
        view.knockout(10, "zero")
    with pytest.raises(ExploreError, match="^the other classes' largest loss must be 0-100 pp, not 150"):
        view.knockout(3, "zero", 1.5)
    resampled = view.knockout(3, "resample", 0.1)  # draw 0 of seed 0, as the explorer's other answers
    drawn = class_knockout(view.net, {"val": (val.X, val.y)}, 3, view.values("resample"), mode="resample",
                           max_other_loss=0.1)
    assert resampled.units == list(zip(drawn["layer"][1:].tolist(), drawn["unit"][1:].tolist()))
    assert not resampled.stored and resampled.accuracy == pytest.approx(drawn["target_accuracy"][-1])


def test_the_knockout_button_fills_the_question_with_the_set(explorer: Explorer) -> None:
    app = app_module().make_app(explorer, "t")
    classes = callback(app, "knockout-class.options", {"model": "digits|nn|0"})
    assert classes["knockout-class"] == {"options": [{"label": str(c), "value": i}
                                                     for i, c in enumerate(explorer.view(KEY).net.classes)],
                                         "value": 0}
    states = {"model": "digits|nn|0", "mode": "zero", "question": "", "knockout-class": 3, "knockout-other": 10}
    picked = callback(app, "question.value", {"pick-knockout": 1}, states)
    found = explorer.view(KEY).knockout(3, "zero", 0.1)
    assert picked["question"] == {"value": format_units(sorted(found.units))}
    message = picked["pick-message"]["children"]  # a finding, not an error: not in the error style
    assert (message["type"], message["props"]) == ("Span", {"children": found.message, "className": "found"})
    unset = callback(app, "question.value", {"pick-knockout": 1}, {**states, "knockout-other": None})
    assert unset == {"pick-message": {"children": "choose the class to knock out and how much the other classes "
                                                  "may lose"}}

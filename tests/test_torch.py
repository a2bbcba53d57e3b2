"""Torch models (sweep.data.torch_models) and their exact unit ablation
(sweep.kernels.torchnet): every unit of small_cnn against the hooked oracle, the zero mode
against the weight edit, user factories, deterministic training, safetensors artifacts, the
one-line errors (LeNet-5 on digits, a missing site, torch not installed) and the sweep."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from sweep.data import torch_models  # noqa: E402
from sweep.data.datasets import load_dataset, reference_inputs  # noqa: E402
from sweep.hydra_config import compose_run  # noqa: E402
from sweep.kernels import modes, torchnet  # noqa: E402
from sweep.spec import SpecError  # noqa: E402
from tests.conftest import MNIST_DIR, REPO  # noqa: E402

MODES = torchnet.TORCH_MODES


@functools.cache
def trained(model: str = "small_cnn", *overrides: str) -> tuple[torchnet.TorchNetwork, object, object]:
    """A torch model trained a few epochs on digits (val 10 %), its kernel network and data."""
    spec = compose_run([f"model={model}", "model.epochs=3", "dataset.val_fraction=0.1", *overrides])
    data = load_dataset(**spec.dataset.loader_params())
    module, classes, _ = torch_models.train_module(spec.model, data.X_train, data.y_train, (8, 8), 0, 1)
    sites = [str(s) for s in torch_models.unit_sites(spec.model)]
    return torch_models.network_from_module(module, sites, (8, 8), classes), module, data


def assert_equal_to_oracle(got: dict, expected: dict, rtol: float = 1e-9) -> None:
    """Every column decided by predictions equal; losses to rounding (``rtol``)."""
    for column in ("layer", "unit", "n_samples", "accuracy_base", "accuracy", "effect", "broken", "fixed",
                   "p_mcnemar"):
        np.testing.assert_array_equal(got[column], expected[column], err_msg=column)
    np.testing.assert_array_equal(np.stack(got["class_effect"]), np.stack(expected["class_effect"]))
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=rtol)
    np.testing.assert_allclose(got["loss_base"], expected["loss_base"], rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_every_unit_of_small_cnn_equals_the_hooked_oracle(mode: str) -> None:
    net, _, data = trained()
    assert net.widths == (8, 16, 32)
    for X, y in ((data.X_test, data.y_test), (data.X_val, data.y_val)):
        base = torchnet.prepare_torch(net, X, y)
        changed = 0
        for layer, width in enumerate(net.widths):
            units = np.arange(width)
            got = torchnet.ablate_torch_units(net, X, y, layer, units, mode, data.X_train, base=base)
            expected = torchnet.hooked_unit_outcomes(net, X, y, layer, units, mode, data.X_train)
            assert_equal_to_oracle(got, expected)
            changed += int((got["broken"] + got["fixed"]).sum())
        assert changed > 0  # the ablations do change predictions


FLOAT32_NETS = {"small_cnn": ("small_cnn",),
                "lenet_like": ("torch", "model.factory=tests.torch_nets:lenet_like", "model.sites=['1','4','8','10']")}


@pytest.mark.parametrize("model", FLOAT32_NETS)
@pytest.mark.parametrize("mode", MODES)
def test_float32_path_settles_to_the_float64_oracle_on_every_unit(model: str, mode: str) -> None:
    net, _, data = trained(*FLOAT32_NETS[model])
    X, y = data.X_test, data.y_test
    base = torchnet.prepare_torch(net, X, y, "float32")
    assert base.x_run.dtype == next(base.module.parameters()).dtype == torch.float32
    for layer, width in enumerate(net.widths):
        units = np.arange(width)
        got = torchnet.ablate_torch_units(net, X, y, layer, units, mode, data.X_train, base=base)
        assert_equal_to_oracle(got, torchnet.hooked_unit_outcomes(net, X, y, layer, units, mode, data.X_train),
                               rtol=1e-5)


@pytest.mark.parametrize("model", FLOAT32_NETS)
def test_float32_logits_of_every_ablation_are_far_inside_the_tolerance(model: str) -> None:
    """The measured rounding of the float32 hooked forward against the float64 one, relative to
    ``1 + max |logit|``, over every unit and mode: at most a hundredth of the tolerance (so a
    top-two gap, off by at most twice that, settles on the right side)."""
    net, _, data = trained(*FLOAT32_NETS[model])
    base = torchnet.prepare_torch(net, data.X_test, data.y_test, "float32")
    worst = 0.0
    for mode in MODES:
        for layer, width in enumerate(net.widths):
            values = torchnet.site_values(net, mode, data.X_train, layer, len(data.y_test))
            exact = torchnet.hooked_logits(net, base.x, layer, range(width), values)
            rounded = torchnet.hooked_logits(net, base.x_run, layer, range(width), values.float(), base.module)
            error = (rounded.double() - exact).abs().amax(dim=-1) / (1 + exact.abs().amax(dim=-1))
            worst = max(worst, float(error.max()))
    assert 0 < worst < base.tolerance / 100


def near_tie_network(net: torchnet.TorchNetwork) -> torchnet.TorchNetwork:
    """``net`` with class 1's output weights made class 0's and its bias 1e-9 above: wherever
    classes 0 and 1 lead, float64 decides for 1 and float32 (which rounds the bias difference
    away) sees a tie."""
    module = torch_models.network_from_module(net.module, [str(s) for s in net.sites], (8, 8), net.classes).module
    with torch.no_grad():
        module.fc2.weight[1] = module.fc2.weight[0]
        module.fc2.bias[1] = module.fc2.bias[0] + 1e-9
    return torchnet.TorchNetwork(module, net.sites, net.widths, net.image_shape, net.classes)


def test_float32_rows_within_rounding_of_a_tie_are_resettled_in_float64() -> None:
    net, _, data = trained()
    net = near_tie_network(net)
    X, y = data.X_test, data.y_test
    base = torchnet.prepare_torch(net, X, y, "float32")
    fan_ins = 1 * 9 + 8 * 9 + 64 + 32  # conv1, conv2 (3x3 kernels), fc1, fc2
    assert torchnet.float32_tolerance(base.module) == 16 * 2**-24 * (1 + fan_ins)  # about 1.7e-4
    unsettled = torchnet.prepare_torch(net, X, y, "float32")
    unsettled.tolerance = 0.0  # float32 decisions kept: the near-ties go wrong
    wrong = 0
    for layer, width in enumerate(net.widths):
        units = np.arange(width)
        expected = torchnet.hooked_unit_outcomes(net, X, y, layer, units, "zero")
        got = torchnet.ablate_torch_units(net, X, y, layer, units, "zero", base=base)
        assert_equal_to_oracle(got, expected, rtol=1e-5)
        rough = torchnet.ablate_torch_units(net, X, y, layer, units, "zero", base=unsettled)
        wrong += int(np.sum(rough["accuracy"] != expected["accuracy"]))
    assert wrong > 0 and base.resettled > unsettled.resettled


def test_precision_auto_is_float64_on_cpu_and_unknown_precisions_are_one_line() -> None:
    net, _, data = trained()
    assert torchnet.resolve_precision("auto", net.module) == "float64"
    assert torchnet.prepare_torch(net, data.X_test, data.y_test, "auto").x_run.dtype == torch.float64
    with pytest.raises(ValueError, match=r"^unknown precision 'half'; expected one of auto, float64, float32$"):
        torchnet.prepare_torch(net, data.X_test, data.y_test, "half")
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with torchnet._ieee_float32():  # TF32 would round float32 products to 10 bits on a GPU
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def donor_values(net: torchnet.TorchNetwork, reference: np.ndarray, n: int, seed: int, draw: int) -> list:
    """Each site's output on the donor image of each of ``n`` measured images (its own plain
    forward of ``reference[resample_rows(seed, draw, n, n_ref)]``): ``resample``'s values."""
    donors = modes.resample_rows(seed, draw, n, len(reference))
    _, outputs = torchnet.site_outputs(net.module, net.images(reference[donors]), net.sites)
    return [o.movedim(s.axis, 1) for s, o in zip(net.sites, outputs)]


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_resample_gives_each_image_its_donors_map_and_equals_the_hooked_oracle(precision: str) -> None:
    net, _, data = trained()
    X, y, reference = data.X_test, data.y_test, data.X_val
    base = torchnet.prepare_torch(net, X, y, precision)
    pool = torchnet.mode_values(net, "resample", reference)
    assert [tuple(p.shape) for p in pool] == [(len(reference), 8, 8, 8), (len(reference), 16, 4, 4),
                                              (len(reference), 32)]
    for draw in (0, 1):
        donors = donor_values(net, reference, len(y), 5, draw)
        drawn = modes.drawn_values(pool, "resample", len(y), 5, draw)
        changed = 0
        for layer, width in enumerate(net.widths):
            torch.testing.assert_close(drawn[layer], donors[layer], rtol=1e-12, atol=1e-12)  # batch rounding
            units = np.arange(width)
            got = torchnet.ablate_torch_units(net, X, y, layer, units, "resample", base=base, values=drawn[layer])
            expected = torchnet.hooked_unit_outcomes(net, X, y, layer, units, "resample", values=donors[layer])
            assert_equal_to_oracle(got, expected, rtol=1e-9 if precision == "float64" else 1e-5)
            changed += int((got["broken"] + got["fixed"]).sum())
        assert changed > 0


def test_peak_holds_each_position_of_a_channel_at_the_mode_of_its_outputs() -> None:
    net, _, data = trained()
    reference = data.X_val
    peaks = torchnet.mode_values(net, "peak", reference)
    assert [tuple(p.shape) for p in peaks] == [(8, 8, 8), (16, 4, 4), (32,)]
    _, outputs = torchnet.site_outputs(net.module, net.images(reference), net.sites)
    conv = outputs[1].numpy()  # act2, (n_ref, 16, 4, 4)
    for channel, row, col in ((0, 0, 0), (5, 2, 3), (15, 3, 1)):
        assert peaks[1][channel, row, col] == modes.peak_value(conv[:, channel, row, col])
    silent = (conv == 0).mean(axis=0) >= 0.75  # mostly silent ReLU positions peak at 0
    assert silent.any() and (peaks[1].numpy()[silent] == 0).all()
    assert (peaks[1] != torchnet.mode_values(net, "mean", reference)[1]).any()


def test_small_chunks_and_plain_resume_give_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    net, _, data = trained()
    X, y = data.X_test, data.y_test
    full = torchnet.ablate_torch_units(net, X, y, 1, np.arange(16), "mean", data.X_train)
    tiny = torchnet.ablate_torch_units(net, X, y, 1, np.arange(16), "mean", data.X_train, chunk_elements=1)
    monkeypatch.setattr(torchnet, "_linear_after", lambda base, i: None)  # no single-channel shortcut
    plain = torchnet.ablate_torch_units(net, X, y, 1, np.arange(16), "mean", data.X_train, chunk_elements=10**5)
    for other in (tiny, plain):
        np.testing.assert_array_equal(full["accuracy"], other["accuracy"])
        np.testing.assert_allclose(full["loss"], other["loss"], rtol=1e-9)


def test_zero_mode_equals_the_filter_and_bias_set_to_zero() -> None:
    """The paper's removal generalised: a hook holding a ReLU site's unit at 0 is the module
    with the unit's filter (conv) or incoming weights (linear) and bias zeroed."""
    net, _, data = trained()
    x = net.images(data.X_test)
    values = torchnet.mode_values(net, "zero")
    for layer, (weights, unit) in enumerate((("conv1", 5), ("conv2", 11), ("fc1", 20))):
        edited = torch_models.network_from_module(net.module, ["act1"], (8, 8), net.classes).module
        with torch.no_grad():
            getattr(edited, weights).weight[unit] = 0.0
            getattr(edited, weights).bias[unit] = 0.0
            expected = edited(x)
        hooked = torchnet.hooked_logits(net, x, layer, [unit], values[layer])[0]
        torch.testing.assert_close(hooked, expected, rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_a_user_network_that_is_not_a_chain(mode: str) -> None:
    net, _, data = trained("torch", "model.factory=tests.torch_nets:branchy", "model.sites=[act,hidden]",
                           "model.learning_rate_init=0.01")
    assert net.widths == (4, 16)
    for layer, width in enumerate(net.widths):
        got = torchnet.ablate_torch_units(net, data.X_test, data.y_test, layer, np.arange(width), mode, data.X_train)
        expected = torchnet.hooked_unit_outcomes(net, data.X_test, data.y_test, layer, np.arange(width), mode,
                                                 data.X_train)
        assert_equal_to_oracle(got, expected)
        got = torchnet.ablate_torch_units(net, data.X_test, data.y_test, layer, np.arange(width), mode, data.X_train,
                                          precision="float32")  # the batched hooked forward of a float32 copy
        assert_equal_to_oracle(got, expected, rtol=1e-5)


def test_zero_at_a_tanh_site_is_tanh_of_zero_and_mean_is_the_reference_mean() -> None:
    net, module, data = trained("torch", "model.factory=tests.torch_nets:sequential_tanh", "model.sites=['2']")
    assert net.widths == (12,)
    assert torch.equal(torchnet.mode_values(net, "zero")[0], torch.zeros(12, dtype=torch.float64))
    with torch.no_grad():
        hidden = module[2](module[1](module[0](torch.tensor(data.X_train[:50], dtype=torch.float64).float())))
    np.testing.assert_allclose(torchnet.mode_values(net, "mean", data.X_train[:50])[0].numpy(),
                               hidden.double().mean(dim=0).numpy(), rtol=1e-5)
    got = torchnet.ablate_torch_units(net, data.X_test, data.y_test, 0, np.arange(12), "remove")
    assert_equal_to_oracle(got, torchnet.hooked_unit_outcomes(net, data.X_test, data.y_test, 0, np.arange(12),
                                                               "remove"))


def test_training_is_deterministic_and_the_artifact_loads_without_pickle(tmp_path: Path) -> None:
    spec = compose_run(["model=small_cnn", "model.epochs=2"])
    data = load_dataset(**spec.dataset.loader_params())
    splits = {"train": (data.X_train[:300], data.y_train[:300]), "val": (data.X_val, data.y_val),
              "test": (data.X_test, data.y_test)}
    first = torch_models.train_and_save(spec.model, spec.dataset, splits, 3, str(tmp_path / "a/model.safetensors"), 1)
    second = torch_models.train_and_save(spec.model, spec.dataset, splits, 3, str(tmp_path / "b/model.safetensors"), 1)
    assert first["sha256"] == second["sha256"]
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()
    meta = json.loads((tmp_path / "a/model.json").read_text())
    assert meta["sites"] == ["act1", "act2", "act3"] and meta["hidden_sizes"] == [8, 16, 32]
    assert meta["factory"] == "sweep.data.torch_models:small_cnn" and len(meta["loss_curve"]) == 2
    module = torch_models.load_module(str(tmp_path / "a/model.safetensors"))
    assert not module.training
    with torch.no_grad():
        logits = module.double()(torchnet.as_images(data.X_test, (8, 8)))
    accuracy = np.mean(np.asarray(meta["classes"])[logits.argmax(dim=1).numpy()] == data.y_test)
    assert accuracy == meta["test_accuracy"]


@pytest.mark.parametrize("mode", MODES)
def test_cumulative_curve_equals_hooked_forwards_of_each_prefix(mode: str) -> None:
    from sweep.kernels import cumulative_curve, make_order

    net, _, data = trained()
    order = make_order("random", net, seed=2)
    ks = np.arange(0, len(order) + 1, 7)
    curve = cumulative_curve(net, data.X_test, data.y_test, order, ks=ks, mode=mode, reference=data.X_train)
    values = modes.drawn_values(torchnet.mode_values(net, mode, data.X_train), mode, len(data.y_test))  # draw 0 of seed 0
    x = net.images(data.X_test)
    y_index = torchnet.class_index_of(net, data.y_test)
    for i, k in enumerate(ks):
        hooks = [torchnet.submodule(net.module, net.sites[layer].module).register_forward_hook(
                 torchnet._set_hook(net.sites[layer], order[:k][order[:k, 0] == layer, 1], values[layer]))
                 for layer in range(len(net.sites))]
        with torch.no_grad():
            logits = net.module(x)
        for hook in hooks:
            hook.remove()
        pred, loss = torchnet._outcome(logits, y_index)
        assert curve["accuracy"][i] == np.mean(pred == y_index)
        assert curve["loss"][i] == pytest.approx(loss.mean(), rel=1e-12)
    assert curve["accuracy"][-1] < curve["accuracy"][0]


def test_cumulative_rows_of_resample_average_the_draws_of_the_seed() -> None:
    from sweep.kernels import cumulative_curve, cumulative_rows, make_order

    net, _, data = trained()
    X, y = data.X_test, data.y_test
    rows = cumulative_rows(net, X, y, ["random"], mode="resample", seed=1, n_points=6, reference=data.X_val,
                           draws=2, resample_seed=4)
    curves = [cumulative_curve(net, X, y, make_order("random", net, seed=1), ks=rows["k"], mode="resample",
                               reference=data.X_val, draw=d, resample_seed=4) for d in range(2)]
    np.testing.assert_allclose(rows["accuracy"], np.mean([c["accuracy"] for c in curves], axis=0), rtol=0, atol=1e-15)
    assert (rows["draws"] == 2).all() and (rows["resample_seed"] == 4).all()
    assert curves[0]["accuracy"][-1] < curves[0]["accuracy"][0]


def test_unit_statistics_of_channels_are_their_mean_maps() -> None:
    from sweep.kernels.unitstats import UNIT_COLUMNS, unit_statistics

    net, _, data = trained()
    stats = unit_statistics(net, data.X_test, data.y_test)
    assert list(stats) == list(UNIT_COLUMNS) and len(stats["unit"]) == 8 + 16 + 32
    _, outputs = torchnet.site_outputs(net.module, net.images(data.X_test), net.sites)
    conv = outputs[1].mean(dim=(2, 3)).numpy()  # site act2, (n, 16)
    at = stats["layer"] == 1
    np.testing.assert_allclose(stats["mean_activation"][at], conv.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["activation_rate"][at], (conv > 0).mean(axis=0), rtol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=lenet5"], r"model=lenet5 on dataset=digits: LeNet-5 takes 1x28x28 \(MNIST-shaped\) images, not 1x8x8"),
        (["model=small_cnn", "model.sites=[act1,relu9]"], r"unit site 'relu9' is not a module.*act1"),
        (["model=small_cnn", "model.sites=[act1:4]"], r"unit site act1:4: its output has no axis 4"),
        (["model=torch", "model.factory=tests.torch_nets:nothing", "model.sites=[act]"],
         r"model.factory=tests.torch_nets:nothing: tests.torch_nets has no function nothing"),
        (["model=torch", "model.sites=[act]"], r"model.factory is missing"),
        (["model=small_cnn", "ablation=pairs"], r"ablation=pairs does not run on torch models yet; use ablation=neurons"),
        (["model=lenet5", "dataset=mnist", "ablation=pruning", "dataset.val_fraction=0.1"],
         r"^ablation=pruning does not run on torch models yet; use ablation=neurons or cumulative \(model=lenet5\)$"),
        (["model=small_cnn", "ablation=synapses"], r"ablation=synapses does not run on torch models yet"),
        (["model=small_cnn", "ray.num_gpus_per_worker=1"], r"ablates MLPs only"),
        (["model=small_cnn", "ablation.torch_precision=half"],
         r"^ablation.torch_precision='half' is not allowed; choose one of auto, float64, float32$"),
    ],
)
def test_one_line_errors_before_training(overrides: list[str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        compose_run(overrides)


def test_without_torch_sklearn_sweeps_compose_and_torch_models_name_the_extra() -> None:
    """torch hidden from the interpreter (as if not installed): the MLP configuration, the
    pipeline and the report import; a torch model is one line naming the extra."""
    code = (
        "import importlib.abc, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from sweep.hydra_config import compose_run\n"
        "import sweep.run.pipeline, sweep.run.worker, sweep.kinds, analysis.sections, analysis.docs\n"
        "assert compose_run(['model=nn_392']).model.hidden_layer_sizes == [392]\n"
        "try:\n    compose_run(['model=small_cnn'])\nexcept ValueError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert out.stdout.strip() == ("model=small_cnn on dataset=digits: PyTorch is not installed and model=small_cnn "
                                  "needs it; pip install 'ablation-sweep[torch]'")


def test_a_digits_sweep_in_peak_and_resample_in_float32_equals_the_hooked_oracle(tmp_path: Path) -> None:
    """``python -m sweep model=small_cnn 'ablation.modes=[zero,peak,resample]'
    ablation.torch_precision=float32`` (in this process, without Ray): every row's accuracy,
    broken and fixed are the float64 hooked oracle's; a resample row is the mean of its draws'."""
    from sweep.run import pipeline
    from tests.serial_executor import serial_sweeps

    cfg = compose_run([f"paths.results={tmp_path}", "progress=false", "model=small_cnn", "model.epochs=3",
                       "dataset.val_fraction=0.2", "ablation.modes=[zero,peak,resample]", "ablation.resample_draws=2",
                       "ablation.torch_precision=float32", "ablation.splits=[test]"])
    with pytest.MonkeyPatch.context() as patch, serial_sweeps(patch):
        summary = pipeline.run(cfg)
    df = pd.read_parquet(f"{summary.results}/kind=neuron")
    assert len(df) == summary.rows_written == 3 * 56
    manifest = json.loads(Path(summary.results, "_manifest.json").read_text())
    assert manifest["config"]["ablation"]["torch_precision"] == "float32"
    run = manifest["runs"][0]
    data = load_dataset(**run["dataset_params"])
    reference = reference_inputs(data.X_train, data.X_val)
    meta = json.loads(Path(run["model_path"]).with_suffix(".json").read_text())
    net = torch_models.network_from_module(torch_models.load_module(run["model_path"]), meta["sites"], (8, 8),
                                           np.asarray(meta["classes"]))
    X, y = data.X_test, data.y_test
    for mode in ("zero", "peak", "resample"):
        rows = df[df["mode"] == mode].sort_values(["layer", "unit"])
        assert rows["draws"].isna().all() if mode != "resample" else (rows["draws"] == 2).all()
        for layer, width in enumerate(net.widths):
            units, mine = np.arange(width), rows[rows["layer"] == layer]
            if mode == "resample":
                draws = [torchnet.hooked_unit_outcomes(net, X, y, layer, units, mode,
                                                       values=donor_values(net, reference, len(y), 0, d)[layer])
                         for d in range(2)]
                accuracy = np.mean([d["accuracy"] for d in draws], axis=0)
                broken = np.rint(np.mean([d["broken"] for d in draws], axis=0))
            else:
                expected = torchnet.hooked_unit_outcomes(net, X, y, layer, units, mode, reference)
                accuracy, broken = expected["accuracy"], expected["broken"]
            np.testing.assert_allclose(mine["accuracy"].to_numpy(), accuracy, rtol=0, atol=1e-15)
            np.testing.assert_array_equal(mine["broken"].to_numpy(), broken)


@pytest.mark.slow
def test_small_cnn_sweep_rows_equal_a_hooked_forward_of_the_loaded_module(local_ray, run_config) -> None:
    from sweep.run import pipeline

    cfg = run_config("model=small_cnn", "model.epochs=3", "dataset.val_fraction=0.1", "ablation.modes=[zero,mean]")
    summary = pipeline.run(cfg)
    df = pd.read_parquet(f"{summary.results}/kind=neuron")
    assert len(df) == summary.rows_written == 2 * 2 * 56
    manifest = json.loads(Path(summary.results, "_manifest.json").read_text())
    run = manifest["runs"][0]
    assert run["model_path"].endswith("model.safetensors") and run["hidden_sizes"] == [8, 16, 32]
    data = load_dataset(**run["dataset_params"])
    reference = reference_inputs(data.X_train, data.X_val)
    meta = json.loads(Path(run["model_path"]).with_suffix(".json").read_text())
    net = torch_models.network_from_module(torch_models.load_module(run["model_path"]), meta["sites"], (8, 8),
                                           np.asarray(meta["classes"]))
    for mode in ("zero", "mean"):
        rows = df[(df["mode"] == mode) & (df["split"] == "test")].sort_values(["layer", "unit"])
        for layer, width in enumerate(net.widths):
            expected = torchnet.hooked_unit_outcomes(net, data.X_test, data.y_test, layer, np.arange(width), mode,
                                                     reference)
            np.testing.assert_array_equal(rows[rows["layer"] == layer]["accuracy"].to_numpy(), expected["accuracy"])
    assert pipeline.run(cfg).rows_written == 0  # the model and every part are reused


@pytest.mark.slow
def test_every_lenet5_unit_on_mnist_equals_the_hooked_oracle() -> None:
    if not MNIST_DIR.is_dir():
        pytest.skip(f"MNIST files not found in {MNIST_DIR}")
    spec = compose_run(["model=lenet5", "dataset=mnist", f"dataset.data_dir={MNIST_DIR}", "dataset.split=official",
                        "model.epochs=1"])
    data = load_dataset(**spec.dataset.loader_params())
    module, classes, _ = torch_models.train_module(spec.model, data.X_train[:2000], data.y_train[:2000], (28, 28),
                                                   0, 1)
    net = torch_models.network_from_module(module, ["act1", "act2", "act3", "act4"], (28, 28), classes)
    assert sum(net.widths) == 226
    X, y = data.X_test[:100], data.y_test[:100]
    base, base32 = torchnet.prepare_torch(net, X, y), torchnet.prepare_torch(net, X, y, "float32")
    for layer, width in enumerate(net.widths):
        expected = torchnet.hooked_unit_outcomes(net, X, y, layer, np.arange(width), "zero")
        assert_equal_to_oracle(torchnet.ablate_torch_units(net, X, y, layer, np.arange(width), "zero", base=base),
                               expected)
        assert_equal_to_oracle(torchnet.ablate_torch_units(net, X, y, layer, np.arange(width), "zero", base=base32),
                               expected, rtol=1e-5)

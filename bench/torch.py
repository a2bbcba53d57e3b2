"""Benchmark: every unit of LeNet-5 ablated on MNIST's 10,000 test images: the naive hook loop,
Captum's ``LayerFeatureAblation`` and the resumed-forward kernel, in one run.

    pip install '.[bench]'            # torch, safetensors, captum
    python bench/torch.py --data-dir ../shared/data/mnist --out bench/torch.json

Model: LeNet-5 (``model=lenet5``) trained here, seed 0, ``--epochs`` epochs (default 1) on the
60,000 official training images (CPU, deterministic, ``--threads`` threads). All 226 units
(6 + 16 conv channels, 120 + 84 hidden units), mode ``zero``, on the 10,000 official test
images, every method in float64 on CPU (the kernel in float32 too) with ``--threads`` intra-op threads:

- ``naive_s``: :func:`sweep.kernels.torchnet.hooked_unit_outcomes`: per unit a plain forward of
  the whole module with a forward hook holding the unit at 0 (the oracle);
- ``captum_s``: ``captum.attr.LayerFeatureAblation`` per site, one group per unit
  (``layer_mask``), baseline 0, forward = each row's correctness, ``perturbations_per_eval=1``:
  per row ``correct_base - correct_ablated``, from which each unit's accuracy follows;
- ``kernel_s``: :func:`sweep.kernels.torchnet.prepare_torch` once, then
  :func:`~sweep.kernels.torchnet.ablate_torch_units` per site;
- ``kernel_float32_s``: its ``prepare_torch`` and kernel in ``precision="float32"`` (a float32
  copy of the module; rows within :func:`~sweep.kernels.torchnet.float32_tolerance` of a tie
  re-settled by the float64 hooked forward): ``resettled_float32`` such ``(unit, row)`` pairs, ``resettled_float64`` the
  float64 kernel's (within :data:`~sweep.kernels.torchnet.TIE_TOLERANCE`), and
  ``mismatches_float32`` units whose accuracy, broken or fixed count differ from the float64
  kernel's on all rows;
- ``mismatches_*``: units whose ablated accuracy differs from the kernel's (and, for the
  naive loop, whose broken / fixed counts differ), on the baselines' rows.

``--baseline-rows N`` runs the two baselines (and, for the comparison, the kernel again) on
the first N test images only and scales their times by ``rows / N`` (a forward pass costs
time in proportion to its rows): ``baseline_times`` says so.

No GPU was lent to the session that wrote ``bench/torch.json``: CPU figures only
(``gpu`` says so). Results go to ``--out`` (JSON) and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# this file is called torch.py: its folder must not shadow the torch package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=10000, help="test images measured (the first N)")
    parser.add_argument("--train-rows", type=int, default=60000, help="training images (the first N)")
    parser.add_argument("--baseline-rows", type=int, default=None,
                        help="rows the naive loop and Captum run on (the first N; their times scaled to --rows); "
                             "default all")
    parser.add_argument("--no-captum", action="store_true", help="skip Captum (captum_s and its mismatches null)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "torch.json"))
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import torch

    from sweep.data import torch_models
    from sweep.data.datasets import load_dataset
    from sweep.hydra_config import compose_run
    from sweep.kernels import torchnet

    torch.set_num_threads(args.threads)
    spec = compose_run(["model=lenet5", "dataset=mnist", f"dataset.data_dir={args.data_dir}", "dataset.split=official",
                        f"model.epochs={args.epochs}"])
    data = load_dataset(**spec.dataset.loader_params())
    clock = time.perf_counter()
    module, classes, curve = torch_models.train_module(spec.model, data.X_train[: args.train_rows],
                                                       data.y_train[: args.train_rows], (28, 28), 0, args.threads)
    train_s = time.perf_counter() - clock
    sites = [str(s) for s in torch_models.unit_sites(spec.model)]
    net = torch_models.network_from_module(module, sites, (28, 28), classes)
    X, y = data.X_test[: args.rows], data.y_test[: args.rows]

    clock = time.perf_counter()
    base = torchnet.prepare_torch(net, X, y)
    prepare_s = time.perf_counter() - clock
    clock = time.perf_counter()
    full = [torchnet.ablate_torch_units(net, X, y, layer, np.arange(width), "zero", base=base)
            for layer, width in enumerate(net.widths)]
    kernel_s = time.perf_counter() - clock
    clock = time.perf_counter()
    base32 = torchnet.prepare_torch(net, X, y, "float32")
    full32 = [torchnet.ablate_torch_units(net, X, y, layer, np.arange(width), "zero", base=base32)
              for layer, width in enumerate(net.widths)]
    kernel_float32_s = time.perf_counter() - clock

    n_base = min(args.baseline_rows or len(y), len(y))
    X, y = X[:n_base], y[:n_base]  # the baselines' rows; the kernel is run again on them to compare
    base_rows = torchnet.prepare_torch(net, X, y)
    ours = [torchnet.ablate_torch_units(net, X, y, layer, np.arange(width), "zero", base=base_rows)
            for layer, width in enumerate(net.widths)]
    accuracy = np.concatenate([c["accuracy"] for c in ours])
    scale = len(base.y_index) / n_base

    x = net.images(X)
    y_index = torchnet.class_index_of(net, y)
    target = torch.as_tensor(y_index)

    def correct(images: torch.Tensor) -> torch.Tensor:
        return (net.module(images).argmax(dim=1) == target).double()

    captum_s, captum_mismatches, captum_version = None, None, None
    if not args.no_captum:
        import captum
        from captum.attr import LayerFeatureAblation

        clock = time.perf_counter()
        captum_accuracy = []
        for layer, site in enumerate(net.sites):
            layer_module = torchnet.submodule(net.module, site.module)
            shape = [1] * (4 if layer < 2 else 2)
            shape[1] = net.widths[layer]
            mask = torch.arange(net.widths[layer]).reshape(shape)
            with torch.no_grad():
                attribution = LayerFeatureAblation(correct, layer_module).attribute(
                    x, layer_mask=mask, layer_baselines=0.0, perturbations_per_eval=1)
            per_unit = attribution.reshape(len(y), net.widths[layer], -1)[:, :, 0]  # (n, units)
            captum_accuracy.append(float(np.mean(base_rows.pred == y_index)) - per_unit.mean(dim=0).numpy())
        captum_s = (time.perf_counter() - clock) * scale
        captum_mismatches = int(np.sum(np.abs(np.concatenate(captum_accuracy) - accuracy) > 1e-12))
        captum_version = captum.__version__

    clock = time.perf_counter()
    naive = [torchnet.hooked_unit_outcomes(net, X, y, layer, np.arange(width), "zero")
             for layer, width in enumerate(net.widths)]
    naive_s = (time.perf_counter() - clock) * scale
    naive_mismatches = mismatches(naive, ours)
    result = {
        "model": "lenet5", "units": int(sum(net.widths)), "sites": sites, "widths": list(net.widths),
        "rows": int(len(base.y_index)), "baseline_rows": n_base,
        "baseline_times": "measured" if n_base == len(base.y_index) else f"measured on {n_base} rows, scaled x{scale:g}",
        "mode": "zero", "dtype": "float64 (kernel_float32_s: float32)", "device": "cpu", "threads": args.threads,
        "gpu": "not lent: no GPU was lent to this task; CPU figures only",
        "epochs": args.epochs, "train_rows": int(min(args.train_rows, len(data.y_train))), "train_s": train_s, "train_loss": curve,
        "test_accuracy": float(np.mean(base.pred == base.y_index)),
        "prepare_s": prepare_s, "kernel_s": kernel_s, "kernel_total_s": prepare_s + kernel_s,
        "kernel_float32_s": kernel_float32_s, "resettled_float32": base32.resettled,
        "resettled_float64": base.resettled, "mismatches_float32": mismatches(full32, full),
        "captum_s": captum_s, "naive_s": naive_s,
        "ratio_captum": None if captum_s is None else captum_s / (prepare_s + kernel_s),
        "ratio_naive": naive_s / (prepare_s + kernel_s),
        "mismatches_captum": captum_mismatches,
        "mismatches_naive": naive_mismatches,
        "units_changing_predictions": int(sum(int(np.sum(o["broken"] + o["fixed"] > 0)) for o in full)),
        "accuracy_drop_pp_max_by_site": [float(100 * np.max(-o["effect"])) for o in full],
        "load_average": list(os.getloadavg()),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "captum": captum_version,
                     "numpy": np.__version__},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def mismatches(tables: list[dict], reference: list[dict]) -> int:
    """Units (over every site's table) whose accuracy, broken or fixed count differ from ``reference``'s."""
    return sum(int(np.sum((t["accuracy"] != r["accuracy"]) | (t["broken"] != r["broken"]) | (t["fixed"] != r["fixed"])))
               for t, r in zip(tables, reference))


if __name__ == "__main__":
    main()

"""PyTorch models: the architectures (LeNet-5, a small CNN, any user factory), seeded training,
and ``safetensors`` + JSON artifacts (never pickle).

torch is an optional extra (``pip install 'ablation-sweep[torch]'``): this module imports it
only when a torch model is checked, trained or loaded, and :func:`require_torch` turns its
absence into one line naming the extra. :data:`ARCHITECTURES` is the one table of torch
models; ``model.architecture=torch`` takes ``model.factory=package.module:function`` and
``model.sites``. A factory is called as ``factory(input_shape, n_classes)`` with
``input_shape = (C, H, W)`` and returns an ``nn.Module`` mapping ``(n, C, H, W)`` float
images to ``(n, n_classes)`` logits.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from sweep.kernels.torchnet import TorchNetwork, UnitSite, as_images, site_widths
from sweep.results import storage

ModelSettings = Any
"""A :class:`sweep.spec.ModelSpec` (not imported here: ``sweep.spec`` reads this module's
:data:`ARCHITECTURES` and :func:`check_model`, and importing it back, even for annotations,
would make a circle)."""

Progress = Callable[[int, float], None]
"""``progress(epoch, mean training loss)``: called after each epoch."""

FORMAT_VERSION = 1
EXTRA = "pip install 'ablation-sweep[torch]'"
"""How to get what a torch model needs."""


@dataclass(frozen=True)
class Architecture:
    """One torch model of ``model.architecture``.

    Attributes
    ----------
    factory : str — ``package.module:function`` (empty: ``model.factory`` names it)
    sites : tuple of str — default unit sites (:class:`~sweep.kernels.torchnet.UnitSite` text)
    description : str
    """

    factory: str
    sites: tuple[str, ...]
    description: str


ARCHITECTURES: dict[str, Architecture] = {
    "small_cnn": Architecture(
        "sweep.data.torch_models:small_cnn", ("act1", "act2", "act3"),
        "conv 3x3 (8) - ReLU - pool 2 - conv 3x3 (16) - ReLU - pool 2 - linear 32 - ReLU - linear; "
        "any CxHxW with H, W divisible by 4 (digits' 8x8: 56 units)",
    ),
    "lenet5": Architecture(
        "sweep.data.torch_models:lenet5", ("act1", "act2", "act3", "act4"),
        "LeNet-5 on 1x28x28 images: conv 5x5 (6, padding 2) - ReLU - pool 2 - conv 5x5 (16) - ReLU - "
        "pool 2 - linear 120 - ReLU - linear 84 - ReLU - linear (226 units)",
    ),
    "torch": Architecture("", (), "any network: model.factory=package.module:function and model.sites"),
}
"""Torch models by ``model.architecture`` (``mlp``, scikit-learn's, is not one of them)."""


def require_torch(what: str) -> Any:
    """The ``torch`` module.

    Raises
    ------
    ValueError
        If torch is not installed: one line naming ``what`` needs it and the extra.
    """
    try:
        return importlib.import_module("torch")
    except ImportError as error:
        raise ValueError(f"PyTorch is not installed and {what} needs it; {EXTRA}") from error


def small_cnn(input_shape: tuple[int, int, int], n_classes: int) -> Any:
    """A small convolutional net for small images (:data:`ARCHITECTURES` ``small_cnn``).

    Raises
    ------
    ValueError
        If the image height or width is not divisible by 4.
    """
    nn = require_torch("model=small_cnn").nn
    channels, height, width = input_shape
    if height % 4 or width % 4:
        raise ValueError(f"small_cnn needs image sides divisible by 4, not {height}x{width}")
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(channels, 8, 3, padding=1)), ("act1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1)), ("act2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(16 * (height // 4) * (width // 4), 32)), ("act3", nn.ReLU()),
        ("fc2", nn.Linear(32, n_classes)),
    ]))


def lenet5(input_shape: tuple[int, int, int], n_classes: int) -> Any:
    """The classic LeNet-5 with ReLU and max-pooling (:data:`ARCHITECTURES` ``lenet5``).

    Raises
    ------
    ValueError
        Unless the images are 1x28x28 (MNIST-shaped).
    """
    nn = require_torch("model=lenet5").nn
    if tuple(input_shape) != (1, 28, 28):
        shape = "x".join(map(str, input_shape))
        raise ValueError(f"LeNet-5 takes 1x28x28 (MNIST-shaped) images, not {shape}; use dataset=mnist "
                         "(or model=small_cnn for small images)")
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 6, 5, padding=2)), ("act1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("act2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(400, 120)), ("act3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)), ("act4", nn.ReLU()), ("fc3", nn.Linear(84, n_classes)),
    ]))


def channels_first(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` of a dataset's row shape (``(H, W)`` grey or ``(H, W, C)`` colour)."""
    return (1, *image_shape) if len(image_shape) == 2 else (image_shape[2], image_shape[0], image_shape[1])


def factory_of(architecture: str, factory: str | None) -> Callable[..., Any]:
    """The function that builds ``architecture`` (``torch``: the ``factory`` text).

    Raises
    ------
    ValueError
        For a factory that is not ``package.module:function``, or names a module or
        function that does not exist.
    """
    text = ARCHITECTURES[architecture].factory or factory or ""
    if not text:
        raise ValueError("model.factory is missing; set model.factory=package.module:function")
    module_name, _, function = text.partition(":")
    if not module_name or not function:
        raise ValueError(f"model.factory={factory!r} is invalid; expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"model.factory={text}: cannot import {module_name} ({error})") from error
    if not callable(getattr(module, function, None)):
        raise ValueError(f"model.factory={text}: {module_name} has no function {function}")
    return getattr(module, function)


def unit_sites(model: ModelSettings) -> tuple[UnitSite, ...]:
    """``model.sites``, or the architecture's default sites.

    Raises
    ------
    ValueError
        If there are none (``model=torch`` without ``model.sites``).
    """
    texts = model.sites if model.sites else ARCHITECTURES[model.architecture].sites
    if not texts:
        raise ValueError("model.sites is empty; name the modules whose outputs hold units, "
                         "e.g. model.sites=[act1,act2] (module names, optionally name:axis)")
    return tuple(UnitSite.parse(t) for t in texts)


def build_module(model: ModelSettings, image_shape: tuple[int, ...], n_classes: int) -> Any:
    """A freshly initialised module of ``model`` for images of ``image_shape`` (float32).

    Raises
    ------
    ValueError
        From :func:`require_torch`, :func:`factory_of` or the factory itself (an image shape
        it does not take).
    """
    require_torch(f"model={model.name}")
    module = factory_of(model.architecture, model.factory)(channels_first(tuple(image_shape)), n_classes)
    return module.float()


def check_model(model: ModelSettings, image_shape: tuple[int, ...], n_classes: int) -> tuple[int, ...]:
    """Every unit site's width, from a module built for the dataset (before any training).

    Raises
    ------
    ValueError
        One line: torch missing, a bad factory, an architecture that does not fit the images,
        a site that does not exist.
    """
    module = build_module(model, image_shape, n_classes)
    return site_widths(module, unit_sites(model), image_shape)


def batch_size(model: ModelSettings, n: int) -> int:
    """``model.batch_size``, ``auto`` meaning ``min(200, n)`` as in scikit-learn."""
    return min(200, n) if model.batch_size == "auto" else int(model.batch_size)


def train_module(
    model: ModelSettings, X: np.ndarray, y: np.ndarray, image_shape: tuple[int, ...], seed: int, threads: int,
    progress: Progress | None = None, device: str = "cpu",
) -> tuple[Any, np.ndarray, list[float]]:
    """Train ``model`` on rows ``X`` (n, n_features) with labels ``y`` (n,), seeded.

    On CPU the run is deterministic (``torch.use_deterministic_algorithms``, ``threads``
    intra-op threads, a seeded generator for initialisation and shuffling): the same seed gives
    the same weights. Cross-entropy, ``solver`` adam (``learning_rate_init``, ``beta_1``,
    ``beta_2``, ``epsilon``) or sgd (``momentum``, ``nesterovs_momentum``), ``alpha`` as weight
    decay, ``epochs`` passes over the data in ``batch_size`` batches.

    Returns
    -------
    (module, classes, loss_curve) — the module in eval mode on CPU, the sorted class labels and
    the mean training loss of each epoch
    """
    torch = require_torch(f"model={model.name}")
    classes = np.unique(y)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads_before = torch.get_num_threads()
    torch.use_deterministic_algorithms(device == "cpu")  # CUDA would need CUBLAS_WORKSPACE_CONFIG
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        module = build_module(model, image_shape, len(classes)).to(device)
        x = as_images(X, image_shape).float()
        target = torch.as_tensor(np.searchsorted(classes, y))
        if model.solver == "sgd":
            optimiser = torch.optim.SGD(module.parameters(), lr=model.learning_rate_init, momentum=model.momentum,
                                        nesterov=model.nesterovs_momentum and model.momentum > 0,
                                        weight_decay=model.alpha)
        else:
            optimiser = torch.optim.Adam(module.parameters(), lr=model.learning_rate_init,
                                         betas=(model.beta_1, model.beta_2), eps=model.epsilon,
                                         weight_decay=model.alpha)
        generator = torch.Generator().manual_seed(seed)
        size = batch_size(model, len(y))
        curve: list[float] = []
        module.train()
        for epoch in range(model.epochs):
            order = torch.randperm(len(y), generator=generator) if model.shuffle else torch.arange(len(y))
            total = 0.0
            for lo in range(0, len(y), size):
                at = order[lo : lo + size]
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(module(x[at].to(device)), target[at].to(device))
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(at)
            curve.append(total / len(y))
            if progress is not None:
                progress(epoch + 1, curve[-1])
        return module.cpu().eval(), classes, curve
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads_before)


def _accuracy(module: Any, X: np.ndarray, y: np.ndarray, image_shape: tuple[int, ...], classes: np.ndarray) -> float:
    torch = require_torch("a torch model")
    with torch.no_grad():
        logits = module.double()(as_images(X, image_shape))
    module.float()
    return float(np.mean(classes[logits.argmax(dim=1).numpy()] == y))


def _weights_blob(module: Any) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous() for k, v in module.state_dict().items()})


def meta_path(weights_path: str) -> str:
    """The JSON beside a ``model.safetensors``."""
    return weights_path[: -len(".safetensors")] + ".json"


def train_and_save(
    model: ModelSettings, dataset: Any, splits: dict[str, tuple[np.ndarray, np.ndarray]],
    seed: int, path: str, threads: int, progress: Progress | None = None, device: str = "cpu",
) -> dict[str, Any]:
    """Train one torch model on ``splits["train"]`` and write ``path`` (``.safetensors``) then
    its JSON (architecture, factory, unit sites and widths, hyper-parameters, classes, image
    shape, accuracies, package versions, the weights' sha256), each atomically; returns the
    JSON's content."""
    from sweep.data.datasets import image_shape as dataset_image_shape

    torch = require_torch(f"model={model.name}")
    shape = dataset_image_shape(dataset.name)
    start = time.perf_counter()
    module, classes, curve = train_module(model, *splits["train"], shape, seed, threads, progress, device)
    seconds = time.perf_counter() - start
    sites = unit_sites(model)
    accuracy = {name: _accuracy(module, X, y, shape, classes) if len(y) else None for name, (X, y) in splits.items()}
    blob = _weights_blob(module)
    import safetensors

    meta = {
        "format": FORMAT_VERSION, "framework": "torch", "model": model.name, "dataset": dataset.tag, "seed": seed,
        "architecture": model.architecture, "factory": factory_text(model),
        "sites": [str(s) for s in sites], "hidden_sizes": list(site_widths(module, sites, shape)),
        "image_shape": list(shape), "classes": classes.tolist(), "model_config": asdict(model),
        "dataset_params": dataset.loader_params(), "train_accuracy": accuracy["train"],
        "val_accuracy": accuracy["val"], "test_accuracy": accuracy["test"], "train_seconds": seconds,
        "n_train": int(len(splits["train"][1])), "n_iter": model.epochs, "loss_curve": curve, "device": device,
        "versions": {"torch": torch.__version__, "safetensors": safetensors.__version__},
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    fs, fpath = storage.resolve(path)
    storage.write_bytes_atomic(fs, fpath, blob)
    storage.write_bytes_atomic(fs, meta_path(fpath), json.dumps(meta, indent=2, default=str).encode())
    return meta


def factory_text(model: ModelSettings) -> str:
    """``package.module:function`` that builds ``model``."""
    return ARCHITECTURES[model.architecture].factory or str(model.factory)


def load_module(path: str) -> Any:
    """The trained ``nn.Module`` saved at ``path`` (``.safetensors`` + ``.json``), in eval
    mode, float32 on CPU: anyone can check a row with a plain forward (no pickle is read).

    Raises
    ------
    ValueError
        If torch is missing, or the factory named in the JSON cannot be imported.
    """
    torch = require_torch("loading a torch model")
    from safetensors.torch import load

    fs, fpath = storage.resolve(path)
    meta = json.loads(storage.read_bytes(fs, meta_path(fpath)))
    build = factory_of(meta["architecture"], meta["factory"])
    with torch.random.fork_rng():
        module = build(channels_first(tuple(meta["image_shape"])), len(meta["classes"])).float()
    module.load_state_dict(load(storage.read_bytes(fs, fpath)))
    return module.eval()


def load_torch_network(path: str) -> TorchNetwork:
    """The saved model as the kernels' :class:`~sweep.kernels.torchnet.TorchNetwork` (float64)."""
    fs, fpath = storage.resolve(path)
    meta = json.loads(storage.read_bytes(fs, meta_path(fpath)))
    module = load_module(path).double()
    return TorchNetwork(module, tuple(UnitSite.parse(s) for s in meta["sites"]), tuple(meta["hidden_sizes"]),
                        tuple(meta["image_shape"]), np.asarray(meta["classes"]))


def network_from_module(module: Any, sites: list[str], image_shape: tuple[int, ...], classes: np.ndarray) -> TorchNetwork:
    """A :class:`~sweep.kernels.torchnet.TorchNetwork` of a module in memory (a float64 copy)."""
    import copy

    double = copy.deepcopy(module).double().eval()
    parsed = tuple(UnitSite.parse(s) for s in sites)
    return TorchNetwork(double, parsed, site_widths(double, parsed, image_shape), tuple(image_shape), np.asarray(classes))


"""Any PyTorch network's units ablated exactly: unit sites, modes, the hooked oracle and the
resumed-forward kernel.

A *unit site* is a named submodule whose output holds units along an axis (1: the channels of
a convolution's ``(n, C, H, W)`` output, the features of a linear layer's ``(n, F)``), in the
spirit of TransformerLens hook names. Ablating unit ``u`` of a site replaces the slice
``[:, u]`` of that output by its mode's value (:data:`TORCH_MODE_VALUES`, read from
:data:`sweep.kernels.modes.NEURON_MODES`' names):

- ``zero``: the output the unit has once its filter (or incoming weights) and bias are 0: 0 at
  a convolution or linear site, ``act(0)`` at a parameter-free activation site placed right
  after one (the paper's removal, generalised);
- ``remove``: 0 (the output forced to 0);
- ``mean``: the unit's mean output map over the reference inputs (per position);
- ``peak``: the mode of the unit's outputs over the reference inputs, per position of its map
  (:func:`sweep.kernels.modes.peak_value` of each position's outputs, as ``mean`` per position);
- ``resample``: per measured image, the unit's whole output map on a reference image drawn at
  random, row ``resample_rows(seed, draw, n, n_ref)[i]`` for image ``i`` (the same donor for
  every unit: :func:`sweep.kernels.modes.drawn_values` of the pool :func:`mode_values` gives).

A constant mode's values of a site have shape ``(width, *unit_shape)``; a per-image mode's
drawn values ``(n, width, *unit_shape)``, one more axis than the unit's slice (what
:func:`unit_value` tells apart).

The oracle (:func:`hooked_unit_outcomes`) is a plain forward of the whole module with a forward
hook that applies the mode, one unit at a time. The kernel (:func:`ablate_torch_units`) runs
the module once per split, caches every site's output, and for a chunk of units resumes the
forward pass after the site (the module must be an ``nn.Sequential`` chain whose direct
children include the sites; other modules take the batched hooked forward). When the modules
between the site and the next convolution or linear layer act on each channel alone (ReLU,
pooling, flatten, ...), the change of that layer's output is one single-channel convolution
(or one block of a matrix product) of the unit's change, on the rows that change; the rest of
the chain runs from there on those rows only. Decisions in float64 (the module is run in
float64 on CPU); rows whose top-two logit gap is within :data:`TIE_TOLERANCE` are re-settled
by the plain hooked forward, so predictions equal the oracle's. In ``precision="float32"``
(:data:`PRECISIONS`; ``auto``: float32 on CUDA, :func:`resolve_precision`) the cached outputs
and the resumed passes run on a float32 copy of the module, and every ablated row whose
top-two gap is within :func:`float32_tolerance` is re-settled by the float64 plain hooked
forward: the same predictions, losses to float32 rounding.

Pure numerics: imports torch only when called (torch is an optional extra), nothing of sweep
outside the kernels, no I/O.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweep.kernels.engine import Flips
from sweep.kernels.metrics import ablation_metrics, sample_log_loss
from sweep.kernels.modes import NEURON_MODES, drawn_values, peak_value

TIE_TOLERANCE = 1e-9
"""Relative top-2 logit gap (``gap < tol * (1 + max |logit|)``) under which a row's ablated
prediction is recomputed by the plain hooked forward (float64)."""

PRECISIONS = ("auto", "float64", "float32")
"""The kernel's arithmetic: ``float64`` (every decision in float64), ``float32`` (float32 passes,
near-ties re-settled in float64), ``auto`` (float32 when the module is on a CUDA device)."""

FLOAT32_UNIT_ROUNDOFF = 2.0**-24
"""float32's unit roundoff ``u`` (half its machine epsilon)."""

FLOAT32_SAFETY = 16.0
"""The factor :func:`float32_tolerance` allows for the sums' terms being larger than the logits."""

DEFAULT_CHUNK_ELEMENTS = 2**24
"""Largest number of float64 elements of one resumed batch (units x rows x site size)."""

CHANNELWISE = ("ReLU", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "ELU", "SiLU", "Identity", "Dropout",
               "MaxPool2d", "AvgPool2d", "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
"""Module classes that act on each channel alone (the change of one unit stays in its channel)."""

TORCH_MODES: tuple[str, ...] = tuple(NEURON_MODES)
"""The neuron modes a torch unit can be ablated in: every one of
:data:`sweep.kernels.modes.NEURON_MODES`, generalised as the module docstring says."""

REFERENCE_BATCH = 4096
"""Reference rows per forward pass when a mode's values are read from the reference inputs."""


@dataclass(frozen=True)
class UnitSite:
    """Where units live: the output of submodule ``module``, units along ``axis``.

    Attributes
    ----------
    module : str — a name of ``nn.Module.named_modules()``, e.g. ``"act1"`` or ``"features.3"``
    axis : int — the output axis that holds the units (1: channels or features)
    """

    module: str
    axis: int = 1

    @classmethod
    def parse(cls, text: str) -> UnitSite:
        """``"name"`` or ``"name:axis"``.

        Raises
        ------
        ValueError
            For an axis that is not an integer of at least 1.
        """
        name, _, axis = str(text).partition(":")
        if axis and not (axis.isdigit() and int(axis) >= 1):
            raise ValueError(f"unit site {text!r}: the axis after ':' must be an integer >= 1 (the batch is axis 0)")
        return cls(name, int(axis) if axis else 1)

    def __str__(self) -> str:
        return self.module if self.axis == 1 else f"{self.module}:{self.axis}"


@dataclass(frozen=True)
class TorchNetwork:
    """A trained torch classifier and its unit sites, as the kernels use it.

    Attributes
    ----------
    module : torch.nn.Module — in eval mode, float64, on CPU
    sites : tuple of UnitSite — the "layers" of result rows (``layer = i`` is ``sites[i]``)
    widths : tuple of int — units of each site
    image_shape : tuple of int — what one row of ``X`` reshapes to (the dataset's, C order:
        ``(H, W)`` grey, ``(H, W, C)`` colour)
    classes : ndarray of shape (n_classes,) — output ``i`` means ``classes[i]``
    """

    module: Any
    sites: tuple[UnitSite, ...]
    widths: tuple[int, ...]
    image_shape: tuple[int, ...]
    classes: np.ndarray

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """Units of each site (the counterpart of an MLP's hidden layer widths)."""
        return self.widths

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """``(n_features, *widths, n_classes)``."""
        return (int(np.prod(self.image_shape)), *self.widths, len(self.classes))

    def images(self, X: Any) -> Any:
        """Rows ``X`` (n, n_features) as a float64 torch batch ``(n, C, H, W)``."""
        return as_images(X, self.image_shape)


def as_images(X: Any, image_shape: Sequence[int]) -> Any:
    """Flat rows ``(n, prod(image_shape))`` as a float64 torch batch ``(n, C, H, W)``: grey
    images get one channel, ``(H, W, C)`` colour rows are moved channel-first."""
    import torch

    x = torch.from_numpy(np.array(X, dtype=np.float64)) if not isinstance(X, torch.Tensor) else X.double()
    x = x.reshape(-1, *image_shape)
    return x[:, None] if len(image_shape) == 2 else x.permute(0, 3, 1, 2).contiguous()


def submodule(module: Any, name: str) -> Any:
    """The submodule called ``name``.

    Raises
    ------
    ValueError
        If there is none, naming the ones there are.
    """
    modules = dict(module.named_modules())
    if name not in modules or not name:
        known = ", ".join(n for n in modules if n)
        raise ValueError(f"unit site {name!r} is not a module of this network; its modules are: {known}")
    return modules[name]


def site_outputs(module: Any, x: Any, sites: Sequence[UnitSite]) -> tuple[Any, list[Any]]:
    """Logits ``(n, n_classes)`` and each site's output, from one plain forward of ``x``."""
    import torch

    outputs: dict[str, Any] = {}
    handles = [
        submodule(module, s.module).register_forward_hook(lambda m, i, o, s=s: outputs.__setitem__(s.module, o))
        for s in sites
    ]
    try:
        with torch.no_grad():
            logits = module(x)
    finally:
        for h in handles:
            h.remove()
    return logits, [outputs[s.module] for s in sites]


def site_widths(module: Any, sites: Sequence[UnitSite], image_shape: Sequence[int]) -> tuple[int, ...]:
    """Units of each site, from a forward pass of one zero image.

    Raises
    ------
    ValueError
        If a site is not a module, its axis is out of range, or the module does not run on
        images of ``image_shape`` (naming the problem).
    """
    import torch

    for s in sites:
        submodule(module, s.module)
    x = as_images(np.zeros((1, int(np.prod(image_shape)))), image_shape).to(next(module.parameters()).dtype)
    try:
        _, outputs = site_outputs(module, x, sites)
    except (RuntimeError, ValueError) as error:
        first = str(error).splitlines()[0]
        raise ValueError(f"the network does not run on this dataset's {tuple(image_shape)} images: {first}") from error
    widths = []
    for s, out in zip(sites, outputs):
        if not isinstance(out, torch.Tensor) or out.dim() <= s.axis:
            raise ValueError(f"unit site {s}: its output has no axis {s.axis}")
        widths.append(int(out.shape[s.axis]))
    return tuple(widths)


def _is_parametrized(module: Any) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def resolve_precision(precision: str, module: Any) -> str:
    """``float64`` or ``float32``: ``precision`` itself, or for ``auto`` float32 when ``module``'s
    parameters are on a CUDA device and float64 otherwise.

    Raises
    ------
    ValueError
        For a precision not in :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    parameter = next(module.parameters(), None)
    return "float32" if parameter is not None and parameter.device.type == "cuda" else "float64"


def float32_tolerance(module: Any) -> float:
    """The relative top-two logit gap (``gap < tol * (1 + max |logit|)``) under which a row
    computed in float32 is re-settled in float64: ``FLOAT32_SAFETY * u * (1 + sum_l K_l)``.

    Derivation: a float32 dot product of ``K`` terms is within ``gamma_K = K u / (1 - K u)``
    of the exact one, relative to the sum of its terms' magnitudes (Higham, *Accuracy and
    Stability of Numerical Algorithms*, 3.1); the input's rounding to float32 adds ``u``;
    activations, max-pooling and flattening are 1-Lipschitz per entry and add no more than one
    rounding. To first order the logits' error is then ``u (1 + sum_l K_l)`` relative to the
    magnitudes the sums carry, ``K_l`` the fan-in of each convolution, linear layer and
    average pooling (its kernel's size) of ``module``. The bound is taken relative to
    ``1 + max |logit|`` and widened by :data:`FLOAT32_SAFETY` for sums whose terms are larger
    than their result (cancellation up to that factor); every unit of the tested networks and
    crafted near-ties settle to the float64 oracle's predictions.
    """
    import torch

    fan_in = 0
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            fan_in += m.in_channels // m.groups * int(np.prod(m.kernel_size))
        elif isinstance(m, torch.nn.Linear):
            fan_in += m.in_features
        elif isinstance(m, (torch.nn.AvgPool1d, torch.nn.AvgPool2d, torch.nn.AvgPool3d)):
            fan_in += int(np.prod(m.kernel_size))
    return FLOAT32_SAFETY * FLOAT32_UNIT_ROUNDOFF * (1 + fan_in)


@contextlib.contextmanager
def _ieee_float32() -> Iterator[None]:
    """Float32 convolutions and matrix products in IEEE float32 on CUDA (TF32 off: its 10-bit
    mantissa would break :func:`float32_tolerance`), the flags restored afterwards."""
    import torch

    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    before = [f.allow_tf32 for f in flags]
    for f in flags:
        f.allow_tf32 = False
    try:
        yield
    finally:
        for f, allowed in zip(flags, before):
            f.allow_tf32 = allowed


def reference_outputs(net: TorchNetwork, reference: Any) -> list[Any]:
    """Every site's output on each reference input: per site a float64 tensor of shape
    ``(n_ref, width, *unit_shape)``."""
    import torch

    parts: list[list[Any]] = [[] for _ in net.sites]
    for lo in range(0, len(reference), REFERENCE_BATCH):
        _, outs = site_outputs(net.module, net.images(reference[lo : lo + REFERENCE_BATCH]), net.sites)
        for layer, (s, o) in enumerate(zip(net.sites, outs)):
            parts[layer].append(o.movedim(s.axis, 1))
    return [torch.cat(p) for p in parts]


def mode_values(net: TorchNetwork, mode: str, reference: Any = None) -> list[Any]:
    """The value each unit of each site outputs once ablated in ``mode``: per site a float64
    tensor of shape ``(width, *unit_shape)`` (one unit's slice of the site output); for the
    per-image ``resample`` the pool each image's value is drawn from, every site's output on
    the reference inputs, ``(n_ref, width, *unit_shape)``
    (:func:`sweep.kernels.modes.drawn_values` draws an ``(n, width, *unit_shape)`` tensor from it).

    Parameters
    ----------
    net : TorchNetwork
    mode : str — one of :data:`TORCH_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — the inputs ``mean``, ``peak``
        and ``resample`` read

    Raises
    ------
    ValueError
        For an unknown mode, or a mode that needs reference inputs without them.
    """
    import torch

    if mode not in TORCH_MODES:
        raise ValueError(f"unknown neuron mode {mode!r}; expected one of {TORCH_MODES}")
    if NEURON_MODES[mode].needs_reference and reference is None:
        raise ValueError(f"mode {mode!r} needs the reference inputs (the reference split)")
    if mode == "mean":
        sums: list[Any] = []
        for lo in range(0, len(reference), REFERENCE_BATCH):
            _, outs = site_outputs(net.module, net.images(reference[lo : lo + REFERENCE_BATCH]), net.sites)
            part = [o.movedim(s.axis, 1).sum(dim=0) for s, o in zip(net.sites, outs)]
            sums = part if not sums else [a + b for a, b in zip(sums, part)]
        return [s / len(reference) for s in sums]
    if mode == "resample":
        return reference_outputs(net, reference)
    if mode == "peak":
        peaks = []
        for pool in reference_outputs(net, reference):
            columns = pool.reshape(len(pool), -1).numpy()
            flat = [peak_value(columns[:, c]) for c in range(columns.shape[1])]
            peaks.append(torch.tensor(flat, dtype=torch.float64).reshape(pool.shape[1:]))
        return peaks
    _, outs = site_outputs(net.module, net.images(np.zeros((1, int(np.prod(net.image_shape))))), net.sites)
    values = []
    for s, out in zip(net.sites, outs):
        shape = out.movedim(s.axis, 1).shape[1:]
        site = submodule(net.module, s.module)
        value = 0.0
        if mode == "zero" and not _is_parametrized(site):
            with torch.no_grad():
                value = float(site(torch.zeros(1, dtype=torch.float64)))
        values.append(torch.full(tuple(shape), value, dtype=torch.float64))
    return values


def site_values(net: TorchNetwork, mode: str, reference: Any, layer: int, n_samples: int) -> Any:
    """Site ``layer``'s values in ``mode`` for a split of ``n_samples`` rows: :func:`mode_values`,
    a per-image mode's drawn by :func:`sweep.kernels.modes.drawn_values` (draw 0 of seed 0)."""
    return drawn_values(mode_values(net, mode, reference), mode, n_samples)[layer]


def unit_value(values: Any, unit: Any, out_dim: int, rows: Any = None) -> Any:
    """Unit (or units) ``unit``'s replacement from one site's values, for a site output of
    ``out_dim`` axes (batch included): ``values[unit]`` of a constant mode's ``(width,
    *unit_shape)`` tensor (every image alike), or ``values[:, unit]`` of a per-image mode's
    ``(n, width, *unit_shape)`` one, on rows ``rows`` of the split only when given."""
    if values.dim() < out_dim:
        return values[unit]
    per_image = values[:, unit]
    return per_image if rows is None else per_image[rows]


def _replace_hook(site: UnitSite, units: Sequence[int], values: Any, n: int, rows: Any = None) -> Any:
    """A forward hook that sets, in row block ``b`` (rows ``b*n .. (b+1)*n``), unit
    ``units[b]`` of the site's output to its value (:func:`unit_value`; a per-image mode's
    values of the split's rows ``rows``)."""

    def hook(module: Any, inputs: Any, output: Any) -> Any:
        out = output.movedim(site.axis, 1).clone()
        for b, unit in enumerate(units):
            out[b * n : (b + 1) * n, unit] = unit_value(values, unit, out.dim(), rows)
        return out.movedim(1, site.axis)

    return hook


def hooked_logits(
    net: TorchNetwork, x: Any, layer: int, units: Sequence[int], values: Any, module: Any = None, rows: Any = None
) -> Any:
    """Logits ``(len(units), n, n_classes)`` of plain forwards of images ``x`` (n, ...), each
    with one unit of site ``layer`` held at its value (:func:`unit_value`) by a forward hook
    (the oracle; the units are stacked along the batch). ``module``: a copy of ``net.module``
    to run (its float32 copy), default the network's own; ``rows``: the rows of the split
    ``x`` holds, which a per-image mode's values are indexed by (default: ``x`` is the split)."""
    import torch

    module = net.module if module is None else module
    n = x.shape[0]
    site = net.sites[layer]
    hook = _replace_hook(site, [int(u) for u in units], values, n, rows)
    handle = submodule(module, site.module).register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = module(x.repeat(len(units), *([1] * (x.dim() - 1))))
    finally:
        handle.remove()
    return logits.reshape(len(units), n, -1)


def _predicted(logits: Any) -> np.ndarray:
    """Predicted class index per row of logits ``(..., n, k)``: the argmax of the softmax."""
    import torch

    return torch.softmax(logits, dim=-1).numpy().argmax(axis=-1)


def torch_predictions(net: TorchNetwork, X: Any) -> np.ndarray:
    """The unablated network's predicted class index per row of ``X`` (n, n_features), shape ``(n,)``."""
    parts = [_predicted(site_outputs(net.module, net.images(X[lo : lo + 4096]), [])[0])
             for lo in range(0, len(X), 4096)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def site_activations(net: TorchNetwork, X: Any) -> list[np.ndarray]:
    """Each unit's output per row of ``X`` (n, n_features): per site an array of shape
    ``(n, width)``, a convolution channel's output being the mean of its map over positions
    (the counterpart of :func:`sweep.kernels.network.hidden_activations`)."""
    per_site: list[list[np.ndarray]] = [[] for _ in net.sites]
    for lo in range(0, len(X), 4096):
        _, outputs = site_outputs(net.module, net.images(X[lo : lo + 4096]), net.sites)
        for layer, (site, out) in enumerate(zip(net.sites, outputs)):
            out = out.movedim(site.axis, 1)
            per_site[layer].append(out.reshape(out.shape[0], out.shape[1], -1).mean(dim=2).numpy())
    return [np.concatenate(chunks) for chunks in per_site]


def incoming_weights(net: TorchNetwork, layer: int) -> np.ndarray:
    """The weights into each unit of site ``layer``: those of the site's module when it has
    them, else of the last convolution or linear layer registered before it (an activation
    site's), units first: shape ``(width, C_in, kh, kw)`` for a convolution (its filters),
    ``(width, n_in)`` for a linear layer.

    Raises
    ------
    ValueError
        If no convolution or linear layer comes before the site, or its output count is not
        the site's width.
    """
    import torch

    site = net.sites[layer]
    last = None
    for name, m in net.module.named_modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)):
            last = m
        if name == site.module:
            break
    if last is None or last.weight.shape[0] != net.widths[layer]:
        raise ValueError(f"unit site {site} has no convolution or linear layer of {net.widths[layer]} outputs "
                         "before it: its units have no incoming weights to show")
    return last.weight.detach().double().numpy().copy()


def _outcome(logits: Any, y_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted index and clipped log-loss per row, from logits ``(..., n, k)``."""
    import torch

    prob = torch.softmax(logits, dim=-1).numpy()
    return prob.argmax(axis=-1), sample_log_loss(prob, np.broadcast_to(y_index, prob.shape[:-1]))


def class_index_of(net: TorchNetwork, y: np.ndarray) -> np.ndarray:
    """Position of each label in ``net.classes``.

    Raises
    ------
    ValueError
        If a label is not one of the network's classes.
    """
    y = np.asarray(y)
    idx = np.searchsorted(net.classes, y)
    if np.any(idx >= len(net.classes)) or np.any(net.classes[np.minimum(idx, len(net.classes) - 1)] != y):
        raise ValueError("labels contain classes the network was not trained on")
    return idx


def hooked_unit_outcomes(
    net: TorchNetwork, X: Any, y: np.ndarray, layer: int, units: Sequence[int], mode: str,
    reference: Any = None, values: Any = None,
) -> dict[str, np.ndarray]:
    """The naive reference: the metric columns of each unit ablated by a plain forward with a
    hook, one unit at a time (``layer``, ``unit`` and :data:`METRIC_COLUMNS`); ``values`` as
    :func:`ablate_torch_units` takes them."""
    values = site_values(net, mode, reference, layer, len(X)) if values is None else values
    x = net.images(X)
    y_index = class_index_of(net, y)
    base_pred, base_loss = _outcome(site_outputs(net.module, x, [])[0], y_index)
    preds, losses = [], []
    for u in units:
        pred, loss = _outcome(hooked_logits(net, x, layer, [int(u)], values)[0], y_index)
        preds.append(pred)
        losses.append(loss)
    columns = {"layer": np.full(len(units), layer, dtype=np.int64), "unit": np.asarray(units, dtype=np.int64)}
    columns.update(ablation_metrics(y_index, base_pred, base_loss, np.array(preds).reshape(len(units), -1),
                                    np.array(losses).reshape(len(units), -1), len(net.classes)))
    return columns


# --------------------------------------------------------------------------- the fast kernel


@dataclass
class TorchBase:
    """One plain forward of a network on one split, kept for every ablation of it.

    Attributes
    ----------
    net : TorchNetwork
    x : tensor of shape (n, C, H, W) — the inputs, float64
    y_index : ndarray of shape (n,) — true class index
    logits : tensor of shape (n, n_classes) — float64 (a plain forward of ``net.module``)
    pred, loss : ndarrays of shape (n,) — predicted index and log-loss of each row
    precision : str — ``float64`` or ``float32``: the arithmetic of the resumed passes
    module : torch.nn.Module — what the resumed passes run: ``net.module``, or its float32 copy
    x_run : tensor — ``x`` in that precision
    tolerance : float — the relative top-two gap under which a resumed row is re-settled in
        float64 (:data:`TIE_TOLERANCE`, or :func:`float32_tolerance` of the module)
    chain : list of (name, module) — ``module``'s top-level ``nn.Sequential`` children (empty
        if it is not one: ablations then run the batched hooked forward)
    outputs : dict of int to tensor — ``chain[i]``'s output on ``x_run``, kept (copied) for
        the positions ablations resume from: each site's, and the input and output of the
        convolution or linear layer after it
    resettled : int — rows re-settled by the float64 hooked forward so far, over every
        ablation of this split (``(unit, row)`` pairs)
    """

    net: TorchNetwork
    x: Any
    y_index: np.ndarray
    logits: Any
    pred: np.ndarray
    loss: np.ndarray
    precision: str = "float64"
    module: Any = None
    x_run: Any = None
    tolerance: float = TIE_TOLERANCE
    chain: list[tuple[str, Any]] = field(default_factory=list)
    outputs: dict[int, Any] = field(default_factory=dict)
    resettled: int = 0


def prepare_torch(net: TorchNetwork, X: Any, y: np.ndarray, precision: str = "float64") -> TorchBase:
    """The plain forward of ``net`` on ``(X, y)`` every ablation of that split resumes from,
    its resumed passes in ``precision`` (:data:`PRECISIONS`; :func:`resolve_precision`)."""
    import torch

    precision = resolve_precision(precision, net.module)
    x = net.images(X)
    y_index = class_index_of(net, y)
    base = TorchBase(net, x, y_index, None, np.empty(0), np.empty(0), precision, net.module, x)
    if precision == "float32":
        base.module, base.x_run = copy.deepcopy(net.module).float(), x.float()
        base.tolerance = float32_tolerance(base.module)
    if isinstance(base.module, torch.nn.Sequential):
        base.chain = list(base.module.named_children())
        keep = set()
        for layer in range(len(net.sites)):
            i = _site_index(base, layer)
            j = None if i is None else _linear_after(base, i)
            keep |= {i} if j is None else {i, j - 1, j}
        h = base.x_run
        with torch.no_grad(), _ieee_float32():
            for position, (_, m) in enumerate(base.chain):
                h = m(h)
                if position in keep:
                    base.outputs[position] = h.clone()  # a later in-place module cannot change it
        base.logits = h
    if base.logits is None or precision == "float32":
        base.logits = site_outputs(net.module, x, [])[0]
    base.pred, base.loss = _outcome(base.logits, y_index)
    return base


def _site_index(base: TorchBase, layer: int) -> int | None:
    """Position in ``base.chain`` of site ``layer``'s module (None: not a direct child)."""
    names = [name for name, _ in base.chain]
    site = base.net.sites[layer]
    return names.index(site.module) if site.module in names and site.axis == 1 else None


def _linear_after(base: TorchBase, i: int) -> int | None:
    """Position of the first convolution or linear layer after chain position ``i`` if every
    module in between acts on each channel alone (a flatten allowed right before a linear
    layer), else None."""
    import torch

    for j in range(i + 1, len(base.chain)):
        m = base.chain[j][1]
        if isinstance(m, torch.nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros":
            return j
        if isinstance(m, torch.nn.Linear):
            return j
        if isinstance(m, torch.nn.Flatten):
            if j + 1 < len(base.chain) and isinstance(base.chain[j + 1][1], torch.nn.Linear):
                continue
            return None
        if type(m).__name__ not in CHANNELWISE:
            return None
    return None


def _resume(base: TorchBase, start: int, h: Any) -> Any:
    """Chain modules ``start`` on applied to ``h``."""
    for _, m in base.chain[start:]:
        h = m(h)
    return h


def _delta_batches(
    base: TorchBase, i: int, j: int, units: np.ndarray, values: Any, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray, Any]]:
    """Per chunk of units: the rows each unit's ablation changes and chain module ``j``'s
    output there (``j``: the next convolution or linear layer), as ``(positions (m,) in
    units, rows (m,), z (m, ...))``."""
    import torch
    import torch.nn.functional as F

    linear = base.chain[j][1]
    between = [m for _, m in base.chain[i + 1 : j] if not isinstance(m, torch.nn.Flatten)]
    site_out, z_base = base.outputs[i], base.outputs[j]
    flat = base.outputs[j - 1].dim() == 2 and site_out.dim() > 2
    z_size = int(np.prod(z_base.shape[1:]))
    positions, row_parts, z_parts = [], [], []
    size = 0
    for a, u in enumerate(int(v) for v in units):
        new = unit_value(values, u, site_out.dim()).reshape(-1, 1, *site_out.shape[2:])  # (1 or n, 1, ...)
        old = site_out[:, u : u + 1].clone()
        for m in between:
            new, old = m(new), m(old)
        delta = new - old  # (n, 1, ...): the change of the linear layer's input channel u
        rows = torch.nonzero(delta.reshape(delta.shape[0], -1).ne(0).any(dim=1)).flatten()
        if len(rows) == 0:
            continue
        d = delta[rows]
        if isinstance(linear, torch.nn.Conv2d):
            dz = F.conv2d(d, linear.weight[:, u : u + 1], None, linear.stride, linear.padding, linear.dilation)
        elif flat:
            width = int(np.prod(d.shape[1:]))
            dz = d.reshape(len(rows), width) @ linear.weight[:, u * width : (u + 1) * width].T
        else:
            dz = d.reshape(len(rows), 1) * linear.weight[:, u][None, :]
        positions.append(np.full(len(rows), a))
        row_parts.append(rows.numpy())
        z_parts.append(z_base[rows] + dz)
        size += len(rows) * z_size
        if size >= chunk:
            yield np.concatenate(positions), np.concatenate(row_parts), torch.cat(z_parts)
            positions, row_parts, z_parts, size = [], [], [], 0
    if positions:
        yield np.concatenate(positions), np.concatenate(row_parts), torch.cat(z_parts)


def ablate_torch_units(
    net: TorchNetwork,
    X: Any,
    y: np.ndarray,
    layer: int,
    units: np.ndarray,
    mode: str = "zero",
    reference: Any = None,
    *,
    base: TorchBase | None = None,
    values: Any = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    flips: list[Flips] | None = None,
    precision: str = "float64",
) -> dict[str, np.ndarray]:
    """Ablate each listed unit of site ``layer`` on its own and measure on ``(X, y)``.

    Parameters
    ----------
    net : TorchNetwork
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) — class labels
    layer : int — index into ``net.sites``
    units : ndarray of shape (n_units,), int — unit indices within the site
    mode : str — one of :data:`TORCH_MODES`
    reference : ndarray of shape (n_ref, n_features), optional — for a mode that needs one
    base : TorchBase, optional — :func:`prepare_torch` of ``(net, X, y)``
    values : tensor, optional — the site's values in ``mode`` when already computed:
        :func:`mode_values`' ``(width, *unit_shape)``, or a per-image mode's drawn
        ``(n_samples, width, *unit_shape)`` (:func:`sweep.kernels.modes.drawn_values`; by
        default draw 0 of seed 0)
    chunk_elements : int — about the largest number of elements of one resumed batch
    flips : list, optional — receives the per-image outcomes (:class:`~sweep.kernels.Flips`,
        ``ablation`` indexing ``units``): every decision is settled per row here, so they cost
        one comparison
    precision : str — of the resumed passes when ``base`` is not given (:data:`PRECISIONS`;
        a given ``base`` keeps its own): in ``float32`` the ablated rows whose top-two gap is
        within :func:`float32_tolerance` are re-settled in float64 (counted in
        ``base.resettled``)

    Returns
    -------
    dict of str to ndarray
        ``layer`` and ``unit`` of shape ``(n_units,)`` and the metric columns, equal to
        :func:`hooked_unit_outcomes`' (the oracle; ``loss`` to float32 rounding in float32).
    """
    import torch

    units = np.asarray(units, dtype=np.int64)
    if not 0 <= layer < len(net.sites):
        raise ValueError(f"layer {layer} is not a unit site; the network has {len(net.sites)}: 0..{len(net.sites) - 1}")
    if len(units) and (units.min() < 0 or units.max() >= net.widths[layer]):
        raise ValueError(f"unit index out of range 0..{net.widths[layer] - 1} for site {net.sites[layer]}")
    base = prepare_torch(net, X, y, precision) if base is None else base
    values = site_values(net, mode, reference, layer, n_samples=len(base.y_index)) if values is None else values
    run_values = values.to(base.x_run.dtype)
    n = base.x.shape[0]
    logits = base.logits[None].repeat(len(units), 1, 1)  # (m, n, k), unchanged rows kept
    i = _site_index(base, layer)
    j = None if i is None else _linear_after(base, i)
    if j is not None and isinstance(base.chain[j][1], torch.nn.Linear) and base.outputs[j - 1].dim() != 2:
        j = None  # a linear layer on the last axis of a map mixes no channels: plain resume
    with torch.no_grad(), _ieee_float32():
        if j is not None:
            for at, rows, z in _delta_batches(base, i, j, units, run_values, chunk_elements):
                at, rows = torch.as_tensor(at), torch.as_tensor(rows)
                logits[at, rows] = _resume(base, j + 1, z).double()
        else:
            per = max(1, chunk_elements // max(1, n * int(np.prod(base.x.shape[1:]))))
            for lo in range(0, len(units), per):
                part = units[lo : lo + per]
                if i is not None:
                    h = base.outputs[i].repeat(len(part), *([1] * (base.outputs[i].dim() - 1)))
                    for b, u in enumerate(part):
                        h[b * n : (b + 1) * n, int(u)] = unit_value(run_values, int(u), h.dim())
                    part_logits = _resume(base, i + 1, h).reshape(len(part), n, -1)
                else:
                    part_logits = hooked_logits(net, base.x_run, layer, part, run_values, base.module)
                logits[lo : lo + len(part)] = part_logits.double()
    with torch.no_grad():
        _settle_ties(base, layer, units, values, logits)
    pred, loss = _outcome(logits, base.y_index)
    if flips is not None:
        right_before, right = base.pred == base.y_index, pred == base.y_index
        ablation, row = np.nonzero(right != right_before[None])
        flips.append(Flips.concat([Flips(ablation, row, right[ablation, row])]))
    columns = {"layer": np.full(len(units), layer, dtype=np.int64), "unit": units}
    columns.update(ablation_metrics(base.y_index, base.pred, base.loss, pred, loss, len(net.classes)))
    return columns


def _settle_ties(base: TorchBase, layer: int, units: np.ndarray, values: Any, logits: Any) -> None:
    """Recompute, by the float64 plain hooked forward, the rows of each unit whose top-two
    logit gap is within ``base.tolerance``, in place; count them in ``base.resettled``.

    Every row, the ones the resumed passes left at the base's float64 logits included: in
    float32 a change of the site's output below float32's resolution leaves a row unchanged
    there, yet may move its float64 logits by up to that tolerance.

    Parameters
    ----------
    logits : tensor of shape (n_units, n, n_classes), float64
    """
    import torch

    if logits.shape[-1] < 2 or not len(units):
        return
    top = torch.topk(logits, 2, dim=-1).values
    gap = top[..., 0] - top[..., 1]
    for a, rows in enumerate(gap < base.tolerance * (1 + logits.abs().amax(dim=-1))):
        at = torch.nonzero(rows).flatten()
        if len(at):
            logits[a, at] = hooked_logits(base.net, base.x[at], layer, [int(units[a])], values, rows=at)[0]
            base.resettled += len(at)


# --------------------------------------------------------------------------- unit sets


def _set_hook(site: UnitSite, units: np.ndarray, values: Any) -> Any:
    """A forward hook holding units ``units`` of the site's output at their values on every row
    (:func:`unit_value`)."""
    index = list(int(u) for u in units)

    def hook(module: Any, inputs: Any, output: Any) -> Any:
        out = output.movedim(site.axis, 1).clone()
        out[:, index] = unit_value(values, index, out.dim())
        return out.movedim(1, site.axis)

    return hook


@dataclass
class TorchUnitSet:
    """A torch network with a growing set of units held at their mode's values: the running
    state of cumulative curves (the counterpart of :class:`sweep.kernels.running.PrunedPass`).

    Each :meth:`outcome` resumes the chain after the earliest site with removed units, from its
    output cached by :func:`prepare_torch` (a plain hooked forward for a module that is not a
    chain): the same arithmetic as the hooked oracle, so predictions equal it.

    Attributes
    ----------
    base : TorchBase — the unablated forward pass
    values : list of tensors — per site, :func:`mode_values` of the mode, ``(width, *unit_shape)``,
        or a per-image mode's drawn values, ``(n, width, *unit_shape)``
    removed : list of ndarray — per site, the units held so far
    """

    base: TorchBase
    values: list[Any]
    removed: list[np.ndarray]

    @classmethod
    def start(cls, net: TorchNetwork, X: Any, y: np.ndarray, values: list[Any]) -> TorchUnitSet:
        """The unablated state of ``net`` on ``(X, y)``."""
        return cls(prepare_torch(net, X, y), values, [np.empty(0, dtype=np.int64) for _ in net.sites])

    def copy(self) -> TorchUnitSet:
        return TorchUnitSet(self.base, self.values, [r.copy() for r in self.removed])

    def remove_units(self, units: np.ndarray) -> None:
        """Hold units ``units`` (k, 2) of ``(site, unit)`` too."""
        for layer, unit in np.asarray(units, dtype=np.int64).reshape(-1, 2):
            self.removed[layer] = np.append(self.removed[layer], unit)

    def logits(self) -> Any:
        """Logits ``(n, n_classes)`` with the removed units held."""
        import torch

        net, base = self.base.net, self.base
        held = [layer for layer, units in enumerate(self.removed) if len(units)]
        if not held:
            return base.logits
        hooks = {layer: _set_hook(net.sites[layer], self.removed[layer], self.values[layer]) for layer in held}
        first = held[0]
        i = _site_index(base, first)
        handles = [submodule(net.module, net.sites[layer].module).register_forward_hook(hooks[layer])
                   for layer in held if i is None or layer != first]
        try:
            with torch.no_grad():
                if i is None:
                    return net.module(base.x)
                return _resume(base, i + 1, hooks[first](None, None, base.outputs[i]))
        finally:
            for handle in handles:
                handle.remove()

    def outcome(self) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class index and per-row loss, numpy, shape (n,)."""
        return _outcome(self.logits(), self.base.y_index)


def torch_unit_flips(
    net: TorchNetwork, X: Any, y: np.ndarray, layer: int, units: np.ndarray, mode: str = "zero",
    reference: Any = None, values: Any = None,
) -> Flips:
    """The images each unit of site ``layer`` fixes and breaks when ablated alone (the torch
    counterpart of :func:`sweep.kernels.neuron_flips`, from :func:`ablate_torch_units`, whose
    ``values`` it takes).

    Returns
    -------
    Flips
        Arrays of shape ``(m,)``, sorted by (ablation, row); ``ablation`` indexes ``units``.
    """
    collected: list[Flips] = []
    ablate_torch_units(net, X, y, layer, units, mode, reference, values=values, flips=collected)
    return collected[0]

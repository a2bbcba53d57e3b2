"""A fitted multi-layer perceptron as plain weight arrays, its activations and THE forward pass.

Pure numerics on the array API (numpy, or torch through :mod:`sweep.kernels.backend`): no
Ray, no Hydra, no I/O. The arithmetic mirrors scikit-learn's
``MLPClassifier._forward_pass_fast`` and ``predict`` so that predictions computed here equal
sklearn's bit for bit on numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def expit(z: Any) -> Any:
    """The logistic function, overflow-free: scipy's (sklearn's) on numpy, torch's on torch."""
    if isinstance(z, np.ndarray):
        from scipy.special import expit  # sklearn's logistic, bit for bit

        return expit(z)
    import torch

    return torch.sigmoid(z)


def _relu(z: Any) -> Any:
    if isinstance(z, np.ndarray):
        return np.maximum(z, 0)
    import torch

    return torch.relu(z)


def _tanh(z: Any) -> Any:
    if isinstance(z, np.ndarray):
        return np.tanh(z)
    import torch

    return torch.tanh(z)


@dataclass(frozen=True)
class Activation:
    """One hidden activation of ``MLPClassifier``.

    Attributes
    ----------
    fn : callable ``(z) -> z`` — elementwise, on numpy or torch arrays
    at_zero : float — ``act(0)``: the output of a unit whose incoming weights and bias are 0
        (and the firing threshold of unit statistics)
    lipschitz : float — Lipschitz constant (every activation here is monotone non-decreasing)
    """

    fn: Callable[[Any], Any]
    at_zero: float
    lipschitz: float


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation(lambda z: z, 0.0, 1.0),
    "logistic": Activation(expit, 0.5, 0.25),
    "tanh": Activation(_tanh, 0.0, 1.0),
    "relu": Activation(_relu, 0.0, 1.0),
}
"""The hidden-layer activations of ``MLPClassifier``, by the name sklearn gives them: the one
table every kernel reads (function, ``act(0)``, Lipschitz constant)."""

OUTPUT_ACTIVATIONS: tuple[str, ...] = ("softmax", "logistic")
"""Output activations sklearn uses: ``softmax`` (multi-class) or ``logistic`` (binary)."""


@dataclass(frozen=True)
class Network:
    """A fitted MLP as weight arrays.

    Attributes
    ----------
    coefs : tuple of array
        ``coefs[l]`` has shape ``(n_in_l, n_out_l)``; the last one maps to the output layer.
    intercepts : tuple of array
        ``intercepts[l]`` has shape ``(n_out_l,)``.
    activation : str
        Hidden activation, a key of :data:`ACTIVATIONS`.
    out_activation : str
        ``"softmax"`` (multi-class) or ``"logistic"`` (binary, one output unit).
    classes : ndarray
        Class labels, shape ``(n_classes,)``; prediction ``i`` means ``classes[i]``.
    """

    coefs: tuple[Any, ...]
    intercepts: tuple[Any, ...]
    activation: str
    out_activation: str
    classes: np.ndarray

    @classmethod
    def from_classifier(cls, clf: Any) -> "Network":
        """Read the weights of a fitted ``sklearn.neural_network.MLPClassifier``."""
        return cls(
            coefs=tuple(np.asarray(w) for w in clf.coefs_),
            intercepts=tuple(np.asarray(b) for b in clf.intercepts_),
            activation=clf.activation,
            out_activation=clf.out_activation_,
            classes=np.asarray(clf.classes_),
        )

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """Width of each hidden layer."""
        return tuple(int(w.shape[1]) for w in self.coefs[:-1])

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """``(n_features, *hidden_sizes, n_outputs)``."""
        return (int(self.coefs[0].shape[0]), *self.hidden_sizes, int(self.coefs[-1].shape[1]))

    @property
    def n_hidden_layers(self) -> int:
        return len(self.coefs) - 1

    @property
    def dtype(self) -> Any:
        return self.coefs[0].dtype

    @property
    def act(self) -> Activation:
        """The hidden activation's record in :data:`ACTIVATIONS`."""
        return ACTIVATIONS[self.activation]

    def with_weights(self, coefs: tuple[Any, ...], intercepts: tuple[Any, ...]) -> "Network":
        """The same network with other weight arrays."""
        return Network(tuple(coefs), tuple(intercepts), self.activation, self.out_activation, self.classes)


Replacement = Sequence[tuple[Any, Any]]
"""Per hidden layer, ``(mask (width,) bool, values (width,))``: the masked units' outputs are
held at ``values`` (an ablation); ``None`` entries or an empty sequence replace nothing."""


def forward_pass(
    net: Network, X: Any, replaced: Replacement | None = None, start: int = 0, offsets: list[Any] | None = None
) -> tuple[list[Any], list[Any]]:
    """THE forward pass: every weight matrix's input and output, on any backend.

    Parameters
    ----------
    net : Network — numpy or torch weights, same backend as ``X``
    X : array of shape (n_samples, n_in) — the input of weight matrix ``start``
    replaced : see :data:`Replacement`, optional — hidden units held at given values
    start : int — first weight matrix applied (0: ``X`` is the network's input; ``l + 1``:
        ``X`` holds hidden layer ``l``'s outputs)
    offsets : list, optional — per weight matrix from ``start`` on, None or an array of shape
        ``(n, n_out)`` added to its output (a per-image mode's folds, row by row)

    Returns
    -------
    (inputs, pre) : lists of arrays
        ``inputs[i]`` is the input of weight matrix ``start + i``, shape ``(n, n_in)``
        (``X`` first, then each later hidden layer's outputs); ``pre[i]`` its output before
        the activation; ``pre[-1]`` holds the logits, shape ``(n, n_outputs)``.
    """
    act = net.act.fn
    last = len(net.coefs) - 1
    inputs, pre = [X], []
    for m in range(start, last + 1):
        pre.append(inputs[-1] @ net.coefs[m] + net.intercepts[m])
        if offsets and offsets[m - start] is not None:
            pre[-1] = pre[-1] + offsets[m - start]
        if m == last:
            break
        h = act(pre[-1])
        if replaced and replaced[m] is not None:
            mask, values = replaced[m]
            h = h * 1 if h is pre[-1] else h  # identity: keep the pre-activations intact
            h[:, mask] = values[mask]
        inputs.append(h)
    return inputs, pre


def hidden_activations(net: Network, X: Any) -> list[Any]:
    """Activations of every hidden layer: element ``l`` of shape ``(n_samples, hidden_sizes[l])``."""
    return forward_pass(net, X)[0][1:]


def propagate(net: Network, h: Any, layer: int) -> Any:
    """Output logits ``(n_samples, n_outputs)`` from the outputs ``h`` of hidden layer ``layer``
    (``-1``: ``h`` is the input)."""
    return forward_pass(net, h, start=layer + 1)[1][-1]


def output_probabilities(logits: np.ndarray, out_activation: str) -> np.ndarray:
    """Class probabilities exactly as sklearn computes them (softmax or logistic).

    Parameters
    ----------
    logits : ndarray of shape (..., n_samples, n_outputs)

    Returns
    -------
    ndarray of shape (..., n_samples, n_classes)
        For a binary (logistic) network the two columns are ``1 - p`` and ``p``.
    """
    if out_activation == "logistic":
        p = expit(logits)
        return np.concatenate([1 - p, p], axis=-1)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def predicted_index(probabilities: np.ndarray) -> np.ndarray:
    """Index of the predicted class as ``MLPClassifier.predict`` chooses it.

    Parameters
    ----------
    probabilities : ndarray of shape (..., n_samples, n_classes)

    Returns
    -------
    ndarray of shape (..., n_samples), int64
        The first index of the largest probability; for two classes, 1 iff p > 0.5.
    """
    if probabilities.shape[-1] == 2:
        return (probabilities[..., 1] > 0.5).astype(np.int64)
    return probabilities.argmax(axis=-1)


def forward(net: Network, X: np.ndarray) -> np.ndarray:
    """Class probabilities of shape ``(n_samples, n_classes)`` for inputs ``X`` (numpy)."""
    return output_probabilities(propagate(net, X, -1), net.out_activation)


def class_index(net: Network, y: np.ndarray) -> np.ndarray:
    """Position of each label in ``net.classes``, shape ``(n_samples,)``.

    Raises
    ------
    ValueError
        If a label is not one of the network's classes.
    """
    y = np.asarray(y)
    idx = np.searchsorted(net.classes, y)
    known = net.classes[np.minimum(idx, len(net.classes) - 1)] == y
    if np.any(idx >= len(net.classes)) or not np.all(known):
        raise ValueError("labels contain classes the network was not trained on")
    return idx

"""Forward pass of a fitted multi-layer perceptron held as plain weight arrays.

Pure numerics: no Ray, no Hydra, no I/O. The arithmetic mirrors scikit-learn's
``MLPClassifier._forward_pass_fast`` and ``predict`` so that predictions computed here
equal sklearn's bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


def _identity(z: np.ndarray) -> np.ndarray:
    return z


def _logistic(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


HIDDEN_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": _identity,
    "logistic": _logistic,
    "tanh": np.tanh,
    "relu": _relu,
}
"""The hidden-layer activations of ``MLPClassifier``, by the name sklearn gives them."""

ACTIVATION_AT_ZERO: dict[str, float] = {"identity": 0.0, "logistic": 0.5, "tanh": 0.0, "relu": 0.0}
"""``act(0)``: the output of a unit whose incoming weights and bias are zeroed."""


@dataclass(frozen=True)
class Network:
    """A fitted MLP as weight arrays.

    Attributes
    ----------
    coefs : tuple of ndarray
        ``coefs[l]`` has shape ``(n_in_l, n_out_l)``; the last one maps to the output layer.
    intercepts : tuple of ndarray
        ``intercepts[l]`` has shape ``(n_out_l,)``.
    activation : str
        Hidden activation, a key of :data:`HIDDEN_ACTIVATIONS`.
    out_activation : str
        ``"softmax"`` (multi-class) or ``"logistic"`` (binary, one output unit).
    classes : ndarray
        Class labels, shape ``(n_classes,)``; prediction ``i`` means ``classes[i]``.
    """

    coefs: tuple[np.ndarray, ...]
    intercepts: tuple[np.ndarray, ...]
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
    def n_hidden_layers(self) -> int:
        return len(self.coefs) - 1

    @property
    def dtype(self) -> np.dtype:
        return self.coefs[0].dtype

    def with_weights(
        self, coefs: tuple[np.ndarray, ...], intercepts: tuple[np.ndarray, ...]
    ) -> "Network":
        """The same network with other weight arrays."""
        return Network(coefs, intercepts, self.activation, self.out_activation, self.classes)


def hidden_activations(net: Network, X: np.ndarray) -> list[np.ndarray]:
    """Activations of every hidden layer.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    list of ndarray
        Element ``l`` has shape ``(n_samples, hidden_sizes[l])``.
    """
    act = HIDDEN_ACTIVATIONS[net.activation]
    layers = []
    h = X
    for w, b in zip(net.coefs[:-1], net.intercepts[:-1]):
        h = act(h @ w + b)
        layers.append(h)
    return layers


def propagate(net: Network, h: np.ndarray, layer: int) -> np.ndarray:
    """Output logits from the activations of hidden layer ``layer``.

    Parameters
    ----------
    h : ndarray of shape (n_samples, hidden_sizes[layer])
    layer : int
        0-based hidden-layer index; ``-1`` means ``h`` is the input.

    Returns
    -------
    ndarray of shape (n_samples, n_outputs)
    """
    act = HIDDEN_ACTIVATIONS[net.activation]
    last = len(net.coefs) - 1
    for i in range(layer + 1, last):
        h = act(h @ net.coefs[i] + net.intercepts[i])
    return h @ net.coefs[last] + net.intercepts[last]


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
        p = HIDDEN_ACTIVATIONS["logistic"](logits)
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
    """Class probabilities of shape ``(n_samples, n_classes)`` for inputs ``X``."""
    return output_probabilities(propagate(net, X, -1), net.out_activation)

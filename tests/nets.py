"""Tiny trained networks for tests: sklearn digits, hidden sizes (12, 7), every activation."""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

ACTIVATIONS: tuple[str, ...] = ("identity", "logistic", "tanh", "relu")


@cache
def digits(n: int = 300, binary: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` digits images scaled to [0, 1], shape ``(n, 64)``, and labels ``(n,)``.

    ``binary`` keeps only the digits 0 and 1 (the first ``n`` of those).
    """
    X, y = load_digits(return_X_y=True)
    if binary:
        X, y = X[y < 2], y[y < 2]
    X, y = X[:n] / 16.0, y[:n]
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


@cache
def trained_mlp(
    activation: str = "relu",
    hidden: tuple[int, ...] = (12, 7),
    binary: bool = False,
    n: int = 300,
    max_iter: int = 60,
    seed: int = 0,
) -> Any:
    """A fitted ``MLPClassifier`` on :func:`digits` (convergence warnings silenced)."""
    X, y = digits(n, binary)
    clf = MLPClassifier(hidden, activation=activation, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return clf

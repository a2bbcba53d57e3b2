"""The network API under its first-release name (``from sweep.network import Network`` keeps
working). Everything lives in :mod:`sweep.kernels.network`; this module re-exports it."""

from sweep.kernels.network import (
    ACTIVATIONS,
    Network,
    forward,
    forward_pass,
    hidden_activations,
    output_probabilities,
    predicted_index,
    propagate,
)

__all__ = [
    "ACTIVATIONS",
    "Network",
    "forward",
    "forward_pass",
    "hidden_activations",
    "output_probabilities",
    "predicted_index",
    "propagate",
]

"""Exact, distributed neuron and synapse ablation sweeps of scikit-learn MLPs."""

from sweep import compat

__version__ = "0.1.0"

compat.install()

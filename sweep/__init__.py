"""Exact, distributed neuron and synapse ablation sweeps of scikit-learn MLPs."""

__version__ = "0.1.0"

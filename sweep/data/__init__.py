"""Inputs of a sweep: datasets (one record each, :data:`~sweep.data.datasets.DATASETS`) and
trained-model artifacts (``.npz`` weights + JSON metadata, never pickle)."""

"""Inputs of a sweep: datasets (one record each, :data:`~sweep.data.datasets.DATASETS`) and
trained-model artifacts (``.npz`` weights + JSON metadata, never pickle).

The public face other packages (``analysis``) import from.
"""

from sweep.data.datasets import (
    DATASETS,
    DatasetSplits,
    image_shape,
    load_dataset,
    reference_inputs,
)
from sweep.data.models import artifact_exists, load_network, read_artifact

__all__ = [
    "DATASETS",
    "DatasetSplits",
    "artifact_exists",
    "image_shape",
    "load_dataset",
    "load_network",
    "read_artifact",
    "reference_inputs",
]

"""The model-artifact API under its first-release name (``from sweep.models import
load_model`` keeps working). Everything lives in :mod:`sweep.data.models`; this module
re-exports its public functions."""

from sweep.data.models import ModelArtifact, load_model, load_network, read_artifact, save_model

__all__ = ["ModelArtifact", "load_model", "load_network", "read_artifact", "save_model"]

"""Exact ablation kernels: pure numerics on the array API (numpy, or torch on any device).

The public face of the kernel modules; nothing here imports Ray, Hydra, OmegaConf, pandas,
pyarrow or any other part of :mod:`sweep` (an import contract, tested). Every kernel takes a
:class:`Network` (weight arrays) and data arrays and returns a dict of numpy columns.

- :mod:`~sweep.kernels.network`: the weights, THE forward pass, THE activation table
- :mod:`~sweep.kernels.modes`: neuron modes (registry)
- :mod:`~sweep.kernels.basestate`, :mod:`~sweep.kernels.engine`,
  :mod:`~sweep.kernels.screen`: the shared machinery of the single-ablation kernels
- :mod:`~sweep.kernels.neurons`, :mod:`~sweep.kernels.synapses`: single ablations
- :mod:`~sweep.kernels.running`: THE running pass (units removed, the pass kept exact)
- :mod:`~sweep.kernels.joint`, :mod:`~sweep.kernels.cumulative`,
  :mod:`~sweep.kernels.orders`: unit sets, cumulative curves and their orders
- :mod:`~sweep.kernels.pruning`: pruning paths chosen on val (greedy and fixed orders)
- :mod:`~sweep.kernels.pairs`: every pair of units removed, with their interactions
- :mod:`~sweep.kernels.knockout`: the smallest unit set that knocks one class out
- :mod:`~sweep.kernels.unitstats` (statistics registry), :mod:`~sweep.kernels.metrics`,
  :mod:`~sweep.kernels.selection`, :mod:`~sweep.kernels.oracle` (the naive reference)
- :mod:`~sweep.kernels.torchnet`: any PyTorch network's units (sites, modes, the hooked
  oracle, the resumed-forward kernel); ``neuron_flips``, ``ablate_joint``, ``joint_outcomes``,
  ``unit_statistics`` and ``unit_outputs`` take a :class:`TorchNetwork` too
"""

from sweep.kernels.backend import network_to_numpy, to_backend, to_numpy
from sweep.kernels.basestate import TIE_TOLERANCE, BaseState, prepare
from sweep.kernels.cumulative import CUMULATIVE_COLUMNS, cumulative_curve, cumulative_rows, grid
from sweep.kernels.engine import DEFAULT_CHUNK_ELEMENTS, METRIC_SETS, Flips
from sweep.kernels.joint import ablate_joint, as_units, joint_outcomes, running_pass, unit_values
from sweep.kernels.knockout import KNOCKOUT_COLUMNS, class_knockout
from sweep.kernels.metrics import (
    DRAW_COLUMNS,
    METRIC_COLUMNS,
    ablation_metrics,
    mcnemar_p,
    mean_over_draws,
    no_draws,
)
from sweep.kernels.modes import (
    NEURON_MODES,
    ablated_neuron_network,
    ablated_units_network,
    constant_modes,
    drawn_values,
    neuron_mode,
    replacement_values,
    unit_replacements,
)
from sweep.kernels.network import (
    ACTIVATIONS,
    Network,
    class_index,
    forward,
    forward_pass,
    hidden_activations,
    predicted_index,
)
from sweep.kernels.neurons import NEURON_COLUMNS, ablate_neurons, neuron_flips
from sweep.kernels.orders import ORDER_KEYS, make_order, scope_units
from sweep.kernels.pairs import PAIR_COLUMNS, ablate_pairs, pair_count
from sweep.kernels.pruning import PRUNING_COLUMNS, PRUNING_METHODS, pruning_path, removal_limit
from sweep.kernels.running import PrunedPass
from sweep.kernels.selection import SYNAPSE_DIRECTIONS, select_synapses
from sweep.kernels.synapses import SYNAPSE_COLUMNS, ablate_synapses, ablated_synapse_network
from sweep.kernels.torchnet import (
    TORCH_MODES,
    TorchNetwork,
    TorchUnitSet,
    incoming_weights,
    mode_values,
    torch_predictions,
)
from sweep.kernels.unitstats import (
    QUANTIZERS,
    STATISTICS,
    UNIT_COLUMNS,
    fire_thresholds,
    unit_outputs,
    unit_statistics,
)

__all__ = [
    "ACTIVATIONS",
    "CUMULATIVE_COLUMNS",
    "DEFAULT_CHUNK_ELEMENTS",
    "DRAW_COLUMNS",
    "KNOCKOUT_COLUMNS",
    "METRIC_COLUMNS",
    "METRIC_SETS",
    "NEURON_COLUMNS",
    "NEURON_MODES",
    "ORDER_KEYS",
    "PAIR_COLUMNS",
    "PRUNING_COLUMNS",
    "PRUNING_METHODS",
    "QUANTIZERS",
    "STATISTICS",
    "SYNAPSE_COLUMNS",
    "SYNAPSE_DIRECTIONS",
    "TIE_TOLERANCE",
    "TORCH_MODES",
    "UNIT_COLUMNS",
    "BaseState",
    "Flips",
    "Network",
    "PrunedPass",
    "TorchNetwork",
    "TorchUnitSet",
    "ablate_joint",
    "ablate_neurons",
    "ablate_pairs",
    "ablate_synapses",
    "ablated_neuron_network",
    "ablated_synapse_network",
    "ablated_units_network",
    "ablation_metrics",
    "as_units",
    "class_index",
    "class_knockout",
    "constant_modes",
    "cumulative_curve",
    "cumulative_rows",
    "drawn_values",
    "fire_thresholds",
    "forward",
    "forward_pass",
    "grid",
    "hidden_activations",
    "incoming_weights",
    "joint_outcomes",
    "make_order",
    "mcnemar_p",
    "mean_over_draws",
    "mode_values",
    "network_to_numpy",
    "no_draws",
    "neuron_flips",
    "neuron_mode",
    "pair_count",
    "predicted_index",
    "prepare",
    "pruning_path",
    "removal_limit",
    "replacement_values",
    "running_pass",
    "scope_units",
    "select_synapses",
    "to_backend",
    "to_numpy",
    "torch_predictions",
    "unit_outputs",
    "unit_replacements",
    "unit_statistics",
    "unit_values",
]

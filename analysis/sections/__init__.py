"""The report's sections: one module per topic, each a builder ``(study, page) -> [Section]``.

:data:`SECTIONS` is the one table of topics, in report order; :func:`analysis.report.write_report`
builds each (a failing topic becomes a box naming it and its error; the others are written).
How to add a section: a module here with ``build(study, page)`` and one :class:`Topic` line.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.sections import (
    channels,
    cumulative,
    harmful,
    heldout,
    impact,
    knockout,
    modes,
    pairs,
    pruning,
    reproductions,
    stability,
    synapses,
)
from analysis.sections.base import SectionBuilder


@dataclass(frozen=True)
class Topic:
    """One topic of the report.

    Attributes
    ----------
    name : str — short id (used in the CLI's failure lines and the log)
    title : str — what a failure box is titled
    build : SectionBuilder
    """

    name: str
    title: str
    build: SectionBuilder


SECTIONS: tuple[Topic, ...] = (
    Topic("reproductions", "Reproductions of published results", reproductions.build),
    Topic("impact", "Impact of single-neuron removal", impact.build),
    Topic("stability", "Stability across seeds and test resamples", stability.build),
    Topic("modes", "Mode study: does the removal method change which neurons are rotten?", modes.build),
    Topic("harmful", "The most harmful neurons", harmful.build),
    Topic("channels", "Convolution channels: filters and feature maps", channels.build),
    Topic("synapses", "Single-synapse removal", synapses.build),
    Topic("heldout", "Held-out pruning", heldout.build),
    Topic("cumulative", "Cumulative ablation, selectivity and memorization", cumulative.build),
    Topic("pruning", "Pruning chosen on val, measured on test", pruning.build),
    Topic("pairs", "Unit pairs: interactions", pairs.build),
    Topic("knockout", "Class knockout", knockout.build),
)
"""Every topic, in report order."""

__all__ = ["SECTIONS", "Topic"]

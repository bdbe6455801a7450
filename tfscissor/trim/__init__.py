"""Relevance-based trimming: statistics by callback, pluggable criteria, channel groups, real removal."""

from tfscissor.trim.callback import ActivationStatistics, collect_statistics
from tfscissor.trim.criteria import criterion_names, get_criterion, register_criterion
from tfscissor.trim.dependency import ChannelGraph
from tfscissor.trim.groups import ChannelGroup, find_groups
from tfscissor.trim.handlers import (
    Carrier,
    Concatenate,
    Frozen,
    Handler,
    Merge,
    Producer,
    Reshape,
    register_handler,
)
from tfscissor.trim.policy import TrimResult, select_channels, tap_names, trim_classifier, trim_model
from tfscissor.trim.statistics import ChannelStatistics, LayerStatistics
from tfscissor.trim.surgery import SurgeryPlan, rebuild

__all__ = [
    "ActivationStatistics",
    "Carrier",
    "ChannelGraph",
    "ChannelGroup",
    "ChannelStatistics",
    "Concatenate",
    "Frozen",
    "Handler",
    "LayerStatistics",
    "Merge",
    "Producer",
    "Reshape",
    "SurgeryPlan",
    "TrimResult",
    "collect_statistics",
    "criterion_names",
    "find_groups",
    "get_criterion",
    "rebuild",
    "register_criterion",
    "register_handler",
    "select_channels",
    "tap_names",
    "trim_classifier",
    "trim_model",
]

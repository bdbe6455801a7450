"""Relevance-based trimming: statistics by callback, pluggable criteria, channel groups, real removal."""

from tfscissor.trim.callback import ActivationStatistics, collect_statistics
from tfscissor.trim.criteria import DEFAULT_CRITERION, criterion_names, get_criterion, register_criterion
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
from tfscissor.trim.policy import (
    TrimResult,
    recalibrate_batch_norm,
    select_channels,
    tap_names,
    trim_classifier,
    trim_model,
)
from tfscissor.trim.saliency import collect_saliency
from tfscissor.trim.stage import TrimStageResult, trim_and_fine_tune
from tfscissor.trim.statistics import ChannelStatistics, GroupSaliency, LayerStatistics
from tfscissor.trim.surgery import SurgeryPlan, rebuild

__all__ = [
    "DEFAULT_CRITERION",
    "ActivationStatistics",
    "Carrier",
    "ChannelGraph",
    "ChannelGroup",
    "ChannelStatistics",
    "GroupSaliency",
    "Concatenate",
    "Frozen",
    "Handler",
    "LayerStatistics",
    "Merge",
    "Producer",
    "Reshape",
    "SurgeryPlan",
    "TrimResult",
    "TrimStageResult",
    "collect_saliency",
    "collect_statistics",
    "criterion_names",
    "find_groups",
    "get_criterion",
    "rebuild",
    "recalibrate_batch_norm",
    "register_criterion",
    "register_handler",
    "select_channels",
    "tap_names",
    "trim_and_fine_tune",
    "trim_classifier",
    "trim_model",
]

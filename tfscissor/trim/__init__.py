"""Relevance-based trimming: statistics by callback, pluggable criteria, channel groups, real removal.

Each public name is imported on first use: the criteria's registry (``tfscissor.trim.criteria``) needs no
TensorFlow, so the command line can check a criterion's name before it loads anything heavy.
"""

from tfscissor.lazy import lazy_api

# Public name -> the module that defines it.
_API = {
    "ActivationStatistics": "tfscissor.trim.callback",
    "Carrier": "tfscissor.trim.handlers",
    "ChannelGraph": "tfscissor.trim.dependency",
    "ChannelGroup": "tfscissor.trim.groups",
    "ChannelStatistics": "tfscissor.trim.statistics",
    "Concatenate": "tfscissor.trim.handlers",
    "DEFAULT_CRITERION": "tfscissor.trim.criteria",
    "Frozen": "tfscissor.trim.handlers",
    "GroupSaliency": "tfscissor.trim.statistics",
    "Handler": "tfscissor.trim.handlers",
    "LayerStatistics": "tfscissor.trim.statistics",
    "Merge": "tfscissor.trim.handlers",
    "Producer": "tfscissor.trim.handlers",
    "Reshape": "tfscissor.trim.handlers",
    "SurgeryPlan": "tfscissor.trim.surgery",
    "TrimResult": "tfscissor.trim.policy",
    "TrimStageResult": "tfscissor.trim.stage",
    "collect_saliency": "tfscissor.trim.saliency",
    "collect_statistics": "tfscissor.trim.callback",
    "criterion_names": "tfscissor.trim.criteria",
    "find_groups": "tfscissor.trim.groups",
    "get_criterion": "tfscissor.trim.criteria",
    "rebuild": "tfscissor.trim.surgery",
    "reconstruct": "tfscissor.trim.reconstruction",
    "recalibrate_batch_norm": "tfscissor.trim.policy",
    "register_criterion": "tfscissor.trim.criteria",
    "register_handler": "tfscissor.trim.handlers",
    "select_channels": "tfscissor.trim.policy",
    "tap_names": "tfscissor.trim.policy",
    "run_trim": "tfscissor.trim.stage",
    "trim_classifier": "tfscissor.trim.policy",
    "trim_model": "tfscissor.trim.policy",
}

__all__ = sorted(_API)


__getattr__, __dir__ = lazy_api("tfscissor.trim", _API)

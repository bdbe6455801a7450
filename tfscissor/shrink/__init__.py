"""Compound shrinking: depth (block removal), width (relevance trimming) and resolution, searched against a
budget (``tfscissor shrink``)."""

from tfscissor.shrink.budget import Limit, combine_costs, measure_costs, parse_budget, violations
from tfscissor.shrink.compound import SCORES, Candidate, SearchResult, recalibrate_batch_norm, resized, search
from tfscissor.shrink.depth import (
    DEPTH_CRITERIA,
    ResidualBlock,
    block_relevance,
    bypass_loss,
    find_blocks,
    removal_order,
    remove_blocks,
    score_blocks,
)
from tfscissor.shrink.stage import run_shrink

__all__ = [
    "DEPTH_CRITERIA",
    "SCORES",
    "Candidate",
    "Limit",
    "ResidualBlock",
    "SearchResult",
    "block_relevance",
    "bypass_loss",
    "combine_costs",
    "find_blocks",
    "measure_costs",
    "parse_budget",
    "recalibrate_batch_norm",
    "removal_order",
    "remove_blocks",
    "resized",
    "run_shrink",
    "score_blocks",
    "search",
    "violations",
]

"""Compound shrinking: depth (block removal), width (relevance trimming) and resolution, searched against a
budget (``tfscissor shrink``)."""

from tfscissor.shrink.budget import Limit, combine_costs, measure_costs, parse_budget, violations
from tfscissor.shrink.compound import Candidate, SearchResult, recalibrate_batch_norm, resized, search
from tfscissor.shrink.depth import ResidualBlock, block_relevance, find_blocks, removal_order, remove_blocks

__all__ = [
    "Candidate",
    "Limit",
    "ResidualBlock",
    "SearchResult",
    "block_relevance",
    "combine_costs",
    "find_blocks",
    "measure_costs",
    "parse_budget",
    "recalibrate_batch_norm",
    "removal_order",
    "remove_blocks",
    "resized",
    "search",
    "violations",
]

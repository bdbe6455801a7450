"""Compound shrinking: depth (block removal), width (relevance trimming) and resolution, searched against a
budget. The ``shrink`` command is not written yet."""

from tfscissor.shrink.budget import Limit, measure_costs, parse_budget, violations
from tfscissor.shrink.depth import ResidualBlock, block_relevance, find_blocks, removal_order, remove_blocks
from tfscissor.shrink.search import Candidate, SearchResult, recalibrate_batch_norm, resized, search

__all__ = [
    "Candidate",
    "Limit",
    "ResidualBlock",
    "SearchResult",
    "block_relevance",
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

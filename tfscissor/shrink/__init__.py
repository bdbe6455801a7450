"""Compound shrinking: depth (block removal), and later width and resolution under a budget."""

from tfscissor.shrink.depth import ResidualBlock, block_relevance, find_blocks, remove_blocks

__all__ = ["ResidualBlock", "block_relevance", "find_blocks", "remove_blocks"]

"""Compound shrinking: depth (block removal), and later width and resolution under a budget."""

from tfscissor.shrink.depth import ResidualBlock, find_blocks, remove_blocks

__all__ = ["ResidualBlock", "find_blocks", "remove_blocks"]

"""Classifier builders and safe model I/O."""

from tfscissor.models.io import load_model, save_model
from tfscissor.models.registry import build_model, builder_names, register_builder

__all__ = ["build_model", "builder_names", "load_model", "register_builder", "save_model"]

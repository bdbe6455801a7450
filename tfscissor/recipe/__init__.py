"""Recipes: a YAML pipeline from data (or a trained model) to a compiled, benchmarked, reported result.

:func:`load_recipe` validates a recipe (:mod:`tfscissor.recipe.schema`); :func:`run_recipe` runs its stages
(:mod:`tfscissor.recipe.stages`) into a run directory, each with a manifest, skipping those that are up to
date (:mod:`tfscissor.recipe.runner`); :func:`describe_plan` is ``tfscissor run --dry-run``.
"""

from tfscissor.recipe.runner import describe_plan, plan, run_recipe
from tfscissor.recipe.schema import SCHEMA, load_recipe
from tfscissor.recipe.stages import STAGE_NAMES

__all__ = ["SCHEMA", "STAGE_NAMES", "describe_plan", "load_recipe", "plan", "run_recipe"]

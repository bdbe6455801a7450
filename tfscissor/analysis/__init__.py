"""Compute, parameter and activation-memory accounting of Keras models, layer by layer.

``profile_model(model)`` returns a :class:`ModelProfile`; the MAC conventions are in
:mod:`tfscissor.analysis.costs`, the walk and the peak-memory estimate in :mod:`tfscissor.analysis.profile`.
Custom layers with weights get a cost rule through :func:`register_cost`.
"""

from tfscissor.analysis.costs import register_cost
from tfscissor.analysis.profile import LayerProfile, ModelProfile, profile_model

__all__ = ["LayerProfile", "ModelProfile", "profile_model", "register_cost"]

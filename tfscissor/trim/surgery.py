"""Rebuild a model with fewer channels: a new model with sliced weights; the input model is never touched."""

import numpy as np

from tfscissor.trim.slicers import slicer_for


class SurgeryPlan:
    """Which output and input channels each layer keeps; filled by :meth:`ChannelGroup.apply`."""

    def __init__(self):
        self.outputs = {}
        self.inputs = {}

    def keep_outputs(self, name, keep):
        self.outputs[name] = np.asarray(keep)

    def keep_inputs(self, name, keep):
        self.inputs[name] = np.asarray(keep)


def rebuild(model, plan):
    """Return a copy of ``model`` with the channels ``plan`` keeps, weights copied and sliced."""
    import keras

    def clone_layer(layer):
        config = layer.get_config()
        slicer = slicer_for(layer)
        if layer.name in plan.outputs and slicer.width_key:
            config[slicer.width_key] = int(len(plan.outputs[layer.name]))
        return type(layer).from_config(config)

    new_model = keras.models.clone_model(model, clone_function=clone_layer)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name in plan.outputs or layer.name in plan.inputs:
            weights = _slice_weights(layer, weights, plan)
        new_model.get_layer(layer.name).set_weights(weights)
    return new_model


def _slice_weights(layer, weights, plan):
    slicer = slicer_for(layer)
    sliced = []
    for i, weight in enumerate(weights):
        for axes, keep in (
            (slicer.out_axes, plan.outputs.get(layer.name)),
            (slicer.in_axes, plan.inputs.get(layer.name)),
        ):
            if keep is not None and i < len(axes) and axes[i] is not None:
                weight = np.take(weight, keep, axis=axes[i])
        sliced.append(weight)
    return sliced

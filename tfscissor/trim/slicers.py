"""How each layer class is sliced when channels are removed: a registry keyed by class, not an if-chain.

A :class:`Slicer` says which weight axes hold a layer's output channels and its input channels, and which
config entry holds its output width. Register a custom layer with :func:`register_slicer`.
"""

from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class Slicer:
    """Slicing rules for one layer class.

    ``role`` is ``"produce"`` (the layer makes new channels from all of its inputs: Conv2D, Dense) or
    ``"carry"`` (output channel ``c`` depends on input channel ``c`` alone: batch norm, activations, pooling).
    ``out_axes[i]`` / ``in_axes[i]`` is the axis of weight ``i`` indexed by output / input channel, or None;
    a carrier's input and output channels are the same, so it has ``out_axes`` only. ``width_key`` is the
    config entry that holds a producer's output width.
    """

    role: str
    out_axes: tuple = ()
    in_axes: tuple = ()
    width_key: str | None = None


_SLICERS = {}


def register_slicer(layer_cls, slicer):
    """Teach trimming how to slice ``layer_cls`` (and its subclasses, unless they have their own entry)."""
    _SLICERS[layer_cls] = slicer


def slicer_for(layer):
    for cls in type(layer).__mro__:
        if cls in _SLICERS:
            return _SLICERS[cls]
    return None


_CONV = Slicer("produce", out_axes=(3, 0), in_axes=(2, None), width_key="filters")
register_slicer(keras.layers.Conv2D, _CONV)
register_slicer(keras.layers.Dense, Slicer("produce", out_axes=(1, 0), in_axes=(0, None), width_key="units"))
# Batch norm's gamma, beta, moving mean and variance (whichever exist) are all indexed by channel.
register_slicer(keras.layers.BatchNormalization, Slicer("carry", out_axes=(0, 0, 0, 0)))
register_slicer(keras.layers.PReLU, Slicer("carry", out_axes=(-1,)))
for _cls in (
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
):
    register_slicer(_cls, Slicer("carry"))

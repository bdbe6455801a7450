"""How trimming treats each layer class: a registry of handlers keyed by class, not an if-chain.

A handler answers two questions about one call of a layer:

- ``propagate``: which channels its outputs carry. Every tensor's last axis is an array of *elements*, one per
  position; a handler returns its outputs' element arrays from its inputs', reusing elements where a channel
  passes through (batch norm, activations), tying elements together where channels must go together (Add,
  Multiply), and creating new ones where a layer makes new channels (Conv2D, Dense).
- ``slice_config`` / ``slice_weights``: how to rebuild the layer when only the positions ``keep_in`` of each
  input and ``keep_out`` of each output survive.

Register a custom layer with :func:`register_handler`, e.g. ``register_handler(MyNorm, Carrier())``.
"""

import keras
import numpy as np
from keras.src.ops import numpy as keras_numpy


class Handler:
    """Base class: by default a layer passes no channels through and consumes none."""

    def consumes(self, layer):
        """Whether ``layer`` reads its inputs' channels into new ones (a convolution, a dense layer): the
        tensors such layers read are where a channel's relevance is measured."""
        return False

    def propagate(self, layer, node, inputs, graph):
        raise NotImplementedError

    def slice_config(self, layer, config, keep_in, keep_out):
        return config

    def slice_weights(self, layer, weights, keep_in, keep_out):
        return weights


class Frozen(Handler):
    """Channels the trim must leave alone: the inputs are pinned and the outputs are new, pinned channels.

    Used for excluded layers that trimming does not understand, for layers that mix channels in ways that a
    removal would change (softmax over channels), and for the model's inputs.
    """

    def propagate(self, layer, node, inputs, graph):
        for elements in inputs:
            graph.freeze(elements)
        return [graph.new_elements(channel_width(tensor), frozen=True) for tensor in node.outputs]


_FROZEN = Frozen()


class Carrier(Handler):
    """Output channel ``c`` depends on input channel ``c`` alone; every weight is indexed by channel on its last
    axis (batch norm's four vectors, PReLU's slopes, layer norm's scale and offset)."""

    def propagate(self, layer, node, inputs, graph):
        return [inputs[0]]

    def slice_weights(self, layer, weights, keep_in, keep_out):
        return [np.take(w, keep_out[0], axis=-1) if w.ndim else w for w in weights]


class ChannelAxisCarrier(Carrier):
    """A carrier only when it works on the last axis (``layer.axis``); otherwise its channels are pinned."""

    def propagate(self, layer, node, inputs, graph):
        rank = len(node.input_tensors[0].shape)
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if [axis % rank for axis in axes] == [rank - 1]:
            return [inputs[0]]
        return _FROZEN.propagate(layer, node, inputs, graph)


class ActivationCarrier(Carrier):
    """Element-wise activations carry channels; a softmax over the channels ties them all, so it pins them."""

    _COUPLING = {"softmax", "log_softmax"}

    def propagate(self, layer, node, inputs, graph):
        activation = getattr(layer.activation, "__name__", str(layer.activation))
        if activation in self._COUPLING:
            return _FROZEN.propagate(layer, node, inputs, graph)
        return [inputs[0]]


class Producer(Handler):
    """Makes new channels from all of its input channels (Conv1D/2D/3D, Dense).

    ``out_axes[i]`` / ``in_axes[i]``: the axis of weight ``i`` indexed by output / input channel, or None.
    ``width_key``: the config entry that holds the number of output channels.
    """

    def __init__(self, out_axes, in_axes, width_key):
        self.out_axes = out_axes
        self.in_axes = in_axes
        self.width_key = width_key

    def consumes(self, layer):
        return True

    def propagate(self, layer, node, inputs, graph):
        return [graph.new_elements(channel_width(node.outputs[0]))]

    def slice_config(self, layer, config, keep_in, keep_out):
        return {**config, self.width_key: len(keep_out[0])}

    def slice_weights(self, layer, weights, keep_in, keep_out):
        return [
            _take(_take(w, keep_out[0], out_axis), keep_in[0], in_axis)
            for w, out_axis, in_axis in zip(weights, self.out_axes, self.in_axes, strict=False)
        ]


class Convolution(Producer):
    """Conv1D/2D/3D. A grouped convolution keeps its channels (each group must stay the same size), except the
    depthwise case (one input channel per group), which carries channels like DepthwiseConv2D."""

    def __init__(self):
        super().__init__(out_axes=(-1, 0), in_axes=(-2, None), width_key="filters")

    def consumes(self, layer):
        return getattr(layer, "groups", 1) == 1

    def propagate(self, layer, node, inputs, graph):
        groups = getattr(layer, "groups", 1)
        if groups == 1:
            return super().propagate(layer, node, inputs, graph)
        if groups == len(inputs[0]) == layer.filters:
            return [inputs[0]]
        return _FROZEN.propagate(layer, node, inputs, graph)

    def slice_config(self, layer, config, keep_in, keep_out):
        if getattr(layer, "groups", 1) == 1:
            return super().slice_config(layer, config, keep_in, keep_out)
        return {**config, "filters": len(keep_out[0]), "groups": len(keep_out[0])}

    def slice_weights(self, layer, weights, keep_in, keep_out):
        if getattr(layer, "groups", 1) == 1:
            return super().slice_weights(layer, weights, keep_in, keep_out)
        return [np.take(w, keep_out[0], axis=-1) for w in weights]


class Depthwise(Handler):
    """DepthwiseConv2D: output ``c * m + k`` comes from input ``c`` (``m`` the depth multiplier), so removing
    an input channel removes its ``m`` outputs."""

    def propagate(self, layer, node, inputs, graph):
        return [np.repeat(inputs[0], layer.depth_multiplier)]

    def slice_weights(self, layer, weights, keep_in, keep_out):
        kernel, *bias = weights
        return [np.take(kernel, keep_in[0], axis=-2), *(np.take(b, keep_out[0]) for b in bias)]


class Separable(Producer):
    """SeparableConv2D: a depthwise kernel on the input channels, then a pointwise kernel to new channels."""

    def __init__(self):
        super().__init__(out_axes=(), in_axes=(), width_key="filters")

    def slice_weights(self, layer, weights, keep_in, keep_out):
        depthwise, pointwise, *bias = weights
        multiplier = layer.depth_multiplier
        middle = (keep_in[0][:, None] * multiplier + np.arange(multiplier)).ravel()
        pointwise = np.take(np.take(pointwise, middle, axis=-2), keep_out[0], axis=-1)
        return [np.take(depthwise, keep_in[0], axis=-2), pointwise, *(np.take(b, keep_out[0]) for b in bias)]


class Merge(Handler):
    """Element-wise layers of several inputs (Add, Multiply, Maximum, ...): channel ``c`` of every input is
    one channel, so they are tied. An input broadcast along the channels (width 1) keeps its channel.

    Also serves the ``keras.ops`` arithmetic in a functional graph (``x + 3.0``); a constant operand that is
    not a scalar could be indexed by channel, so it pins the channels.
    """

    def propagate(self, layer, node, inputs, graph):
        width = channel_width(node.outputs[0])
        constants = [a for a in keras.tree.flatten((node.arguments.args, node.arguments.kwargs)) if _is_array(a)]
        if constants:
            return _FROZEN.propagate(layer, node, inputs, graph)
        full = [elements for elements in inputs if len(elements) == width]
        for elements in inputs:
            if len(elements) != width:
                graph.freeze(elements)
        for elements in full[1:]:
            graph.tie(full[0], elements)
        return [full[0]]


class Concatenate(Handler):
    """Concatenation along the channels puts the inputs' channels side by side; along another axis it ties
    them like a merge."""

    def propagate(self, layer, node, inputs, graph):
        rank = len(node.outputs[0].shape)
        if layer.axis % rank == rank - 1:
            return [np.concatenate(inputs)]
        return Merge().propagate(layer, node, inputs, graph)


class Reshape(Handler):
    """Flatten and Reshape: a channel survives as the output positions that hold it (a Flatten before a Dense
    gives each channel one row of the Dense kernel per spatial position). A reshape that moves channels
    across the last axis pins them."""

    def propagate(self, layer, node, inputs, graph):
        in_shape, out_shape = node.input_tensors[0].shape[1:], node.outputs[0].shape[1:]
        if None in in_shape or None in out_shape:
            return _FROZEN.propagate(layer, node, inputs, graph)
        channel = np.broadcast_to(np.arange(in_shape[-1]), in_shape).reshape(-1, out_shape[-1] if out_shape else 1)
        if not (channel == channel[0]).all():
            return _FROZEN.propagate(layer, node, inputs, graph)
        return [inputs[0][channel[0]]]

    def slice_config(self, layer, config, keep_in, keep_out):
        if "target_shape" not in config:
            return config
        return {**config, "target_shape": (*layer.output.shape[1:-1], len(keep_out[0]))}


def channel_width(tensor):
    """The number of channels of a symbolic tensor: its last axis (1 for a tensor of one value per sample)."""
    return int(tensor.shape[-1]) if len(tensor.shape) > 1 else 1


def _take(weight, keep, axis):
    return weight if axis is None else np.take(weight, keep, axis=axis)


def _is_array(value):
    return hasattr(value, "shape") and not keras.backend.is_keras_tensor(value) and np.size(value) > 1


_HANDLERS = {}


def register_handler(layer_cls, handler):
    """Teach trimming how channels flow through ``layer_cls`` (and subclasses without their own entry)."""
    _HANDLERS[layer_cls] = handler


def handler_for(layer):
    for cls in type(layer).__mro__:
        if cls in _HANDLERS:
            return _HANDLERS[cls]
    return None


for _cls in (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D):
    register_handler(_cls, Convolution())
register_handler(keras.layers.Dense, Producer(out_axes=(-1, 0), in_axes=(-2, None), width_key="units"))
register_handler(keras.layers.DepthwiseConv2D, Depthwise())
register_handler(keras.layers.SeparableConv2D, Separable())
register_handler(keras.layers.BatchNormalization, ChannelAxisCarrier())
register_handler(keras.layers.LayerNormalization, ChannelAxisCarrier())
register_handler(keras.layers.PReLU, Carrier())
register_handler(keras.layers.Activation, ActivationCarrier())
register_handler(keras.layers.Softmax, Frozen())
for _cls in (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.Identity,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
):
    register_handler(_cls, Carrier())
for _cls in (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras_numpy.Add,
    keras_numpy.Subtract,
    keras_numpy.Multiply,
    keras_numpy.Divide,
    keras_numpy.TrueDivide,
    keras_numpy.Maximum,
    keras_numpy.Minimum,
):
    register_handler(_cls, Merge())
register_handler(keras.layers.Concatenate, Concatenate())
register_handler(keras.layers.Flatten, Reshape())
register_handler(keras.layers.Reshape, Reshape())
# Input preprocessing works on the image channels, which are never trimmed.
for _cls in (keras.layers.InputLayer, keras.layers.Rescaling, keras.layers.Normalization):
    register_handler(_cls, Frozen())

"""How many multiply-accumulates (MACs) one call of a layer costs: a registry of cost rules keyed by layer class.

A cost rule is a function ``rule(layer, input_shapes, output_shapes) -> int``. ``input_shapes`` and
``output_shapes`` are tuples of shapes, one per input or output tensor of that call, each a tuple of ints
without the batch dimension (batch size 1 is assumed throughout). Rules are looked up along the layer's
class hierarchy, so a rule registered for :class:`keras.layers.Conv2D` also serves its subclasses, and a
rule registered for a subclass takes precedence over its base's. Register a rule for a custom layer with::

    @register_cost(MyLayer)
    def my_layer_macs(layer, input_shapes, output_shapes):
        return ...

Conventions (the usual ones for microcontroller budgets, and what TensorFlow's profiler reports for
Conv2D, DepthwiseConv2dNative and MatMul once its FLOPs are halved):

- One MAC is one multiply and its accumulate. Bias additions are not counted.
- Conv1D/2D/3D, any ``strides``, ``padding``, ``dilation_rate`` and ``groups``:
  ``output positions x filters x (kernel elements x input channels / groups)``.
- DepthwiseConv1D/2D: ``output positions x input channels x depth_multiplier x kernel elements``.
- SeparableConv1D/2D: the depthwise part as above plus the pointwise part
  ``output positions x input channels x depth_multiplier x filters``.
- Conv1D/2D/3DTranspose: every input element is scattered through the whole kernel:
  ``input positions x input channels x kernel elements x filters`` (products that 'same' padding later
  crops away are counted too).
- Dense on an input of any rank: ``leading positions x input features x units``, where the leading
  positions are the product of all non-batch dimensions but the last.
- Dot: ``output elements x length of the contracted axis`` (the optional normalisation is not counted).
- TimeDistributed: the wrapped layer's cost on one time step, times the number of steps.
- BatchNormalization: 0 MACs, because at inference it folds into the preceding convolution or dense
  layer (and where it cannot, it is an element-wise scale and shift, not counted, like a bias).
  LayerNormalization, GroupNormalization, RMSNormalization, Normalization, PReLU and Embedding are
  element-wise or look-ups: 0 MACs, and so is the LayerScale of ``keras.applications`` ConvNeXt.
- Layers without weights that have no rule (pooling, activations, Add, Multiply, Concatenate, Reshape,
  padding, resizing, dropout, ``keras.ops`` calls in a functional graph, ...) count 0 MACs: element-wise
  work, data movement and comparisons are not multiply-accumulates.
- A layer that has weights but no rule has an unknown cost; looking it up raises
  :class:`tfscissor.errors.ModelError` naming the layer, rather than quietly counting 0.

Nested models (a ``keras.applications`` model used as a layer) are not costed here: the profile walks into
them (see :mod:`tfscissor.analysis.profile`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import keras

from tfscissor.errors import ModelError

Shapes = tuple[tuple[int, ...], ...]
CostRule = Callable[[keras.Operation, Shapes, Shapes], int]

_RULES: dict[type, CostRule] = {}


def register_cost(*layer_classes: type) -> Callable[[CostRule], CostRule]:
    """Register the decorated function as the cost rule of each of ``layer_classes``.

    A later registration for the same class replaces the earlier one, so a user can change a convention
    (for example count BatchNormalization that does not fold). Returns the function unchanged.
    """
    if not layer_classes:
        raise TypeError("register_cost() needs at least one layer class, as in @register_cost(MyLayer)")
    for cls in layer_classes:
        if not (isinstance(cls, type) and issubclass(cls, keras.Operation)):
            raise TypeError(
                f"register_cost() takes Keras layer classes (subclasses of keras.layers.Layer or "
                f"keras.Operation); got {cls!r}"
            )

    def decorator(rule: CostRule) -> CostRule:
        for cls in layer_classes:
            _RULES[cls] = rule
        return rule

    return decorator


def find_rule(layer_cls: type) -> CostRule | None:
    """The cost rule that applies to ``layer_cls`` (the closest registered class in its hierarchy), or None."""
    for cls in layer_cls.__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            return rule
    return None


def layer_macs(layer: keras.Operation, input_shapes: Shapes, output_shapes: Shapes) -> int:
    """MACs of one call of ``layer`` with the given input and output shapes (no batch dimension)."""
    rule = find_rule(type(layer))
    if rule is None:
        if getattr(layer, "weights", None):
            cls = type(layer).__name__
            raise ModelError(
                f"Cannot count the MACs of layer '{layer.name}' ({cls}): it has weights but tfscissor has no "
                f"cost rule for {cls}. Register one before profiling: "
                f"@tfscissor.analysis.register_cost({cls}) above a function "
                f"(layer, input_shapes, output_shapes) -> int."
            )
        return 0
    macs = rule(layer, input_shapes, output_shapes)
    # A bool is an Integral too, but a rule returning True is surely a bug.
    if isinstance(macs, bool) or not isinstance(macs, numbers.Integral) or macs < 0:
        raise ModelError(
            f"The cost rule {getattr(rule, '__qualname__', rule)!r} returned {macs!r} for layer '{layer.name}' "
            f"({type(layer).__name__}); a cost rule must return a non-negative integer number of MACs."
        )
    return int(macs)


def _channels(layer: keras.Operation, shape: tuple[int, ...]) -> int:
    return shape[0] if getattr(layer, "data_format", "channels_last") == "channels_first" else shape[-1]


def _spatial_positions(layer: keras.Operation, shape: tuple[int, ...]) -> int:
    return math.prod(shape) // _channels(layer, shape)


# Rules read the layer's configuration (kernel_size, groups, units) rather than its kernel variables, so
# that they still hold for quantized or LoRA variants whose stored kernels have other shapes.


@register_cost(keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
def _conv_macs(layer, input_shapes, output_shapes):
    (input_shape,) = input_shapes
    (output_shape,) = output_shapes
    per_output = math.prod(layer.kernel_size) * _channels(layer, input_shape) // layer.groups
    return math.prod(output_shape) * per_output


@register_cost(keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
def _depthwise_conv_macs(layer, input_shapes, output_shapes):
    # Every output channel sees one input channel through one kernel window.
    (output_shape,) = output_shapes
    return math.prod(output_shape) * math.prod(layer.kernel_size)


@register_cost(keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
def _separable_conv_macs(layer, input_shapes, output_shapes):
    (input_shape,) = input_shapes
    (output_shape,) = output_shapes
    positions = _spatial_positions(layer, output_shape)
    intermediate_channels = _channels(layer, input_shape) * layer.depth_multiplier
    depthwise = positions * intermediate_channels * math.prod(layer.kernel_size)
    pointwise = positions * intermediate_channels * layer.filters
    return depthwise + pointwise


@register_cost(keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
def _conv_transpose_macs(layer, input_shapes, output_shapes):
    (input_shape,) = input_shapes
    return math.prod(input_shape) * math.prod(layer.kernel_size) * layer.filters


@register_cost(keras.layers.Dense)
def _dense_macs(layer, input_shapes, output_shapes):
    (input_shape,) = input_shapes
    return math.prod(input_shape) * layer.units


@register_cost(keras.layers.Dot)
def _dot_macs(layer, input_shapes, output_shapes):
    first_shape = input_shapes[0]
    axes = layer.axes if isinstance(layer.axes, int) else layer.axes[0]
    # Keras counts the axes of Dot including the batch axis, which the shapes here leave out.
    contracted = first_shape[axes - 1] if axes > 0 else first_shape[axes]
    (output_shape,) = output_shapes
    return math.prod(output_shape) * contracted


@register_cost(keras.layers.TimeDistributed)
def _time_distributed_macs(layer, input_shapes, output_shapes):
    (input_shape,) = input_shapes
    (output_shape,) = output_shapes
    steps = input_shape[0]
    return steps * layer_macs(layer.layer, (input_shape[1:],), (output_shape[1:],))


@register_cost(
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.RMSNormalization,
    keras.layers.Normalization,
    keras.layers.PReLU,
    keras.layers.Embedding,
)
def _no_macs(layer, input_shapes, output_shapes):
    return 0


def _register_application_layers() -> None:
    # ConvNeXt (keras.applications) scales each channel by a learned vector: element-wise, like
    # BatchNormalization, so 0 MACs. The class is not public Keras API, so register it only where it exists.
    try:
        from keras.src.applications.convnext import LayerScale
    except ImportError:
        return
    register_cost(LayerScale)(_no_macs)


_register_application_layers()

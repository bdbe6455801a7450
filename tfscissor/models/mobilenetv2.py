"""MobileNetV2-style classifiers: inverted residual blocks with linear bottlenecks and ReLU6."""

import keras

from tfscissor.models.layers import BN_MOMENTUM, classifier_head, conv_bn_act, input_block
from tfscissor.models.registry import register_builder

# (expansion t, output channels c, blocks n, first stride s) per stage: MobileNetV2's first stages, sized for
# small inputs. Pass `stages=` for the full ImageNet table.
SMALL_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2))


def _make_divisible(value, divisor=8):
    # The rounding MobileNetV2 uses, so that every width is a multiple of 8 (friendly to SIMD and the TPU).
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _inverted_residual(x, expansion, out_width, strides, name):
    in_width = x.shape[-1]
    y = x
    if expansion != 1:
        y = conv_bn_act(y, in_width * expansion, 1, f"{name}_expand", activation="relu6")
    y = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw_conv")(y)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(y)
    y = keras.layers.ReLU(max_value=6.0, name=f"{name}_dw_relu")(y)
    y = conv_bn_act(y, out_width, 1, f"{name}_project", activation=None)
    if strides == 1 and in_width == out_width:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


@register_builder("mobilenetv2")
def mobilenetv2(
    input_shape,
    num_classes,
    alpha=1.0,
    stages=SMALL_STAGES,
    stem_width=32,
    stem_stride=2,
    head_width=256,
    dropout=0.0,
    name="mobilenetv2",
):
    """Stem conv, inverted-residual stages from ``stages``, a 1x1 head conv, global pooling, softmax.

    Layers are named ``stage{s}_block{b}_{expand,dw,project}_{conv,bn,relu}`` and ``stage{s}_block{b}_add``.
    """
    inputs, x = input_block(input_shape)
    x = conv_bn_act(x, _make_divisible(stem_width * alpha), 3, "stem", strides=stem_stride, activation="relu6")
    for s, (t, c, n, first_stride) in enumerate(stages, start=1):
        for b in range(1, int(n) + 1):
            strides = first_stride if b == 1 else 1
            x = _inverted_residual(x, int(t), _make_divisible(c * alpha), strides, f"stage{s}_block{b}")
    x = conv_bn_act(x, _make_divisible(head_width * max(alpha, 1.0)), 1, "head", activation="relu6")
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)

"""ResNet-style classifiers with basic or bottleneck blocks, sized by blocks per stage and widths."""

import keras

from tfscissor.errors import UsageError
from tfscissor.models.layers import classifier_head, conv_bn_act, input_block
from tfscissor.models.registry import register_builder

EXPANSION = 4  # bottleneck output width / inner width, as in ResNet-50


def basic_block(x, width, strides, name):
    shortcut = x
    y = conv_bn_act(x, width, 3, f"{name}_1", strides=strides)
    y = conv_bn_act(y, width, 3, f"{name}_2", activation=None)
    return _merge(shortcut, y, width, strides, name)


def bottleneck_block(x, width, strides, name):
    shortcut = x
    y = conv_bn_act(x, width, 1, f"{name}_1")
    y = conv_bn_act(y, width, 3, f"{name}_2", strides=strides)
    y = conv_bn_act(y, width * EXPANSION, 1, f"{name}_3", activation=None)
    return _merge(shortcut, y, width * EXPANSION, strides, name)


def _merge(shortcut, y, out_width, strides, name):
    # A projection only where shapes change: identity shortcuts are what makes a block removable later.
    if strides != 1 or shortcut.shape[-1] != out_width:
        shortcut = conv_bn_act(shortcut, out_width, 1, f"{name}_proj", strides=strides, activation=None)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(x)


_BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


@register_builder("resnet")
def resnet(
    input_shape,
    num_classes,
    blocks=(2, 2, 2),
    widths=(16, 32, 64),
    block="basic",
    stem_width=None,
    stem_stride=1,
    dropout=0.0,
    name="resnet",
):
    """A stem conv, then one stage per entry of ``blocks``/``widths``; every stage after the first halves
    the resolution in its first block. Layers are named ``stage{s}_block{b}_{1,2,3,proj}_{conv,bn,relu}``,
    ``stage{s}_block{b}_add`` and ``stage{s}_block{b}_out``.
    """
    if block not in _BLOCKS:
        raise UsageError(f"unknown block {block!r}: use one of {', '.join(_BLOCKS)}")
    if len(blocks) != len(widths):
        raise UsageError(f"blocks {tuple(blocks)} and widths {tuple(widths)} must have one entry per stage")
    make_block = _BLOCKS[block]
    inputs, x = input_block(input_shape)
    x = conv_bn_act(x, int(stem_width or widths[0]), 3, "stem", strides=stem_stride)
    for s, (n, width) in enumerate(zip(blocks, widths, strict=True), start=1):
        for b in range(1, int(n) + 1):
            strides = 2 if (s > 1 and b == 1) else 1
            x = make_block(x, int(width), strides, f"stage{s}_block{b}")
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)

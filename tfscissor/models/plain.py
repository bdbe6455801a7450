"""A plain chain of Conv-BN-ReLU stages: the smallest useful classifier, and the first one trimming handles."""

import keras

from tfscissor.models.layers import classifier_head, conv_bn_act, input_block
from tfscissor.models.registry import register_builder


@register_builder("plain")
def plain(input_shape, num_classes, widths=(16, 32, 64), convs_per_stage=1, dropout=0.0, name="plain"):
    """``len(widths)`` stages of ``convs_per_stage`` 3x3 Conv-BN-ReLU; a 2x2 max pool between stages.

    Layers are named ``stage{s}_conv{c}_{conv,bn,relu}`` and ``stage{s}_pool``.
    """
    inputs, x = input_block(input_shape)
    for s, width in enumerate(widths, start=1):
        if s > 1:
            x = keras.layers.MaxPooling2D(2, name=f"stage{s}_pool")(x)
        for c in range(1, convs_per_stage + 1):
            x = conv_bn_act(x, int(width), 3, name=f"stage{s}_conv{c}")
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)

"""Tiny models around one costly layer, with the MACs counted by hand.

Shared by the hand-count tests and the TensorFlow-profiler cross-check. Each expected count is written as
the arithmetic of the convention in tfscissor.analysis.costs, so a reader can check it:
output positions x output channels x (kernel elements x input channels / groups) for a convolution.
"""

from collections.abc import Callable
from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class LayerCase:
    id: str
    build: Callable[[], keras.Model]
    layer_name: str
    output_shape: tuple
    macs: int
    # Whether TensorFlow's profiler sees the layer's work as Conv2D, DepthwiseConv2dNative or MatMul nodes of
    # the frozen graph. It does not for grouped convolutions (Keras runs them in an XLA-compiled function the
    # profiler does not enter), transposed convolutions and batched matmuls.
    in_tf_profiler: bool = True


def _single(input_shape, layer):
    def build():
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, layer()(inputs))

    return build


def _dot():
    a = keras.Input((3, 4))
    b = keras.Input((5, 4))
    return keras.Model([a, b], keras.layers.Dot(axes=2, name="layer")([a, b]))


L = keras.layers

LAYER_CASES = [
    LayerCase(
        "conv2d_stride2_same",
        _single((8, 8, 3), lambda: L.Conv2D(4, 3, strides=2, padding="same", name="layer")),
        "layer",
        (4, 4, 4),
        # 8x8 input, stride 2, 'same' -> 4x4 positions; 4 filters; 3x3 kernel over 3 channels.
        (4 * 4) * 4 * (3 * 3 * 3),  # 1728
    ),
    LayerCase(
        "conv2d_valid",
        _single((8, 8, 3), lambda: L.Conv2D(4, 3, name="layer")),
        "layer",
        (6, 6, 4),
        # 'valid': 8 - 3 + 1 = 6 positions per side.
        (6 * 6) * 4 * (3 * 3 * 3),  # 3888
    ),
    LayerCase(
        "conv2d_groups2",
        _single((8, 8, 4), lambda: L.Conv2D(6, 3, padding="same", groups=2, name="layer")),
        "layer",
        (8, 8, 6),
        # Each filter sees 4 / 2 = 2 input channels.
        (8 * 8) * 6 * (3 * 3 * 4 // 2),  # 6912
        in_tf_profiler=False,
    ),
    LayerCase(
        "conv2d_dilation2",
        _single((10, 10, 3), lambda: L.Conv2D(2, 3, dilation_rate=2, name="layer")),
        "layer",
        (6, 6, 2),
        # A 3x3 kernel dilated by 2 spans 5 pixels: 10 - 5 + 1 = 6 positions; still 3x3 taps.
        (6 * 6) * 2 * (3 * 3 * 3),  # 1944
    ),
    LayerCase(
        "conv2d_channels_first",
        _single((3, 8, 8), lambda: L.Conv2D(4, 3, data_format="channels_first", name="layer")),
        "layer",
        (4, 6, 6),
        (6 * 6) * 4 * (3 * 3 * 3),  # 3888
    ),
    LayerCase(
        "conv1d_causal",
        _single((16, 3), lambda: L.Conv1D(4, 5, padding="causal", name="layer")),
        "layer",
        (16, 4),
        16 * 4 * (5 * 3),  # 960
    ),
    LayerCase(
        "depthwise_multiplier2",
        _single((8, 8, 3), lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="layer")),
        "layer",
        (8, 8, 6),
        # 3 channels x multiplier 2 = 6 outputs per position, each one 3x3 window of one channel.
        (8 * 8) * (3 * 2) * (3 * 3),  # 3456
    ),
    LayerCase(
        "depthwise_stride2_valid",
        _single((9, 9, 4), lambda: L.DepthwiseConv2D(3, strides=2, name="layer")),
        "layer",
        (4, 4, 4),
        # (9 - 3) // 2 + 1 = 4 positions per side.
        (4 * 4) * 4 * (3 * 3),  # 576
    ),
    LayerCase(
        "separable",
        _single((8, 8, 4), lambda: L.SeparableConv2D(5, 3, name="layer")),
        "layer",
        (6, 6, 5),
        # Depthwise 3x3 on 4 channels, then pointwise 4 -> 5, both at 6x6 positions.
        (6 * 6) * 4 * (3 * 3) + (6 * 6) * 4 * 5,  # 1296 + 720 = 2016
    ),
    LayerCase(
        "separable_multiplier2_same",
        _single((8, 8, 4), lambda: L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2, name="layer")),
        "layer",
        (8, 8, 5),
        # 4 x 2 = 8 intermediate channels.
        (8 * 8) * 8 * (3 * 3) + (8 * 8) * 8 * 5,  # 4608 + 2560 = 7168
    ),
    LayerCase(
        "conv2d_transpose",
        _single((4, 4, 2), lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same", name="layer")),
        "layer",
        (8, 8, 3),
        # Every one of the 4x4x2 input elements is scattered through a 3x3 kernel into 3 filters.
        (4 * 4 * 2) * (3 * 3) * 3,  # 864
        in_tf_profiler=False,
    ),
    LayerCase(
        "dense_flat",
        _single((20,), lambda: L.Dense(7, name="layer")),
        "layer",
        (7,),
        20 * 7,  # 140
    ),
    LayerCase(
        "dense_3d_input",
        _single((5, 6, 8), lambda: L.Dense(3, name="layer")),
        "layer",
        (5, 6, 3),
        # The 8 -> 3 product at each of the 5 x 6 leading positions.
        (5 * 6) * 8 * 3,  # 720
    ),
    LayerCase(
        "dot",
        _dot,
        "layer",
        (3, 5),
        # (3, 4) . (5, 4) over the last axis: 3 x 5 outputs, each a sum of 4 products.
        (3 * 5) * 4,  # 60
        in_tf_profiler=False,
    ),
    LayerCase(
        "time_distributed_conv",
        _single((3, 5, 5, 1), lambda: L.TimeDistributed(L.Conv2D(2, 3), name="layer")),
        "layer",
        (3, 3, 3, 2),
        # 3 steps of a valid 3x3 conv on 5x5x1 -> 3x3x2.
        3 * ((3 * 3) * 2 * (3 * 3 * 1)),  # 486
    ),
]

"""The cropper: a tiny residual CNN that looks at a low-resolution view of the whole image and returns the
object's box ``[xmin, ymin, xmax, ymax]``, normalised, through a sigmoid.

Its body follows Smart Scissor's light foreground predictor (../shared/PAPERS.md, section 2): a 3x3 stride-2
stem of 16 channels, four stages of two bottleneck blocks (inner widths 16, 32, 32, 64, expansion 4, every
stage stride 2) and global average pooling. Its head is leaner than the paper's (fully connected 256 -> 64 ->
4): the pooled features go straight to the box. That boxed 1.6 IoU points behind the paper's head on one
embedded data set and level on another, and leaves 4-8% more of the flash to the body, which is what a
cropper sized by bytes is short of (``hidden`` restores a hidden layer; bench/RESULTS.md, issue 19). The view
is made inside the model by average pooling, so the cropper takes the same full image as the crop policy: the
device keeps one image and runs two models on it. Every op (AVERAGE_POOL_2D, CONV_2D, ADD, MEAN, FULLY_CONNECTED,
LOGISTIC) is int8 in TFLite Micro and maps to the Edge TPU.
"""

import keras

from tfscissor.errors import UsageError
from tfscissor.models.layers import conv_bn_act
from tfscissor.models.resnet import bottleneck_block

__all__ = ["build_cropper", "default_view", "pools", "CROPPER_WIDTHS"]

CROPPER_WIDTHS = (16, 32, 32, 64)
_VIEW = 48  # default view side: the whole image is averaged down to about this many pixels


def default_view(height, width=None):
    """The view side (of the image's short side) for ``height`` x ``width`` images: the image is pooled by
    the largest factor of both sides that keeps the view at least 48 pixels (none when it is smaller)."""
    width = height if width is None else width
    side = min(height, width)
    return side // max(pools(height, width, side // _VIEW), default=1)


def pools(height, width, largest):
    """Pooling factors that divide both sides, up to ``largest``."""
    return [p for p in range(1, largest + 1) if height % p == 0 and width % p == 0]


def build_cropper(input_shape, view=None, width=1.0, blocks=2, stages=4, hidden=0, seed=None, name="cropper"):
    """Build an untrained cropper for images of ``input_shape`` (H, W, C).

    ``view``: the side of the low-resolution view (default :func:`default_view`); the image side must be a
    multiple of it. ``width`` multiplies every channel count; ``blocks`` is the number of bottleneck blocks
    per stage and ``stages`` the number of stages (up to 4); ``hidden`` units (at width 1) of a dense layer
    between the pooled features and the box, or 0 for none (the paper's head has 64). With ``seed``, the
    initial weights are reproducible.
    """
    height, image_width, _ = (int(d) for d in input_shape)
    side = min(height, image_width)
    view = default_view(height, image_width) if view is None else int(view)
    pool = side // view if 0 < view <= side else 0
    if view < 8 or pool == 0 or side % view or height % pool or image_width % pool:
        raise UsageError(
            f"cropper view {view} does not fit {height}x{image_width} images: the view is the short side pooled "
            f"by a factor of both sides, at least 8 pixels, e.g. view={default_view(height, image_width)}"
        )
    if not 1 <= int(stages) <= len(CROPPER_WIDTHS) or int(blocks) < 1:
        raise UsageError(f"cropper needs 1-{len(CROPPER_WIDTHS)} stages and at least one block, got {stages}, {blocks}")
    if int(hidden) < 0:
        raise UsageError(f"cropper hidden units must be 0 (none) or more, got {hidden}")
    if not width > 0:
        raise UsageError(f"cropper width must be positive, got {width!r}: e.g. width=0.5")
    if seed is not None:
        keras.utils.set_random_seed(seed)

    def channels(n):
        return max(4, round(n * width))

    inputs = keras.Input(shape=tuple(input_shape), name="input")
    # Pool before rescaling: the converter folds a rescale into the convolution after it, not through a pool.
    x = keras.layers.AveragePooling2D(pool, name="view")(inputs) if pool > 1 else inputs
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = conv_bn_act(x, channels(16), 3, "stem", strides=2)
    for s, inner in enumerate(CROPPER_WIDTHS[: int(stages)], start=1):
        for b in range(1, int(blocks) + 1):
            x = bottleneck_block(x, channels(inner), 2 if b == 1 else 1, f"stage{s}_block{b}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if hidden:
        x = keras.layers.Dense(channels(hidden), activation="relu", name="fc")(x)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(inputs, box, name=name)

"""The cropper: a tiny residual CNN that looks at a low-resolution view of the whole image and returns the
object's box ``[xmin, ymin, xmax, ymax]``, normalised, through a sigmoid.

It follows Smart Scissor's light foreground predictor (../shared/PAPERS.md, section 2): a 3x3 stride-2 stem
of 16 channels, four stages of two bottleneck blocks (inner widths 16, 32, 32, 64, expansion 4, every stage
stride 2), global average pooling and fully connected layers 256 -> 64 -> 4. The view is made inside the
model by average pooling, so the cropper takes the same full image as the crop policy: the device keeps one
image and runs two models on it. Every op (AVERAGE_POOL_2D, CONV_2D, ADD, MEAN, FULLY_CONNECTED, LOGISTIC)
is int8 in TFLite Micro and maps to the Edge TPU.
"""

import keras

from tfscissor.errors import UsageError
from tfscissor.models.layers import conv_bn_act
from tfscissor.models.resnet import bottleneck_block

__all__ = ["build_cropper", "fitted_cropper", "default_view", "CROPPER_WIDTHS", "MACS_SHARE"]

CROPPER_WIDTHS = (16, 32, 32, 64)
_VIEW = 48  # default view side: the whole image is averaged down to about this many pixels
MACS_SHARE = 0.05  # by default a cropper costs at most this share of the classifier it serves


def default_view(image_side):
    """The view side for images of ``image_side`` pixels: the side divided by the largest integer factor
    that keeps it at least 48 pixels (the whole image when it is smaller)."""
    return image_side // max(1, image_side // _VIEW)


def build_cropper(input_shape, view=None, width=1.0, blocks=2, stages=4, hidden=64, seed=None, name="cropper"):
    """Build an untrained cropper for images of ``input_shape`` (H, W, C).

    ``view``: the side of the low-resolution view (default :func:`default_view`); the image side must be a
    multiple of it. ``width`` multiplies every channel count; ``blocks`` is the number of bottleneck blocks
    per stage and ``stages`` the number of stages (up to 4). With ``seed``, the initial weights are
    reproducible.
    """
    height, image_width, _ = (int(d) for d in input_shape)
    side = min(height, image_width)
    view = default_view(side) if view is None else int(view)
    if view < 8 or view > side or height % view or image_width % view:
        raise UsageError(
            f"cropper view {view} does not divide the image size {height}x{image_width}: "
            f"choose a divisor of both of at least 8, e.g. view={default_view(side)}"
        )
    if not 1 <= int(stages) <= len(CROPPER_WIDTHS) or int(blocks) < 1:
        raise UsageError(f"cropper needs 1-{len(CROPPER_WIDTHS)} stages and at least one block, got {stages}, {blocks}")
    if not width > 0:
        raise UsageError(f"cropper width must be positive, got {width!r}: e.g. width=0.5")
    if seed is not None:
        keras.utils.set_random_seed(seed)

    def channels(n):
        return max(4, round(n * width))

    inputs = keras.Input(shape=tuple(input_shape), name="input")
    pool = height // view
    # Pool before rescaling: the converter folds a rescale into the convolution after it, not through a pool.
    x = keras.layers.AveragePooling2D(pool, name="view")(inputs) if pool > 1 else inputs
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = conv_bn_act(x, channels(16), 3, "stem", strides=2)
    for s, inner in enumerate(CROPPER_WIDTHS[: int(stages)], start=1):
        for b in range(1, int(blocks) + 1):
            x = bottleneck_block(x, channels(inner), 2 if b == 1 else 1, f"stage{s}_block{b}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(channels(hidden), activation="relu", name="fc")(x)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(inputs, box, name=name)


# Tried in order until the cropper fits the MAC budget: the view's resolution is kept longest, because the
# box's precision depends on it; width goes first.
_WIDTHS = (1.0, 0.75, 0.5, 0.375, 0.25)


def fitted_cropper(input_shape, max_macs=None, seed=None, **options):
    """The default cropper for ``input_shape``, narrowed (then given a coarser view) until its MACs are at
    most ``max_macs``; ``options`` fix any of :func:`build_cropper`'s arguments. Raises UsageError when even
    the smallest candidate is over the budget."""
    from tfscissor.analysis import profile_model

    side = min(int(input_shape[0]), int(input_shape[1]))
    views = [options.pop("view")] if "view" in options else _coarser_views(input_shape)
    widths = [options.pop("width")] if "width" in options else _WIDTHS
    smallest = None
    for view in views:
        for width in widths:
            model = build_cropper(input_shape, view=view, width=width, seed=seed, **options)
            macs = profile_model(model).macs
            if max_macs is None or macs <= max_macs:
                return model
            smallest = macs if smallest is None else min(smallest, macs)
    raise UsageError(
        f"no cropper for {side}-pixel images fits {int(max_macs):,} MACs (the smallest tried needs {smallest:,}): "
        "give the cropper a larger budget, or a smaller view and width"
    )


def _coarser_views(input_shape):
    """The default view, then every smaller one that divides the image, down to 16 pixels (an image
    smaller than that is its own only view)."""
    height, width = int(input_shape[0]), int(input_shape[1])
    first = default_view(min(height, width))
    return [v for v in range(first, min(first, 16) - 1, -1) if height % v == 0 and width % v == 0]

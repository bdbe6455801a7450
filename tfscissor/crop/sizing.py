"""How big a cropper is: the default cropper made smaller until it fits a budget of MACs and int8 bytes."""

import math

import keras

from tfscissor.analysis import profile_model
from tfscissor.errors import UsageError
from tfscissor.models.cropper import build_cropper, default_view, pools

# The default budget, against the classifier as it will run (at the crop stage's resolution). The cropper
# runs before the classifier on every image, so at 10% of its MACs the pipeline costs at most 1.1x the
# classifier alone and the resolution the crop saves is not spent again on the cropper. Both models' weights
# sit in flash together, so at half its bytes the firmware needs at most 1.5x the classifier's flash.
MACS_SHARE = 0.10
BYTES_SHARE = 0.50

# Tried in order until the cropper fits: the width goes first; then depth, which also removes what every
# layer costs in the flatbuffer whatever its width (a coarser view saves MACs, never bytes); the view's
# resolution is kept longest, because the box's precision depends on it. The last stage goes before the second
# block of each stage: it holds most of the bytes (its convolutions are the widest), and within one budget
# three stages of two blocks at width 0.375 boxed about 6 IoU points better than four stages of one block at
# width 0.25 (bench/RESULTS.md, issue 19).
_WIDTHS = (1.0, 0.75, 0.5, 0.375, 0.25)
_DEPTHS = (
    {"blocks": 2, "stages": 4},
    {"blocks": 2, "stages": 3},
    {"blocks": 1, "stages": 3},
    {"blocks": 1, "stages": 2},
)

# estimated_int8_bytes, fitted by least squares to full-int8 conversions of croppers and ResNet-, plain and
# MobileNetV2-style classifiers with random (not initial) weights, since the converter stores identical
# buffers, such as untrained zero biases, once: within 1.3% of the real file from 10 kB to 370 kB. Per output
# channel: an int32 bias, a float32 scale, an int64 zero point and their buffers; per layer: its tensors, op
# and buffers; per file: the header, input, output and signature.
_BYTES_PER_CHANNEL = 29
_BYTES_PER_LAYER = 700
_BYTES_PER_MODEL = 1400
# A bytes budget is held with the estimate's error to spare, so that the real file keeps it too: small croppers
# err most, as the fixed costs per file weigh more (the demo's, estimated 33,568 bytes, came out at 34,448: +2.6%).
BYTES_ESTIMATE_ERROR = 0.03


def estimated_int8_bytes(model):
    """The size of ``model``'s full-int8 ``.tflite`` file, estimated from its layers in microseconds rather
    than measured by a conversion of seconds (:func:`~tfscissor.quantize.quantize_int8`): one byte per
    weight of each convolution or dense layer, with batch norm folded in, plus what each output channel and
    layer costs in the file."""
    total = _BYTES_PER_MODEL
    for layer in _weighted_layers(model):
        shape = tuple(layer.kernel.shape)
        # A depthwise kernel's output channels are its last two axes (channels x multiplier).
        channels = math.prod(shape[-2:]) if isinstance(layer, keras.layers.DepthwiseConv2D) else shape[-1]
        total += math.prod(shape) + _BYTES_PER_CHANNEL * channels + _BYTES_PER_LAYER
    return int(total)


def _weighted_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weighted_layers(layer)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
            yield layer


def fitted_cropper(input_shape, max_macs=None, seed=None, *, max_bytes=None, **options):
    """The default cropper for ``input_shape``, narrowed, then made shallower, then given a coarser view until
    its MACs are at most ``max_macs`` and its :func:`estimated_int8_bytes` at most ``max_bytes``; ``options``
    fix any of :func:`build_cropper`'s arguments. Raises UsageError when even the smallest candidate is over
    the budget."""
    side = min(int(input_shape[0]), int(input_shape[1]))
    views = [options.pop("view")] if "view" in options else _coarser_views(input_shape)
    widths = [options.pop("width")] if "width" in options else _WIDTHS
    fixed = {key: options.pop(key) for key in ("blocks", "stages") if key in options}
    depths = list(dict.fromkeys(tuple({**depth, **fixed}.items()) for depth in _DEPTHS))
    too_big = set()  # (depth, width) over the bytes at one view: over them at every view
    smallest = {}
    for view in views:
        for depth in depths:
            for width in widths:
                if (depth, width) in too_big:
                    continue
                model = build_cropper(input_shape, view=view, width=width, seed=seed, **dict(depth), **options)
                # Bytes first: they are estimated without tracing the graph, which counting MACs needs.
                costs = {"bytes": estimated_int8_bytes(model)}
                if max_bytes is None or costs["bytes"] * (1 + BYTES_ESTIMATE_ERROR) <= max_bytes:
                    costs["macs"] = profile_model(model).macs
                    if max_macs is None or costs["macs"] <= max_macs:
                        return model
                else:
                    too_big.add((depth, width))
                for key, value in costs.items():
                    smallest[key] = min(value, smallest.get(key, value))
    limits = [f"{int(max_macs):,} MACs"] if max_macs is not None else []
    limits += [f"{int(max_bytes):,} int8 bytes"] if max_bytes is not None else []
    needs = [f"{smallest[key]:,} {unit}" for key, unit in (("macs", "MACs"), ("bytes", "bytes")) if key in smallest]
    raise UsageError(
        f"no cropper for {side}-pixel images fits {' and '.join(limits)} (the smallest tried needs "
        f"{' and '.join(needs)}): give the cropper a larger budget, or a smaller view, width and depth"
    )


def _coarser_views(input_shape):
    """The default view, then every coarser one down to 16 pixels (or the default, if it is smaller)."""
    height, width = int(input_shape[0]), int(input_shape[1])
    side = min(height, width)
    first = default_view(height, width)
    return [side // p for p in pools(height, width, side) if side // p <= first and side // p >= min(first, 16)]

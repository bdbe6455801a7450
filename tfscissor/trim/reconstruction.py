"""Least-squares reconstruction: after surgery, refit each layer that lost input channels so that it
reproduces what the untrimmed model computed there.

Mean replacement (:func:`tfscissor.trim.surgery.rebuild`) stands a removed channel in by its average;
reconstruction stands it in by the best linear combination of the channels that stay, which is what a
consumer can still recover of it (He et al., "Channel pruning for accelerating very deep neural networks",
2017; Luo et al., ThiNet, 2017). Layers are refit in graph order on the trimmed model's own inputs, so each
one also absorbs the error left by the layers before it, against the untrimmed layer's outputs before any
activation fused into it (a softmax head is fit on its logits), on the representative images. The fit is a
ridge regression on the Gram matrix of the layer's input (patches for a convolution), accumulated in chunks
of at most a batch: memory does not grow with the number of images. Each refit runs both models up to the layer, so the cost
grows with the square of the depth: seconds for the benchmark models.
"""

import numpy as np

from tfscissor.trim.surgery import SurgeryPlan, kept_positions, rebuild, sole_batch_norm

# The ridge penalty on each input feature, relative to its own variance: it keeps the solve well posed where
# kept channels are nearly collinear, and shrinks a well-posed fit only slightly. Per feature, not one number
# for all, so that the fit does not depend on how loud a channel is: a channel that a batch norm quiets and
# the next layer amplifies back (as training leaves them) keeps its weight. A dead feature gets a tiny floor
# and a zero weight.
RIDGE = 1e-3
# Rows (patches) times features per chunk: 32 MiB for each float64 array the fit holds at once.
_CHUNK_VALUES = 4 * 2**20
_BATCH = 64


def reconstruct(model, kept, images, statistics=None, *, exclude=(), protect_stem=False):
    """Return ``model`` trimmed to ``kept`` (group name -> kept channel indices, every group of the graph that
    ``exclude`` and ``protect_stem`` define, as :func:`tfscissor.trim.policy.protected_graph`), with each
    Conv2D (one group, channels last) and Dense layer that lost input channels refit to reproduce ``model``'s
    outputs of that layer, before its activation, on ``images``. ``model`` is not changed.

    The model is first rebuilt as :func:`rebuild` does, with ``statistics`` measured on ``model`` (None: no
    mean replacement): other layers that lose input channels (Conv1D/3D, separable or grouped convolutions)
    keep their mean replacement. Batch-norm statistics stay ``model``'s own: the refit layers restore the
    inputs they were measured on. A refit layer's intercept goes to its bias (which the rebuild gives a layer
    that needed a shift), or, for a layer without one that feeds one batch norm alone, into that batch norm's
    moving mean. Each output channel keeps the refit only where it reproduces the layer better on ``images``
    than the rebuild's weights: removing dead channels, which mean replacement does exactly, stays exact.
    """
    import keras

    from tfscissor.models.graph import functional_graph, has_nested_models, inline_nested, model_inputs
    from tfscissor.trim.groups import groups_of
    from tfscissor.trim.policy import protected_graph

    if has_nested_models(model):
        model = inline_nested(model)
    graph = protected_graph(model, exclude, protect_stem)
    plan = SurgeryPlan.keeping(groups_of(graph), kept)
    trimmed = rebuild(graph, plan, statistics)
    positions = kept_positions(graph, plan)
    # A Sequential model's layers are called on its inner graph's inputs, not on ``model.input``.
    original_inputs, trimmed_inputs = (model_inputs(functional_graph(m)) for m in (model, trimmed))
    images = np.asarray(images, np.float32)
    for node in graph.nodes:
        layer = node.layer
        if layer.name not in positions or not _refittable(layer):
            continue
        keep_in, keep_out = positions[layer.name]
        if len(keep_in[0]) == len(node.inputs[0]):
            continue  # it loses no input channel: its sliced weights already compute what they did
        copy, norm = trimmed.get_layer(layer.name), sole_batch_norm(graph, layer.name)
        folds = norm is not None and not copy.use_bias
        # The rebuild's intercept: the bias, or the shift mean replacement folded into the batch norm's
        # moving mean (BN(x + b) with moving mean m is BN(x) with moving mean m - b; m is the untrimmed
        # model's).
        if folds:  # the batch norm reads the layer's channels alone: it keeps the same ones
            untrimmed_mean = np.asarray(norm.moving_mean)[keep_out[0]]
            copy_norm = trimmed.get_layer(norm.name)
            rebuilt_bias = untrimmed_mean - np.asarray(copy_norm.moving_mean)
        else:
            rebuilt_bias = np.asarray(copy.bias) if copy.use_bias else None
        kernel, bias = _fit(
            layer,
            keras.Model(trimmed_inputs, copy.input),
            keras.Model(original_inputs, layer.input),
            images,
            keep_out[0],
            rebuilt=(np.asarray(copy.kernel), rebuilt_bias),
        )
        copy.set_weights([kernel, bias] if copy.use_bias else [kernel])
        if folds:
            copy_norm.moving_mean.assign(untrimmed_mean - bias)
    return trimmed


def _refittable(layer):
    import keras

    if type(layer) is keras.layers.Dense:
        return True
    return type(layer) is keras.layers.Conv2D and layer.groups == 1 and layer.data_format == "channels_last"


def _fit(layer, trimmed_input, original_input, images, keep_out, rebuilt):
    """The kernel (the layer's shape with the trimmed input and output widths) and bias that best map the
    layer's input in the trimmed model (made by the model ``trimmed_input``) to what the untrimmed ``layer``
    computed from its own input (made by ``original_input``) before its activation, at output channels
    ``keep_out``: per output channel, the refit or the ``rebuilt`` (kernel, bias or None for no intercept),
    whichever leaves the smaller squared error on ``images``. With fewer input rows than weights (a wide
    dense head, few images) the rebuilt weights stay: such a fit reproduces the images whatever the layer
    does, and the comparison on them would always pick it."""
    intercept = rebuilt[1] is not None
    kernel = np.asarray(layer.kernel, np.float64)
    kernel = kernel.reshape(-1, kernel.shape[-1])[:, keep_out]
    offset = np.asarray(layer.bias, np.float64)[keep_out] if layer.use_bias else 0.0
    gram = cross = targets = 0.0
    rows = 0
    for chunk in _chunks(layer, original_input, images):
        inputs = _rows(layer, trimmed_input(chunk))
        # The linear part alone: a fused activation (a softmax head, a Conv2D(activation="relu")) is applied
        # on top of the refit layer as it was on the original.
        outputs = _rows(layer, original_input(chunk)) @ kernel + offset
        if intercept:
            inputs = np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1)
        rows += len(inputs)
        gram = gram + inputs.T @ inputs
        cross = cross + inputs.T @ outputs
        targets = targets + np.sum(outputs**2, axis=0)
    previous = np.asarray(rebuilt[0], np.float64).reshape(-1, len(keep_out))
    if intercept:
        previous = np.concatenate([previous, np.asarray(rebuilt[1], np.float64)[None]], axis=0)
    if rows < len(gram):
        return _as_layer_weights(layer, previous, intercept)
    solution = np.linalg.solve(gram + np.diag(_penalty(gram, intercept)), cross)

    def squared_error(weights):  # per output channel, from the sums: sum((XW - Y)^2) = W'GW - 2W'C + Y'Y
        return np.sum(weights * (gram @ weights), axis=0) - 2 * np.sum(weights * cross, axis=0) + targets

    better = squared_error(solution) < squared_error(previous)
    return _as_layer_weights(layer, np.where(better, solution, previous), intercept)


def _penalty(gram, intercept):
    """The ridge penalty on each input feature (the diagonal added to ``gram``): ``RIDGE`` times its
    variance, nothing on the intercept."""
    energy = np.diag(gram).copy()
    if intercept:
        # Its variance, not its energy: a feature far from zero on average is not held back for its mean,
        # which the intercept takes.
        count, sums = gram[-1, -1], gram[:-1, -1]
        energy[:-1] -= sums**2 / count
    penalty = RIDGE * np.maximum(energy, 1e-12 * max(float(energy.max()), 1.0))
    if intercept:
        penalty[-1] = 0.0  # nothing to hold back: the intercept only moves the mean
    return penalty


def _as_layer_weights(layer, solution, intercept):
    """(kernel in the layer's shape, bias) from a solution with a row per input feature (and the intercept)."""
    weights, bias = (solution[:-1], solution[-1]) if intercept else (solution, np.zeros(solution.shape[1]))
    kernel_shape = (*layer.kernel.shape[:-2], -1, solution.shape[1])
    return weights.reshape(kernel_shape).astype(np.float32), bias.astype(np.float32)


def _chunks(layer, original_input, images):
    """``images`` in chunks whose rows of the untrimmed ``layer``'s input (made by the model
    ``original_input``) stay near ``_CHUNK_VALUES`` values; an unknown size counts as the image's."""
    spatial = original_input.output.shape[1:-1]
    positions = np.prod([size or image for size, image in zip(spatial, images.shape[1:-1], strict=False)])
    features = int(np.prod(layer.kernel.shape[:-1]))
    # At most a batch at a time as well: the models run on each chunk, at every layer before this one.
    size = min(_BATCH, max(1, _CHUNK_VALUES // max(int(positions) * features, 1)))
    for start in range(0, len(images), size):
        yield images[start : start + size]


def _rows(layer, inputs):
    """The layer's input as one row per output position: the patch a convolution's kernel sees there, in the
    kernel's (height, width, channel) order, or the channel vector a Dense layer reads."""
    import tensorflow as tf

    if layer.kernel.ndim == 2:
        values = np.asarray(inputs, np.float64)
        return values.reshape(-1, values.shape[-1])
    height, width = layer.kernel_size
    patches = tf.image.extract_patches(
        inputs,
        sizes=[1, height, width, 1],
        strides=[1, *layer.strides, 1],
        rates=[1, *layer.dilation_rate, 1],
        padding=layer.padding.upper(),
    )
    return np.asarray(patches, np.float64).reshape(-1, patches.shape[-1])

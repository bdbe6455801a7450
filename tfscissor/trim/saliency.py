"""What removing each channel costs the loss: a first-order estimate measured where the channel is read.

Removing a group channel replaces it, at the input of every layer that reads it (each convolution and dense
layer), by its mean there: that is what :func:`tfscissor.trim.surgery.rebuild` does with mean replacement.
To first order, the loss of image ``n`` then changes by

    D[n, c] = sum over readers r, over positions p:  dL_n/dx_r[p, c] * (mean_r[c] - x_r[p, c])

where ``x_r`` is reader ``r``'s input and the gradient flows through reader ``r`` alone (a residual stream is
also read by the Add that carries it on; that path must not count, as the removed channel vanishes from the
stream). A trained model sits near a minimum, where the mean of ``D`` over images is about zero, so the
channel's cost is its spread: ``saliency[c] = mean over n of D[n, c] ** 2`` (the Fisher estimate of
Theis et al., 2018; Molchanov et al., 2019, aggregate the same first-order terms per filter). Scores of
channels in different layers are in one unit, the loss, so one global ranking compares them fairly, and a
channel that a later batch norm or convolution amplifies is scored by what it does there.
"""

from dataclasses import dataclass

import numpy as np

from tfscissor.models.graph import find_operation
from tfscissor.models.training import are_probabilities
from tfscissor.trim.statistics import GroupSaliency


@dataclass(frozen=True)
class Reader:
    """A layer that reads group channels: its name, the tap its input is measured at, and per group the
    positions of that input holding the group's channels and which group channel each position is."""

    layer: str
    tap: str
    members: tuple  # (group index, positions, channels)


def readers_of(graph, groups):
    """Every layer that consumes group channels (one input, as convolutions and dense layers have)."""
    owner = {}
    for index, group in enumerate(groups):
        for channel, root in enumerate(group.roots):
            owner[int(root)] = (index, channel)
    readers = []
    for node in graph.nodes:
        if not node.handler.consumes(node.layer) or len(node.inputs) != 1:
            continue
        found = {}
        for position, root in enumerate(graph.roots(node.inputs[0])):
            if int(root) in owner:
                index, channel = owner[int(root)]
                found.setdefault(index, []).append((position, channel))
        if found:
            members = tuple(
                (index, np.array([p for p, _ in pairs]), np.array([c for _, c in pairs]))
                for index, pairs in sorted(found.items())
            )
            readers.append(Reader(node.layer.name, graph.measured_at(node.input_sources[0]), members))
    return readers


def collect_saliency(graph, groups, statistics, images, labels=None, batch_size=64):
    """Per group name, a :class:`GroupSaliency` of its channels (see the module docstring), measured on
    ``images`` with the means in ``statistics`` (those the surgery compensates with).

    ``labels`` are the images' classes; without them the model's own top-1 prediction stands in, which
    asks what the channel costs the model's current decisions. The model must output class probabilities
    or logits for integer labels.
    """
    import tensorflow as tf

    model = graph.model
    readers = readers_of(graph, groups)
    means = [tf.constant(statistics[reader.tap].mean, tf.float32) for reader in readers]
    probabilities = are_probabilities(model(np.asarray(images[:1], np.float32), training=False))
    layers = [find_operation(model, reader.layer) for reader in readers]
    inputs = _ReaderInputs(layers)
    try:
        step = _gradient_step(model, inputs, means, probabilities)
        sums = [np.zeros(group.channels) for group in groups]
        count = 0
        for start in range(0, len(images), batch_size):
            batch = np.asarray(images[start : start + batch_size], np.float32)
            # Without labels the step takes the model's own predictions; the zeros only fill the argument.
            targets = np.zeros(len(batch), np.int64) if labels is None else labels[start : start + batch_size]
            changes = step(batch, np.asarray(targets, np.int64), labels is None)
            per_group = [np.zeros((len(batch), group.channels)) for group in groups]
            for reader, change in zip(readers, changes, strict=True):
                change = change.numpy().astype(np.float64)
                for index, positions, channels in reader.members:
                    # Several positions may hold one channel (after a Flatten): their changes add up.
                    np.add.at(per_group[index].T, channels, change[:, positions].T)
            for total, change in zip(sums, per_group, strict=True):
                total += np.sum(change**2, axis=0)
            count += len(batch)
    finally:
        inputs.restore()
    return {group.name: GroupSaliency(total, count) for group, total in zip(groups, sums, strict=True)}


class _ReaderInputs:
    """Wraps each reading layer's ``call`` so that it reads a copy of its input that the step's tape watches:
    the gradient of that copy is this reader's alone. :meth:`restore` unwraps them."""

    def __init__(self, layers):
        self.layers = layers
        self.tape = None  # set by the step before the model runs
        self.tensors = {}  # layer name -> the watched copy of its input, in the step being traced
        for layer in layers:
            self._wrap(layer)

    def _wrap(self, layer):
        import tensorflow as tf

        original = layer.call

        def call(inputs, *args, **kwargs):
            inputs = tf.identity(inputs)
            self.tape.watch(inputs)
            self.tensors[layer.name] = inputs
            return original(inputs, *args, **kwargs)

        layer.call = call

    def restore(self):
        for layer in self.layers:
            del layer.call  # uncovers the class's own call again


def _gradient_step(model, inputs, means, probabilities):
    import keras
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(images, labels, use_predictions):
        with tf.GradientTape() as tape:
            inputs.tape = tape
            outputs = model(images, training=False)
            if use_predictions:
                labels = tf.argmax(outputs, axis=-1)
            # Summed, not averaged: each image's gradient is then that image's own loss's.
            loss = tf.reduce_sum(
                keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=not probabilities)
            )
        read = [inputs.tensors[layer.name] for layer in inputs.layers]
        gradients = tape.gradient(loss, read)
        changes = []
        for x, gradient, mean in zip(read, gradients, means, strict=True):
            axes = list(range(1, x.shape.rank - 1))
            change = gradient * (mean - x)
            changes.append(tf.reduce_sum(change, axis=axes) if axes else change)
        return changes

    return step

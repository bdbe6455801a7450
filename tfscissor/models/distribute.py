"""Training, fine-tuning and relevance statistics under a ``tf.distribute`` strategy.

Keras 3 with the TensorFlow backend runs ``fit`` and ``predict`` on every replica of the strategy a model was
built under (``keras.distribution`` is the JAX-side API and does not apply). tfscissor therefore never moves the
caller's model into a strategy: it runs a copy built in ``strategy.scope()`` (see :func:`replicate`) and, after
training, copies the weights back, so every model tfscissor returns or trains in place stays an ordinary
single-device model that saves, trims and quantises as before.

``batch_size`` is always the global batch (the Keras and TensorFlow convention): each step takes that many
images and splits them across the replicas, so a run under a strategy takes the same steps, with the same
learning-rate schedule, as one on a single device. Each step's gradient is then the single-device one up to
float summation order, except in a last, partial batch that splits unevenly: Keras averages the loss per
replica and then over replicas, so there the images of the smaller share weigh a little more.
"""

import json
import os
from contextlib import contextmanager

from tfscissor.errors import UsageError

STRATEGIES = ("none", "mirrored", "multi_worker")

_TF_CONFIG_FORM = (
    'TF_CONFIG must hold JSON such as {"cluster": {"worker": ["host1:port", "host2:port"]}, '
    '"task": {"type": "worker", "index": 0}} (this machine\'s entry in the cluster)'
)


def strategy_for(name):
    """The ``tf.distribute`` strategy called ``name``: one of :data:`STRATEGIES`.

    ``"none"`` gives None (TensorFlow's default strategy: one device). ``"mirrored"`` mirrors over every
    visible GPU, or over the logical CPU devices when there is no GPU (one CPU unless they were split with
    ``tf.config.set_logical_device_configuration``). ``"multi_worker"`` mirrors over the machines that
    ``TF_CONFIG`` lists; every worker runs the same program.
    """
    if name not in STRATEGIES:
        raise UsageError(f"unknown distribute strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    if name == "none":
        return None
    if name == "multi_worker":
        _check_tf_config(os.environ.get("TF_CONFIG"))
        import tensorflow as tf

        return tf.distribute.MultiWorkerMirroredStrategy()
    import tensorflow as tf

    # MirroredStrategy() alone takes only the first CPU when there is no GPU.
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def _check_tf_config(text):
    # Without a usable TF_CONFIG, MultiWorkerMirroredStrategy quietly trains on this machine alone.
    if not text:
        raise UsageError(f"the multi_worker strategy needs TF_CONFIG, which is not set: {_TF_CONFIG_FORM}")
    try:
        config = json.loads(text)
        workers = config["cluster"][config["task"]["type"]]
        index = config["task"]["index"]
        valid = isinstance(workers, list) and isinstance(index, int) and 0 <= index < len(workers)
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        raise UsageError(f"TF_CONFIG is not a cluster this machine belongs to ({text!r}): {_TF_CONFIG_FORM}")


def leaves_a_replica_empty(size, batch_size, replicas):
    """Whether the last, partial batch of ``size`` images leaves one of ``replicas`` replicas no image.

    TensorFlow hands out a partial batch of r images ceil(r / replicas) at a time, in replica order, so 5
    images over 4 replicas are split 2, 2, 1, 0.
    """
    rest = size % batch_size
    return 0 < rest <= (replicas - 1) * -(-rest // replicas)


def check_training(strategy, batch_size, **sizes):
    """Raise UsageError before training under ``strategy`` where Keras or TensorFlow would fail mid-run.

    ``sizes`` name the image counts that will be split into batches of ``batch_size`` (train and val).
    """
    if strategy is None:
        return
    import tensorflow as tf

    local = strategy.extended.worker_devices
    if strategy.num_replicas_in_sync > len(local):
        # Keras 3.15's fit and evaluate fail across several workers: the first batch is reduced as one
        # structure and every scalar log with axis=0 (keras-team/keras#20585). Statistics (predict) work.
        raise UsageError(
            "training under the multi_worker strategy with several workers fails in Keras 3 "
            "(keras-team/keras#20585): train with the mirrored strategy on one machine; relevance statistics "
            "do run across workers"
        )
    if all(tf.DeviceSpec.from_string(device).device_type != "CPU" for device in local):
        return
    replicas = strategy.num_replicas_in_sync
    for name, size in sizes.items():
        # On the CPU, TensorFlow 2.21's oneDNN convolution gives an empty batch the input's channel count,
        # and the step then fails with an opaque shape error.
        if leaves_a_replica_empty(size, batch_size, replicas):
            raise UsageError(
                f"{name} has {size} images: its last batch of {size % batch_size} leaves one of the {replicas} "
                f"CPU replicas without images, which TensorFlow's CPU convolution fails on; choose a batch_size "
                f"that divides {size} or leaves a multiple of {replicas} over"
            )


def _replica_layer(operation):
    import keras

    config = operation.get_config()
    if isinstance(operation, keras.layers.BatchNormalization):
        # Each replica would otherwise normalise by its own share of the batch, which trains a different
        # model from one device's (and a worse one when shares are small).
        config["synchronized"] = True
    return type(operation).from_config(config)


def replicate(model, strategy):
    """A copy of ``model`` built in ``strategy.scope()``, weights included, for Keras to run on every replica.

    Batch normalisation in the copy is synchronised across replicas, so a training step normalises by the
    statistics of the global batch, as on one device. Nested models are inlined (layer names are kept).
    Returns the copy and a list of (original layer, its copy) pairs that hold weights.
    """
    from tfscissor.models.graph import rebuild_graph

    with strategy.scope():
        copy, clones = rebuild_graph(model, _replica_layer)
        pairs = [(original, clone) for original, clone in clones.items() if getattr(original, "weights", None)]
        for original, clone in pairs:
            clone.set_weights(original.get_weights())
    return copy, pairs


@contextmanager
def trained_under(model, strategy):
    """Give the model to compile and fit: ``model`` itself without a strategy; under one, its :func:`replicate`
    copy, whose weights go back into ``model`` when the block ends without an error."""
    if strategy is None:
        yield model
        return
    copy, pairs = replicate(model, strategy)
    yield copy
    for original, clone in pairs:
        original.set_weights(clone.get_weights())

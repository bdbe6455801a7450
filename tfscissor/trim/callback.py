"""A Keras callback that collects per-channel activation statistics while a model runs.

It works in ``predict``, ``evaluate`` and ``fit``: at the start of a run it wraps the ``call`` of each tapped
layer so that the layer's output also updates running sums, and rebuilds the run's step function so the
wrapper is traced in; at the end it restores the layer. Statistics are gathered in the same pass that
produces the run's outputs, with no second forward pass.
"""

import keras

from tfscissor.models.distribute import leaves_a_replica_empty, replicate
from tfscissor.models.graph import find_operation
from tfscissor.trim.statistics import ChannelStatistics, LayerStatistics

# Layers whose output is a post-activation signal: the relevance paper's "output of the activation function".
ACTIVATION_LAYERS = (
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
)


def activation_layer_names(model):
    return [layer.name for layer in model.layers if isinstance(layer, ACTIVATION_LAYERS)]


class _Accumulator:
    """Running sums for one layer's output, kept in variables so they update inside a traced step."""

    def __init__(self, channels, recording):
        import tensorflow as tf

        self.recording = recording

        # ON_READ + SUM: under a tf.distribute strategy each replica keeps its own sums and reading them
        # adds the replicas together, so statistics are reduced across devices by construction.
        def variable(shape, dtype):
            return tf.Variable(
                tf.zeros(shape, dtype),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.SUM,
            )

        self.total = variable((channels,), tf.float64)
        self.magnitude = variable((channels,), tf.float64)
        self.zeros = variable((channels,), tf.float64)
        self.count = variable((), tf.int64)

    def update(self, output):
        import tensorflow as tf

        # The wrapped layer also runs in runs nested in the observed one (fit's validation): those are traced
        # with the wrapper too, so a flag, not the tracing, decides what is counted. It scales the sums rather
        # than guarding them with tf.cond: a conditional per tapped layer made tracing several times slower.
        weight = tf.cast(self.recording, tf.float32)
        axes = list(range(output.shape.rank - 1))
        values = tf.cast(output, tf.float32)
        # Reduce one batch in float32 (cheap); accumulate per-channel sums in float64 (exact over millions).
        for variable, reduced in (
            (self.total, values),
            (self.magnitude, tf.abs(values)),
            (self.zeros, tf.cast(tf.equal(values, 0.0), tf.float32)),
        ):
            variable.assign_add(tf.cast(tf.reduce_sum(reduced, axis=axes) * weight, tf.float64))
        positions = tf.reduce_prod(tf.shape(output, out_type=tf.int64)[:-1])
        self.count.assign_add(positions * tf.cast(self.recording, tf.int64))

    def result(self):
        return LayerStatistics(self.total.numpy(), self.magnitude.numpy(), self.zeros.numpy(), int(self.count.numpy()))


class ActivationStatistics(keras.callbacks.Callback):
    """Collects the sum, the sum of absolute values, the zero count and the position count per channel of the
    outputs of ``layer_names`` (layers of the model or of models nested in it).

    Args:
        layer_names: layers to tap; None taps every activation layer of the model.
        modes: which runs to observe, any of ``"predict"``, ``"test"`` (evaluate) and ``"train"`` (fit).

    After a run, :attr:`statistics` holds a :class:`ChannelStatistics` of that run; each run starts afresh.
    Runs nested in an observed run (the validation inside ``fit``) are not observed separately: to record
    the validation data of a ``fit``, observe ``"test"`` alone.
    """

    def __init__(self, layer_names=None, modes=("predict", "test")):
        super().__init__()
        self.layer_names = None if layer_names is None else tuple(layer_names)
        self.modes = tuple(modes)
        self.statistics = ChannelStatistics()
        self._accumulators = {}
        self._active = None  # the mode of the run being observed
        self._recording = None  # a variable the wrapped layers read: False while a nested run goes on

    def _begin(self, mode):
        import tensorflow as tf

        if self._active is not None:
            self._recording.assign(False)  # a run nested in the observed one
            return
        if mode not in self.modes:
            return
        self._active = mode
        names = self.layer_names if self.layer_names is not None else activation_layer_names(self.model)
        self.statistics = ChannelStatistics()
        self._accumulators = {}
        with self.model.distribute_strategy.scope():
            self._recording = tf.Variable(True, trainable=False)
            for name in names:
                layer = find_operation(self.model, name)
                self._accumulators[name] = accumulator = _Accumulator(int(layer.output.shape[-1]), self._recording)
                self._wrap(layer, accumulator)
        self._rebuild_step(mode)

    def _end(self, mode):
        if self._active is None:
            return
        if mode != self._active:
            self._recording.assign(True)  # the nested run is over
            return
        self._active = None
        for name in self._accumulators:
            layer = find_operation(self.model, name)
            # The wrapper lives in the instance dict; deleting it uncovers the class's own `call` again.
            del layer.call
        self.statistics = ChannelStatistics((name, acc.result()) for name, acc in self._accumulators.items())
        self._accumulators = {}
        self._rebuild_step(mode)

    @staticmethod
    def _wrap(layer, accumulator):
        original = layer.call

        def call(*args, **kwargs):
            output = original(*args, **kwargs)
            accumulator.update(output)
            return output

        layer.call = call

    def _rebuild_step(self, mode):
        make = {
            "predict": self.model.make_predict_function,
            "test": self.model.make_test_function,
            "train": self.model.make_train_function,
        }
        make[mode](force=True)

    def on_predict_begin(self, logs=None):
        self._begin("predict")

    def on_predict_end(self, logs=None):
        self._end("predict")

    def on_test_begin(self, logs=None):
        self._begin("test")

    def on_test_end(self, logs=None):
        self._end("test")

    def on_train_begin(self, logs=None):
        self._begin("train")

    def on_train_end(self, logs=None):
        self._end("train")


def collect_statistics(model, images, layer_names=None, batch_size=64, callbacks=None, strategy=None):
    """Run ``model.predict`` on ``images`` with an :class:`ActivationStatistics` callback; return its statistics.

    With a ``tf.distribute`` ``strategy``, a copy of ``model`` runs on its replicas, each on its share of every
    (global) batch of ``batch_size``, and the sums are added across replicas: the statistics are those of one
    device, up to the order of float additions.
    """
    if strategy is not None:
        # A last batch that would leave a replica empty runs on one device instead: TensorFlow's CPU
        # convolution fails on an empty batch, and sums add up whichever device computed them.
        rest = (
            len(images) % batch_size
            if leaves_a_replica_empty(len(images), batch_size, strategy.num_replicas_in_sync)
            else 0
        )
        statistics = collect_statistics(
            replicate(model, strategy)[0], images[: len(images) - rest], layer_names, batch_size, callbacks
        )
        if rest:
            statistics = statistics.merge(collect_statistics(model, images[-rest:], layer_names, batch_size, callbacks))
        return statistics
    recorder = ActivationStatistics(layer_names, modes=("predict",))
    model.predict(images, batch_size=batch_size, verbose=0, callbacks=[recorder, *(callbacks or [])])
    return recorder.statistics

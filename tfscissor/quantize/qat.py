"""Quantisation-aware training (QAT): fine-tune with fake quantisation, then convert to full int8.

tensorflow-model-optimization (tfmot) only quantises tf-keras (Keras 2) models, and tfscissor works on Keras 3
models (../shared/ENVIRONMENT.md). So QAT builds a tf-keras *mirror* of the Keras 3 graph, layer by layer from
a table of converters, copies the weights, checks that the mirror computes the same outputs, and only then
quantises, trains and converts it. This is the only module that imports ``tf_keras`` or tfmot, and it does so
inside functions, so that ``import tfscissor`` stays light.
"""

import os

import numpy as np

from tfscissor.deploy.flatbuffer import read_model
from tfscissor.deploy.litert import TFLiteModel
from tfscissor.errors import ModelError, UsageError
from tfscissor.models.training import check_input, evaluate_classifier
from tfscissor.quantize.ptq import QuantizeResult, _calibration_images, quantize_int8

__all__ = ["build_mirror", "check_mirror", "quantize_model_qat", "register_mirror", "MIRROR_TOLERANCE"]

# The largest output difference between a model and its mirror, relative to the outputs' magnitude (at least
# 1): both run the same float32 kernels, so anything above rounding noise is a wrongly mirrored layer.
MIRROR_TOLERANCE = 1e-4

PTQ_ADVICE = "use post-training quantisation (tfscissor quantize without --qat)"


def _same(class_name, *keys):
    """A converter to the tf-keras layer ``class_name`` taking the Keras 3 layer's ``keys`` config entries.

    Only the keys that decide the computation are carried: initialisers, regularisers and constraints do not
    matter (the weights are copied) and their Keras 3 serialisation is not tf-keras's.
    """

    def convert(layer, tf_keras):
        config = layer.get_config()
        return getattr(tf_keras.layers, class_name)(name=layer.name, **{k: config[k] for k in keys if k in config})

    return convert


_CONV = ("kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation", "use_bias")
_POOL = ("pool_size", "strides", "padding", "data_format")

# Keras 3 layer class name (in keras.layers) -> converter: the layers tfscissor's builders, trimming and
# shrinking produce, plus the common ones of keras.applications models that tfmot's 8-bit scheme quantises.
# Each mirrored layer's weights are in the same order as the original's, so set_weights copies them.
_BUILTIN = {
    "Conv2D": _same("Conv2D", "filters", "groups", *_CONV),
    "DepthwiseConv2D": _same("DepthwiseConv2D", "depth_multiplier", *_CONV),
    "SeparableConv2D": _same("SeparableConv2D", "filters", "depth_multiplier", *_CONV),
    "Dense": _same("Dense", "units", "activation", "use_bias"),
    "BatchNormalization": _same("BatchNormalization", "axis", "momentum", "epsilon", "center", "scale"),
    "ReLU": _same("ReLU", "max_value", "negative_slope", "threshold"),
    "Activation": _same("Activation", "activation"),
    "Softmax": _same("Softmax", "axis"),
    "Add": _same("Add"),
    "Concatenate": _same("Concatenate", "axis"),
    "MaxPooling2D": _same("MaxPooling2D", *_POOL),
    "AveragePooling2D": _same("AveragePooling2D", *_POOL),
    "GlobalAveragePooling2D": _same("GlobalAveragePooling2D", "data_format", "keepdims"),
    "GlobalMaxPooling2D": _same("GlobalMaxPooling2D", "data_format", "keepdims"),
    "Flatten": _same("Flatten", "data_format"),
    "Reshape": _same("Reshape", "target_shape"),
    "Dropout": _same("Dropout", "rate", "noise_shape", "seed"),
    "Rescaling": _same("Rescaling", "scale", "offset"),
    "ZeroPadding2D": _same("ZeroPadding2D", "padding", "data_format"),
}
_CUSTOM = {}


def register_mirror(layer_class, convert):
    """Mirror Keras 3 layers of exactly ``layer_class`` with ``convert(layer, tf_keras) -> tf_keras layer``.

    The tf-keras layer must take the layer's name and hold its weights in the same order (they are copied
    with ``set_weights``); for tfmot to quantise it, it must be a layer tfmot's 8-bit scheme supports.
    """
    _CUSTOM[layer_class] = convert


def _converter(layer):
    import keras

    kind = type(layer)
    if kind in _CUSTOM:
        return _CUSTOM[kind]
    # The exact class only: a subclass (a custom layer) may compute something else under the same config.
    if kind.__name__ in _BUILTIN and getattr(keras.layers, kind.__name__, None) is kind:
        return _BUILTIN[kind.__name__]
    raise ModelError(
        f"layer '{layer.name}' ({kind.__name__}) has no tf-keras mirror for quantisation-aware training: "
        f"{PTQ_ADVICE}, or register a converter with tfscissor.quantize.register_mirror"
    )


def _import_tfmot():
    """``(tf_keras, tfmot)``, leaving the process's ``tf.keras`` alone.

    Importing tfmot sets TF_USE_LEGACY_KERAS=1 (../shared/ENVIRONMENT.md), which would make any later first use
    of ``tf.keras`` in the process tf-keras; tfmot has bound tf-keras by then, so the variable is restored.
    """
    previous = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as tfmot
        import tf_keras
    finally:
        if previous is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = previous
    return tf_keras, tfmot


def build_mirror(model):
    """A tf-keras functional model with the graph and weights of the Keras 3 ``model`` (unchanged).

    Nested models are inlined first. A layer with no converter raises ModelError naming it.
    """
    from tfscissor.models.graph import functional_graph, has_nested_models, inline_nested, nodes_in_order

    tf_keras, _ = _import_tfmot()
    graph = functional_graph(model, advice=PTQ_ADVICE)
    if has_nested_models(graph):
        graph = inline_nested(graph)
    for node in nodes_in_order(graph):  # refuse before building anything
        if not node.is_input:
            _converter(node.operation)

    tensors = {}
    for tensor in graph.inputs:
        tensors[id(tensor)] = tf_keras.Input(
            shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=tensor._keras_history.operation.name
        )
    inputs = [tensors[id(tensor)] for tensor in graph.inputs]
    mirrored = {}
    for node in nodes_in_order(graph):
        if node.is_input:
            continue
        layer = node.operation
        if id(layer) not in mirrored:  # a layer called at several nodes shares its weights, as in the original
            try:
                mirrored[id(layer)] = (layer, _converter(layer)(layer, tf_keras))
            except (TypeError, ValueError) as err:  # a config value tf-keras does not know (an activation name)
                raise ModelError(
                    f"layer '{layer.name}' ({type(layer).__name__}) cannot be mirrored in tf-keras "
                    f"({str(err).strip().splitlines()[0]}): {PTQ_ADVICE}"
                ) from err
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = mirrored[id(layer)][1](*args, **kwargs)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for tensor, result in zip(node.outputs, outputs, strict=True):
            tensors[id(tensor)] = result
    for original, clone in mirrored.values():
        if original.weights:
            clone.set_weights(original.get_weights())
    outputs = [tensors[id(tensor)] for tensor in graph.outputs]
    return tf_keras.Model(
        inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name
    )


def check_mirror(model, mirror, images, tolerance=MIRROR_TOLERANCE):
    """The largest absolute difference between ``model``'s and ``mirror``'s outputs on ``images``; raises
    ModelError when it exceeds ``tolerance`` times the outputs' magnitude (at least 1)."""
    images = np.asarray(images, dtype=np.float32)
    expected = np.asarray(model.predict(images, verbose=0))
    actual = np.asarray(mirror.predict(images, verbose=0))
    if actual.shape != expected.shape:
        raise ModelError(
            f"the tf-keras mirror of {model.name} returns outputs of shape {actual.shape[1:]}, "
            f"the model {expected.shape[1:]}: {PTQ_ADVICE}"
        )
    difference = float(np.abs(actual - expected).max())
    if not difference <= tolerance * max(1.0, float(np.abs(expected).max())):
        raise ModelError(
            f"the tf-keras mirror of {model.name} differs from it by up to {difference:.3g} (tolerance "
            f"{tolerance:g}): a layer is mirrored wrongly; {PTQ_ADVICE}"
        )
    return difference


def _quantize_scope(tfmot):
    """``(annotate, scope)``: how to annotate layers tfmot's 8-bit registry lacks, and the scope to apply it."""
    import tensorflow as tf

    do_not_convert = tf.autograph.experimental.do_not_convert

    class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        """Fake-quantise only the layer's output, as the int8 kernel that runs the layer quantises it.

        tfmot has no config for Rescaling, which tfscissor's models start with (pixels to [0, 1]); it has no
        weights, and the converter turns it into an int8 MUL whose output needs a range learnt in training.

        Its methods are plain Python that tfmot calls inside a tf.function: kept out of AutoGraph, whose cache
        is keyed by code objects that a class made anew per call can share an id with once garbage-collected
        (seen: set_quantize_weights dispatched to a stale get_activations_and_quantizers).
        """

        @do_not_convert
        def get_weights_and_quantizers(self, layer):
            return []

        @do_not_convert
        def get_activations_and_quantizers(self, layer):
            return []

        @do_not_convert
        def set_quantize_weights(self, layer, quantize_weights):
            pass

        @do_not_convert
        def set_quantize_activations(self, layer, quantize_activations):
            pass

        @do_not_convert
        def get_output_quantizers(self, layer):
            return [
                tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
                    num_bits=8, per_axis=False, symmetric=False, narrow_range=False
                )
            ]

        @do_not_convert
        def get_config(self):
            return {}

    def annotate(layer):
        import tf_keras

        fresh = type(layer).from_config(layer.get_config())
        if isinstance(layer, tf_keras.layers.Rescaling):
            return tfmot.quantization.keras.quantize_annotate_layer(fresh, OutputQuantizeConfig())
        return fresh

    return annotate, tfmot.quantization.keras.quantize_scope({"OutputQuantizeConfig": OutputQuantizeConfig})


def fake_quantized(mirror):
    """The tfmot QAT model of ``mirror`` (default 8-bit scheme: per-channel weights, batch norm folded into
    the conv before it at conversion); ModelError for a graph tfmot cannot quantise."""
    tf_keras, tfmot = _import_tfmot()
    annotate, scope = _quantize_scope(tfmot)
    annotated = tf_keras.models.clone_model(mirror, clone_function=annotate)
    annotated.set_weights(mirror.get_weights())
    try:
        with scope:
            return tfmot.quantization.keras.quantize_apply(tfmot.quantization.keras.quantize_annotate_model(annotated))
    except (RuntimeError, ValueError, TypeError) as err:  # tfmot's "Layer ... is not supported" and the like
        raise ModelError(
            f"tfmot cannot quantise {mirror.name} for training ({str(err).strip().splitlines()[0]}): {PTQ_ADVICE}"
        ) from err


def _callback_bridge(tf_keras, callbacks):
    """A tf-keras callback that forwards the training hooks to Keras 3 ``callbacks`` (such as the CLI's
    progress bars), so that callers pass the same callbacks as to :func:`train_classifier`."""

    class Bridge(tf_keras.callbacks.Callback):
        def set_params(self, params):
            super().set_params(params)
            for callback in callbacks:
                callback.set_params(params)

        def on_train_begin(self, logs=None):
            for callback in callbacks:
                callback.on_train_begin(logs)

        def on_epoch_begin(self, epoch, logs=None):
            for callback in callbacks:
                callback.on_epoch_begin(epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            for callback in callbacks:
                callback.on_train_batch_end(batch, logs)

        def on_epoch_end(self, epoch, logs=None):
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)

        def on_train_end(self, logs=None):
            for callback in callbacks:
                callback.on_train_end(logs)

    return Bridge()


def train_fake_quantized(qat_model, split, *, epochs, learning_rate, batch_size, seed, from_logits, callbacks=()):
    """Fine-tune the QAT model on ``split`` (Adam, cosine decay to 0 as in :func:`train_classifier`)."""
    tf_keras, _ = _import_tfmot()
    tf_keras.utils.set_random_seed(seed)
    steps = epochs * -(-len(split) // batch_size)
    qat_model.compile(
        optimizer=tf_keras.optimizers.Adam(tf_keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    history = qat_model.fit(
        split.images.astype(np.float32),
        split.labels,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[_callback_bridge(tf_keras, list(callbacks))],
    )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def convert_fake_quantized(qat_model, representative_images, num_samples=200, seed=0):
    """Full-int8 ``.tflite`` bytes (int8 input and output, batch of one) of a tfmot QAT model.

    The ranges come from the model's fake-quantisation nodes; the converter still wants representative images
    for full-integer conversion, drawn as :func:`to_tflite` draws them.
    """
    import tensorflow as tf

    chosen = _calibration_images(qat_model, representative_images, num_samples, seed)
    # A batch of one makes every shape static, as in to_tflite: the Edge TPU refuses a dynamic batch.
    signature = tf.TensorSpec((1, *qat_model.input_shape[1:]), tf.float32)

    @tf.function(input_signature=[signature])
    def serve(images):
        return qat_model(images, training=False)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], qat_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in chosen)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        tflite = converter.convert()
    except Exception as err:  # the converter raises ConverterError, RuntimeError or ValueError alike
        raise ModelError(
            f"conversion of the QAT model {qat_model.name} to .tflite failed: {str(err).strip().splitlines()[0]}; "
            f"{PTQ_ADVICE}"
        ) from err
    info = read_model(tflite, name=f"{qat_model.name} (QAT int8)")
    if not info.fully_int8:
        raise ModelError(
            f"the QAT model {qat_model.name} converted with non-int8 tensors "
            f"({', '.join(map(str, info.non_int8_tensors[:3]))}): {PTQ_ADVICE}"
        )
    return tflite


def _is_probability(scores):
    return bool(np.all(scores >= 0) and np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3))


def quantize_model_qat(
    model,
    dataset,
    epochs,
    *,
    learning_rate=1e-4,
    batch_size=32,
    num_samples=200,
    seed=0,
    compare_ptq=True,
    callbacks=(),
):
    """Quantisation-aware training of the Keras 3 ``model`` on ``dataset.train`` for ``epochs``, then full
    int8 conversion; accuracies on ``dataset.val``. ``model`` is unchanged.

    The tf-keras mirror is checked against ``model`` before training (:func:`check_mirror`). The result is a
    :class:`QuantizeResult` with ``method="qat"``, the fake-quant model's accuracy before conversion, the
    training history and, with ``compare_ptq``, the int8 accuracy post-training quantisation reaches.
    ``callbacks`` are Keras 3 callbacks (progress bars) called during training.
    """

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UsageError(f"quantisation-aware training needs a whole number of epochs, at least 1, got {epochs!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise UsageError(f"learning rate must be positive, got {learning_rate}: e.g. 1e-4")
    check_input(model, dataset.image_shape, dataset.spec)
    if len(dataset.train) == 0:
        raise ModelError(f"{dataset.spec} has no training images for quantisation-aware training")

    mirror = build_mirror(model)
    probe = dataset.train.images[: min(len(dataset.train), 32)]
    check_mirror(model, mirror, probe)
    from_logits = not _is_probability(np.asarray(model.predict(probe.astype(np.float32), verbose=0)))

    qat_model = fake_quantized(mirror)
    history = train_fake_quantized(
        qat_model,
        dataset.train,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        from_logits=from_logits,
        callbacks=callbacks,
    )
    scores = qat_model.predict(dataset.val.images.astype(np.float32), batch_size=256, verbose=0)
    fake_quant_accuracy = float(np.mean(np.argmax(scores, axis=-1) == dataset.val.labels))

    tflite = convert_fake_quantized(qat_model, dataset.train.images, num_samples=num_samples, seed=seed)
    runner = TFLiteModel(tflite, name=f"{model.name} (QAT int8)")
    ptq_accuracy = None
    if compare_ptq:
        ptq = TFLiteModel(quantize_int8(model, dataset.train.images, num_samples=num_samples, seed=seed))
        ptq_accuracy = ptq.accuracy(dataset.val.images, dataset.val.labels)
    return QuantizeResult(
        tflite=tflite,
        float_accuracy=evaluate_classifier(model, dataset.val),
        int8_accuracy=runner.accuracy(dataset.val.images, dataset.val.labels),
        input_quantization=runner.input_quantization,
        output_quantization=runner.output_quantization,
        method="qat",
        ptq_int8_accuracy=ptq_accuracy,
        fake_quant_accuracy=fake_quant_accuracy,
        history=history,
    )

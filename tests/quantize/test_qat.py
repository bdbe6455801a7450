"""Quantisation-aware training: the tf-keras mirror, tfmot's fake quantisation, the int8 result and the CLI."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from tfscissor.cli import cli
from tfscissor.deploy import read_model
from tfscissor.deploy.litert import TFLiteModel, quantize_image
from tfscissor.errors import ModelError, UsageError
from tfscissor.models import build_model, load_model
from tfscissor.models.cropper import build_cropper
from tfscissor.quantize import build_mirror, check_mirror, qat, quantize_model_qat, register_mirror
from tfscissor.shrink import find_blocks, remove_blocks
from tfscissor.trim import collect_statistics, trim_model

SHAPE = (16, 16, 3)
BUILDERS = {
    "plain": lambda: build_model("plain", SHAPE, 4, widths=(8, 16), dropout=0.2, seed=0),
    "resnet": lambda: build_model("resnet", SHAPE, 4, blocks=(2, 1), widths=(8, 16), seed=0),
    "bottleneck": lambda: build_model("resnet", SHAPE, 4, blocks=(1, 1), widths=(4, 8), block="bottleneck", seed=0),
    "mobilenetv2": lambda: build_model(
        "mobilenetv2", SHAPE, 4, stages=((1, 8, 1, 1), (6, 16, 2, 2)), stem_width=8, head_width=32, seed=0
    ),
    "cropper": lambda: build_cropper((32, 32, 3), view=16, width=0.25, stages=2, blocks=1, seed=0),
}


def randomized(model, seed=0, gamma=(0.5, 1.5)):
    """``model`` with random biases and batch-norm parameters: a freshly built model's zero biases, moving
    mean 0 and variance 1 would hide a mirror that swapped or dropped them (kernels are random already)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            scale = rng.uniform(*gamma, layer.gamma.shape)
            beta, mean = rng.uniform(-0.5, 0.5, (2, *layer.beta.shape))
            variance = rng.uniform(0.5, 1.5, layer.moving_variance.shape)
            layer.set_weights([w.astype(np.float32) for w in (scale, beta, mean, variance)])
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype(np.float32))
    return model


def pixels(n, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape)).astype(np.float32)


def trimmed_resnet():
    model = randomized(BUILDERS["resnet"]())
    return trim_model(model, collect_statistics(model, pixels(16)), ratio=0.5).model


def block_removed_resnet():
    model = randomized(BUILDERS["resnet"]())
    return remove_blocks(model, [find_blocks(model)[0].add])


CASES = {
    **{name: lambda build=build: randomized(build()) for name, build in BUILDERS.items()},
    # Larger batch-norm scales drive some ReLU6 inputs past 6, so that a mirror dropping max_value shows (in
    # the residual models they saturate the softmax instead).
    "mobilenetv2": lambda: randomized(BUILDERS["mobilenetv2"](), gamma=(1.0, 4.0)),
    "trimmed": trimmed_resnet,
    "blocks removed": block_removed_resnet,
}


@pytest.mark.parametrize("name", CASES)
def test_mirror_reproduces_the_keras3_model(name):
    model = CASES[name]()
    images = pixels(8, tuple(model.input_shape[1:]))
    mirror = build_mirror(model)
    assert type(mirror).__module__.startswith("tf_keras")
    assert [layer.name for layer in mirror.layers if layer.weights] == [
        layer.name for layer in model.layers if layer.weights
    ]
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(mirror.predict(images, verbose=0), expected, atol=1e-5)
    assert check_mirror(model, mirror, images) < 1e-5
    # The scores are not all alike, so agreement means something.
    assert np.ptp(expected, axis=0).max() > 1e-3


def test_sequential_and_nested_models_are_mirrored():
    inner = keras.Sequential(
        [keras.Input(SHAPE), keras.layers.Conv2D(4, 3, name="c"), keras.layers.ReLU(name="r")], name="inner"
    )
    inputs = keras.Input(SHAPE)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(inner(keras.layers.Rescaling(1 / 255, name="s")(inputs)))
    model = randomized(keras.Model(inputs, keras.layers.Dense(3, name="d")(x)))
    mirror = build_mirror(model)
    assert {"c", "r", "d"} <= {layer.name for layer in mirror.layers}
    assert check_mirror(model, mirror, pixels(4)) < 1e-5


def test_unsupported_layer_is_refused():
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ModelError, match=r"layer 'norm' \(LayerNormalization\) has no tf-keras mirror.*without --qat"):
        build_mirror(model)


class Halve(keras.layers.Layer):
    def call(self, x):
        return x * 0.5


def test_a_subclass_needs_a_registered_converter(monkeypatch):
    inputs = keras.Input(SHAPE)
    model = keras.Model(inputs, Halve(name="halve")(keras.layers.Conv2D(4, 3, name="conv")(inputs)))
    with pytest.raises(ModelError, match=r"'halve' \(Halve\).*register_mirror"):
        build_mirror(model)
    monkeypatch.setattr(qat, "_CUSTOM", {})
    register_mirror(Halve, lambda layer, tf_keras: tf_keras.layers.Rescaling(0.5, name=layer.name))
    assert check_mirror(model, build_mirror(model), pixels(4)) < 1e-5


def test_unknown_config_value_is_a_model_error():
    inputs = keras.Input(SHAPE)
    # Keras 3 knows this activation, tf-keras 2 does not.
    model = keras.Model(inputs, keras.layers.Activation("hard_silu", name="act")(inputs))
    with pytest.raises(ModelError, match=r"layer 'act' \(Activation\) cannot be mirrored"):
        build_mirror(model)


def test_a_wrong_mirror_is_caught():
    model = randomized(BUILDERS["plain"]())
    mirror = build_mirror(model)
    mirror.get_layer("predictions").set_weights([w * 2 for w in mirror.get_layer("predictions").get_weights()])
    with pytest.raises(ModelError, match="differs from it by up to"):
        check_mirror(model, mirror, pixels(4))
    other = build_mirror(build_model("plain", SHAPE, 5, widths=(8,)))
    with pytest.raises(ModelError, match=r"outputs of shape \(5,\), the model \(4,\)"):
        check_mirror(model, other, pixels(4))


def test_graph_tfmot_cannot_quantise_is_a_model_error():
    inputs = keras.Input(SHAPE)
    x = keras.layers.BatchNormalization(name="lone_bn")(keras.layers.Flatten()(inputs))  # no conv to fold into
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    with pytest.raises(ModelError, match="tfmot cannot quantise.*lone_bn.*without --qat"):
        qat.fake_quantized(build_mirror(model))


@pytest.fixture(scope="module")
def qat_result(tiny_data, trained_plain):
    model = load_model(trained_plain)
    before = [w.copy() for w in model.get_weights()]
    epochs = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append((epoch, self.params["epochs"], sorted(logs)))

    result = quantize_model_qat(model, tiny_data, epochs=1, num_samples=50, callbacks=[Recorder()])
    unchanged = all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    return model, result, epochs, unchanged


@pytest.mark.slow
def test_qat_model_is_int8_end_to_end_with_a_static_batch(qat_result):
    model, result, _, _ = qat_result
    info = read_model(result.tflite)
    assert info.fully_int8
    assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
    assert tuple(info.inputs[0].shape) == (1, 32, 32, 3)
    assert result.method == "qat"
    # The in-model rescale gives the same input quantisation as PTQ: the pixel shifted by -128.
    scale, zero_point = result.input_quantization
    assert zero_point == -128 and scale == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
def test_qat_accuracy(qat_result, tiny_data):
    _, result, _, _ = qat_result
    assert result.float_accuracy > 1.5 / tiny_data.num_classes
    assert result.ptq_int8_accuracy is not None
    # The converted model computes what the fake-quant model it came from computed, up to rounding: within
    # 3 points on 160 val images.
    assert abs(result.int8_accuracy - result.fake_quant_accuracy) <= 0.03
    # One epoch at a small learning rate keeps the model near where it started.
    assert abs(result.int8_accuracy - result.float_accuracy) <= 0.1


@pytest.mark.slow
def test_qat_trains_with_the_callers_callbacks_and_leaves_the_model(qat_result):
    _, result, epochs, unchanged = qat_result
    assert epochs == [(0, 1, ["accuracy", "loss"])]
    assert len(result.history["loss"]) == 1
    assert unchanged


@pytest.mark.slow
def test_qat_model_runs_in_litert_and_tflite_micro(qat_result, tiny_data):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro import runtime

    _, result, _, _ = qat_result
    images = tiny_data.val.images[:8]
    micro = runtime.Interpreter.from_bytes(result.tflite, arena_size=1 << 20)
    # TFLM's kernels are ports of LiteRT's reference kernels: the same integers come out of both.
    reference = Interpreter(model_content=result.tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    reference.allocate_tensors()
    source, target = reference.get_input_details()[0]["index"], reference.get_output_details()[0]["index"]
    scale, zero_point = result.input_quantization
    for image in images:
        tensor = quantize_image(image, scale, zero_point)[None]
        micro.set_input(tensor, 0)
        micro.invoke()
        output = np.asarray(micro.get_output(0))
        assert output.dtype == np.int8 and output.shape == (1, tiny_data.num_classes)
        reference.set_tensor(source, tensor)
        reference.invoke()
        assert np.abs(output.astype(int) - reference.get_tensor(target).astype(int)).max() <= 1
    # LiteRT's optimised kernels (which measured int8_accuracy) round a few steps differently: the int8
    # softmax still sums to one.
    scores = TFLiteModel(result.tflite).predict(images)
    assert np.abs(scores.sum(axis=-1) - 1).max() < 0.05


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "a whole number of epochs, at least 1"),
        ({"epochs": 2.5}, "a whole number of epochs, at least 1"),
        ({"epochs": True}, "a whole number of epochs, at least 1"),
        ({"epochs": 1, "learning_rate": 0}, "learning rate must be positive"),
        ({"epochs": 1, "learning_rate": "1e-4"}, "learning rate must be positive"),
    ],
)
def test_bad_training_settings(tiny_data, kwargs, message):
    model = build_model("plain", tiny_data.image_shape, tiny_data.num_classes, widths=(4,))
    with pytest.raises(UsageError, match=message):
        quantize_model_qat(model, tiny_data, **kwargs)


@pytest.mark.slow
def test_conversion_failure_and_float_leftovers_are_model_errors(monkeypatch):
    import tensorflow as tf

    fake_quant = qat.fake_quantized(build_mirror(BUILDERS["plain"]()))
    real = tf.lite.TFLiteConverter.from_concrete_functions

    def broken(functions, trackable):
        converter = real(functions, trackable)

        def convert():
            raise RuntimeError("converter exploded\nwith details")

        converter.convert = convert
        return converter

    with monkeypatch.context() as patch:
        patch.setattr(tf.lite.TFLiteConverter, "from_concrete_functions", broken)
        with pytest.raises(ModelError, match="conversion of the QAT model .* failed: converter exploded; use post"):
            qat.convert_fake_quantized(fake_quant, pixels(8))

    class FloatLeft:
        fully_int8 = False
        non_int8_tensors = ("conv/bias (float32)",)

    monkeypatch.setattr(qat, "read_model", lambda *a, **k: FloatLeft())
    with pytest.raises(ModelError, match=r"non-int8 tensors \(conv/bias \(float32\)\)"):
        qat.convert_fake_quantized(fake_quant, pixels(8))


# --- the CLI ----------------------------------------------------------------------------------------------

DATA = "cluttered:size=32,n=800,classes=4,seed=1"  # tiny_data's spec, so trained_plain fits it


def invoke(*args):
    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


@pytest.mark.slow
def test_cli_quantize_qat(trained_plain, tmp_path):
    out = tmp_path / "qat.tflite"
    result = invoke("quantize", trained_plain, "--data", DATA, "--qat", "--epochs", "1", "--samples", "50", "-o", out)
    assert result.exit_code == 0, result.output
    assert read_model(out.read_bytes()).fully_int8
    lines = result.output.splitlines()
    assert any(line.startswith("accuracy float ") and "PTQ int8" in line and "QAT int8" in line for line in lines)
    assert any("input int8 = round(pixel / " in line for line in lines)
    assert [p.name for p in tmp_path.iterdir()] == ["qat.tflite"]  # written atomically: no temporary left


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qat", "--epochs", "0"], "Invalid value for '--epochs'"),
        (["--qat", "--lr", "0"], "Invalid value for '--lr'"),
        (["--epochs", "2"], "--epochs and --lr need --qat"),
        (["--qat", "--cropper", "c.keras"], "--qat quantises one classifier"),
    ],
)
def test_cli_quantize_qat_bad_input(trained_plain, tmp_path, args, message):
    result = invoke("quantize", trained_plain, "--data", DATA, *args, "-o", tmp_path / "x.tflite")
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.tflite").exists()

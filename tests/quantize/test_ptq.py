import numpy as np
import pytest

from tfscissor.deploy.litert import TFLiteModel
from tfscissor.errors import ModelError
from tfscissor.models import build_model, load_model
from tfscissor.quantize import quantize_int8, quantize_model, to_tflite


@pytest.fixture(scope="module")
def model():
    return build_model("resnet", (32, 32, 3), 4, blocks=(1, 1), widths=(8, 16))


def test_float_conversion_matches_keras(model, images):
    runner = TFLiteModel(to_tflite(model))
    assert runner.input["dtype"] == np.float32
    np.testing.assert_allclose(runner.predict(images[:8]), model.predict(images[:8], verbose=0), atol=1e-5)


def test_int8_model_is_integer_end_to_end(model, images):
    runner = TFLiteModel(quantize_int8(model, images))
    assert runner.input["dtype"] == np.int8 and runner.output["dtype"] == np.int8
    float_or_int = {d["dtype"] for d in runner.interpreter.get_tensor_details()}
    assert np.float32 not in float_or_int  # no float tensor anywhere: TFLM and the Edge TPU need this
    # The in-model rescale makes the input quantisation the pixel shifted by -128, up to calibration range.
    scale, zero_point = runner.input_quantization
    assert zero_point == -128 and scale == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(runner.predict(images[:8]), model.predict(images[:8], verbose=0), atol=0.05)


@pytest.mark.slow
def test_int8_accuracy_tracks_float(tiny_data, trained_plain):
    result = quantize_model(load_model(trained_plain), tiny_data, num_samples=100)
    assert result.float_accuracy > 1.5 / tiny_data.num_classes  # the fixture model learned something
    assert abs(result.int8_accuracy - result.float_accuracy) <= 0.05
    assert result.input_quantization[1] == -128


def test_representative_images_must_fit(model):
    with pytest.raises(ModelError, match="do not fit model input"):
        quantize_int8(model, np.zeros((4, 16, 16, 3)))


def test_conversion_failure_is_a_model_error(monkeypatch, model, images):
    import tensorflow as tf

    real_from_saved_model = tf.lite.TFLiteConverter.from_saved_model

    def from_saved_model(path):
        converter = real_from_saved_model(path)

        def broken():
            raise RuntimeError("converter exploded\nwith details")

        converter.convert = broken
        return converter

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", from_saved_model)
    with pytest.raises(ModelError, match="conversion of .* failed: converter exploded$"):
        to_tflite(model)

import numpy as np
import pytest

from tfscissor.deploy.litert import TFLiteModel
from tfscissor.errors import ModelError, UsageError
from tfscissor.models import build_model
from tfscissor.quantize import quantize_int8


@pytest.fixture(scope="module")
def int8_bytes():
    model = build_model("plain", (32, 32, 3), 3, widths=(8,))
    return quantize_int8(model, np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3)))


def test_quantize_input_uses_the_tensor_parameters(int8_bytes):
    runner = TFLiteModel(int8_bytes)
    scale, zero_point = runner.input_quantization
    image = np.array([[[0.0, 128.0, 255.0]]])
    expected = np.clip(np.round(image / scale) + zero_point, -128, 127)
    np.testing.assert_array_equal(runner.quantize_input(image), expected.astype(np.int8))


def test_accuracy_counts_argmax_hits(int8_bytes, images):
    runner = TFLiteModel(int8_bytes)
    labels = np.argmax(runner.predict(images), axis=1)
    assert runner.accuracy(images, labels) == 1.0
    assert runner.accuracy(images, (labels + 1) % 3) == 0.0


def test_load_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        TFLiteModel.load(tmp_path / "none.tflite")
    (tmp_path / "m.keras").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a .tflite file"):
        TFLiteModel.load(tmp_path / "m.keras")


def test_corrupt_bytes(int8_bytes):
    with pytest.raises(ModelError, match="not a valid .tflite"):
        TFLiteModel(int8_bytes[: len(int8_bytes) // 3], name="cut.tflite")


def test_wrong_image_shape(int8_bytes):
    with pytest.raises(ModelError, match=r"takes images of \(32, 32, 3\)"):
        TFLiteModel(int8_bytes).predict(np.zeros((1, 16, 16, 3)))

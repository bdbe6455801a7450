"""Tiny int8 models for the compile tests, built once per session (TF conversion takes about a second each)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

# The three project builders plus a hand-made graph whose ops the builders never emit (AVERAGE_POOL_2D,
# CONCATENATION, and Flatten's RESHAPE).
MODEL_NAMES = ("plain", "resnet", "mobilenetv2", "zoo")
INPUT_SHAPE = (16, 16, 3)
NUM_CLASSES = 3


def _zoo(keras):
    inputs = keras.Input(INPUT_SHAPE, name="input")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Concatenate()([keras.layers.AveragePooling2D(2)(x), keras.layers.MaxPooling2D(2)(x)])
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.ReLU(max_value=6.0)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, activation="softmax")(x), name="zoo")


def _build(name):
    import keras

    from tfscissor.models import build_model

    keras.utils.set_random_seed(0)
    if name == "zoo":
        return _zoo(keras)
    kwargs = {
        "plain": {"widths": (8, 16)},
        "resnet": {"blocks": (1, 1), "widths": (8, 16)},
        # Small stages so that the model stays tiny yet has stride-1 blocks with residual ADDs.
        "mobilenetv2": {"stages": ((1, 8, 1, 1), (4, 8, 2, 2)), "stem_width": 8, "head_width": 16},
    }[name]
    return build_model(name, INPUT_SHAPE, NUM_CLASSES, **kwargs)


@pytest.fixture(scope="session")
def int8_model():
    """``int8_model(name) -> bytes`` of a full-int8 .tflite, converted once per name."""
    from tfscissor.quantize import quantize_int8

    cache = {}
    images = np.random.default_rng(0).uniform(0, 255, (16, *INPUT_SHAPE)).astype(np.float32)

    def get(name):
        if name not in cache:
            cache[name] = quantize_int8(_build(name), images, num_samples=16)
        return cache[name]

    return get


WHOLE_IMAGE_SHAPE = (24, 32, 3)  # a two-stage pipeline's whole image: not square, the rows are the short side


@pytest.fixture(scope="session")
def whole_image_cropper():
    """``.tflite`` bytes of a full-int8 cropper for 24x32 images, whose crops the 16-px classifiers take."""
    from tfscissor.models.cropper import build_cropper
    from tfscissor.quantize import quantize_int8

    images = np.random.default_rng(1).uniform(0, 255, (16, *WHOLE_IMAGE_SHAPE)).astype(np.float32)
    cropper = build_cropper(WHOLE_IMAGE_SHAPE, view=24, width=0.25, stages=2, seed=0)
    return quantize_int8(cropper, images, num_samples=16)


@pytest.fixture(params=MODEL_NAMES)
def model_name(request):
    return request.param


class FakeCompiler:
    """fake_edgetpu_compiler.py installed as ``bin/edgetpu_compiler`` under a test's tmp_path."""

    def __init__(self, root):
        self.path = root / "bin" / "edgetpu_compiler"
        self.path.parent.mkdir()
        # The shebang runs it with this interpreter, which has tfscissor and the schema.
        body = Path(__file__).with_name("fake_edgetpu_compiler.py").read_text().split("\n", 1)[1]
        self.path.write_text(f"#!{sys.executable}\n{body}")
        self.path.chmod(0o755)
        self.calls_file = root / "calls.jsonl"

    def calls(self):
        """The argument lists it was run with, one per run."""
        if not self.calls_file.is_file():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]


@pytest.fixture
def fake_compiler(tmp_path, monkeypatch):
    fake = FakeCompiler(tmp_path)
    monkeypatch.setenv("FAKE_EDGETPU_CALLS", str(fake.calls_file))
    monkeypatch.delenv("FAKE_EDGETPU_MODE", raising=False)
    return fake

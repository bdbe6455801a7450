"""Tiny int8 models for the benchmark tests, converted once per session, and their Edge TPU look-alikes."""

import numpy as np
import pytest

# The compile tests' models of four builders (plain, ResNet-style, MobileNetV2-style, a zoo of ops), so the TFLM
# benchmark is checked on the models the arena search it reuses is checked on.
from tests.compile.conftest import int8_model  # noqa: F401  (a fixture: pytest finds it by name)
from tests.compile.helpers import repack

WHOLE_IMAGE_SHAPE = (24, 32, 3)  # the cropper's whole image; its crops are resized to the classifiers' 16 px


@pytest.fixture(scope="session")
def tiny_model_bytes():
    from tfscissor.models import build_model
    from tfscissor.quantize import quantize_int8

    images = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    return quantize_int8(build_model("plain", (16, 16, 3), 3, widths=(8,)), images, num_samples=8)


@pytest.fixture
def tiny_model_path(tmp_path, tiny_model_bytes):
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tiny_model_bytes)
    return path


@pytest.fixture(scope="session")
def tiny_cropper_bytes():
    """A full-int8 cropper for 24x32 images (four outputs: a box)."""
    from tfscissor.models.cropper import build_cropper
    from tfscissor.quantize import quantize_int8

    images = np.random.default_rng(1).uniform(0, 255, (8, *WHOLE_IMAGE_SHAPE)).astype(np.float32)
    cropper = build_cropper(WHOLE_IMAGE_SHAPE, view=24, width=0.25, stages=2, seed=0)
    return quantize_int8(cropper, images, num_samples=8)


def as_edgetpu(model_bytes):
    """``model_bytes`` with its first operator code turned into the Edge TPU's custom op, as edgetpu_compiler
    leaves a model whose leading ops it mapped. Only the op table changes: LiteRT cannot run the result, the
    Edge TPU tests run it through stand-in interpreters."""

    def mutate(model, schema):
        code = model.operatorCodes[0]
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = "edgetpu-custom-op"

    return repack(model_bytes, mutate)

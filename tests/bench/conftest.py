"""Tiny int8 models for the benchmark tests, converted once per session, and their Edge TPU look-alikes."""

import numpy as np
import pytest

# The compile tests' models of four builders (plain, ResNet-style, MobileNetV2-style, a zoo of ops), so the TFLM
# benchmark is checked on the models the arena search it reuses is checked on; and their cropper for 24x32 images.
from tests.compile.conftest import int8_model, whole_image_cropper  # noqa: F401  (fixtures: pytest finds them by name)
from tests.compile.helpers import repack


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


def as_edgetpu(model_bytes):
    """``model_bytes`` with its first operator code turned into the Edge TPU's custom op, as edgetpu_compiler
    leaves a model whose leading ops it mapped. Only the op table changes: LiteRT cannot run the result, the
    Edge TPU tests run it through stand-in interpreters."""

    def mutate(model, schema):
        code = model.operatorCodes[0]
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = "edgetpu-custom-op"

    return repack(model_bytes, mutate)

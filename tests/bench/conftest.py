"""A tiny int8 model for the benchmark tests, converted once per session."""

import numpy as np
import pytest


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

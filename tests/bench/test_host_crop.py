"""The two-stage bench's host crop: timed with the backend asked for, C by default where it is built."""

import pytest

from tests.crop.backends import BACKEND_PARAMS
from tfscissor.bench import bench
from tfscissor.deploy import crop_policy
from tfscissor.deploy.crop_policy import crop_backend
from tfscissor.errors import UsageError


@pytest.mark.parametrize("backend", [None, *BACKEND_PARAMS])
def test_the_crop_stage_names_its_backend(tiny_model_bytes, whole_image_cropper, backend):
    result = bench(tiny_model_bytes, cropper=whole_image_cropper, runs=3, warmup=0, crop_backend=backend)
    assert result["stages"]["crop"]["backend"] == f"{backend or crop_backend()} (host)"


def test_a_crop_backend_needs_a_cropper(tiny_model_bytes):
    with pytest.raises(UsageError, match="a crop backend needs a cropper"):
        bench(tiny_model_bytes, crop_backend="numpy")


def test_an_unknown_or_unbuilt_backend_fails_before_timing(tiny_model_bytes, whole_image_cropper, monkeypatch):
    ticks = []
    with pytest.raises(UsageError, match="unknown crop backend 'fortran'"):
        bench(tiny_model_bytes, cropper=whole_image_cropper, crop_backend="fortran", progress=ticks.append)
    monkeypatch.setattr(crop_policy, "_c", None)
    with pytest.raises(UsageError, match="is not built"):
        bench(tiny_model_bytes, cropper=whole_image_cropper, crop_backend="c", progress=ticks.append)
    assert ticks == []

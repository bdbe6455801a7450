"""The host's two crop backends: the firmware's C (``crop_policy.c`` built into ``tfscissor.deploy._crop_policy_c``)
and numpy, the reference, must give the same bytes, windows and fallbacks on any batch; without the extension
everything still crops in numpy."""

import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from tests.crop.backends import BACKEND_PARAMS, needs_c
from tfscissor.deploy import crop_policy
from tfscissor.deploy.crop_policy import BACKENDS, CropPolicy, crop_and_resize, crop_backend
from tfscissor.errors import UsageError

POLICIES = (
    CropPolicy(),
    CropPolicy(scales=None),
    CropPolicy(scales=(0.3, 0.6), margin=1.2),
    CropPolicy(margin=0.7),
    CropPolicy(scales=(0.1, 0.33, 1.0), margin=2.5),
)
# Boxes a cropper should not give but may: no area, inverted, NaN, infinite, huge, far outside the image.
ODD_BOXES = np.array(
    [
        [0.5, 0.5, 0.5, 0.9],
        [0.9, 0.1, 0.2, 0.8],
        [np.nan, 0.1, 0.5, 0.5],
        [0.2, 0.2, np.inf, 0.5],
        [-1e30, -1e30, 1e30, 1e30],
        [0.5, 0.4, 1e20, 0.6],
        [3.0, 3.0, 4.0, 4.0],
        [-0.4, -0.4, -0.1, -0.1],
        [0.25, 0.25, 0.5, 0.5],
    ],
    np.float32,
)
C_COMPILER = (sysconfig.get_config_var("CC") or "cc").split()[0]


def random_batch(rng, count, channels):
    """uint8 images of one random (often odd) size, and boxes: random ones, tiny ones and the odd ones."""
    height, width = rng.integers(1, 70, 2)
    images = rng.integers(0, 256, (count, height, width, channels), dtype=np.uint8)
    images[0] = np.linspace(0, 255, width)[None, :, None].astype(np.uint8)  # smooth: many exact ties
    centres, sides = rng.uniform(-0.2, 1.2, (count, 2)), rng.uniform(0, 1.3, (count, 2)) ** 2
    boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1).astype(np.float32)
    odd = rng.random(count) < 0.2
    boxes[odd] = ODD_BOXES[rng.integers(0, len(ODD_BOXES), int(odd.sum()))]
    return images, boxes


@pytest.mark.skipif(
    shutil.which(C_COMPILER) is None, reason=f"needs {C_COMPILER}, the C compiler Python was built with"
)
def test_the_extension_is_built_where_a_compiler_is():
    # setup.py's extension is optional, so a failed build only warns: this is where CI notices.
    assert crop_backend() == "c", "tfscissor.deploy._crop_policy_c did not build: see `pip install -v -e .`"


@needs_c
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("channels", [1, 3])
def test_c_crops_equal_numpys(seed, channels):
    rng = np.random.default_rng([seed, channels])
    for _ in range(12):
        images, boxes = random_batch(rng, int(rng.integers(1, 9)), channels)
        policy = POLICIES[rng.integers(0, len(POLICIES))]
        resolution = int(rng.choice([1, 2, 7, 16, 31, 48, 96]))  # shrinking and enlarging
        ours, reference = (policy.crop(images, boxes, resolution, backend=b) for b in BACKENDS)
        np.testing.assert_array_equal(ours.windows, reference.windows)
        np.testing.assert_array_equal(ours.fallbacks, reference.fallbacks)
        np.testing.assert_array_equal(ours.images, reference.images, err_msg=f"{policy} at {resolution} px")
        assert ours.images.dtype == np.uint8 and ours.windows.dtype == np.int64 and ours.fallbacks.dtype == bool


@needs_c
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_c_resizes_any_window_as_numpy_does(channels):
    # Windows need not be square here: every rectangle inside the image, to sides above and below its own.
    rng = np.random.default_rng(channels)
    images = rng.integers(0, 256, (200, 23, 37, channels), dtype=np.uint8)
    x0, y0 = rng.integers(0, 37, 200), rng.integers(0, 23, 200)
    windows = np.stack([x0, y0, rng.integers(x0 + 1, 38), rng.integers(y0 + 1, 24)], axis=1)
    for resolution in (1, 5, 12, 40):
        np.testing.assert_array_equal(
            crop_and_resize(images, windows, resolution, backend="c"),
            crop_and_resize(images, windows, resolution, backend="numpy"),
        )


@needs_c
def test_views_and_a_large_batch_crop_alike():
    rng = np.random.default_rng(11)
    images, boxes = random_batch(rng, 600, 3)
    images, boxes = images[:, ::-1, ::2], boxes.T.copy().T  # neither is C-contiguous
    ours, reference = (CropPolicy().crop(images, boxes, 24, backend=b) for b in BACKENDS)
    np.testing.assert_array_equal(ours.images, reference.images)
    np.testing.assert_array_equal(ours.windows, reference.windows)


@needs_c
def test_a_window_c_refuses_is_cropped_in_numpy():
    # 4096 rows into one pixel: the row sums pass C's 32-bit bound, not numpy's float64 one.
    images = np.random.default_rng(2).integers(0, 256, (1, 4096, 1, 1), dtype=np.uint8)
    window = [[0, 0, 1, 4096]]
    refused = crop_policy._c.resize(images, images.shape, 1, np.array(window), np.empty((1, 1, 1, 1), np.uint8))
    assert refused == -1
    expected = crop_and_resize(images, window, 1, backend="numpy")
    np.testing.assert_array_equal(crop_and_resize(images, window, 1, backend="c"), expected)


def test_a_missing_extension_leaves_numpy_in_charge():
    # A fresh interpreter in which the extension cannot be imported, as after an install without a C compiler.
    code = (
        "import sys; sys.modules['tfscissor.deploy._crop_policy_c'] = None\n"
        "from tfscissor.deploy.crop_policy import CropPolicy, crop_backend\n"
        "import numpy as np\n"
        "result = CropPolicy().crop(np.zeros((1, 8, 8, 3), np.uint8), [[0.2, 0.2, 0.6, 0.6]], 4)\n"
        "print(crop_backend(), result.images.shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "numpy (1, 4, 4, 3)"


def test_without_the_extension_numpy_crops(monkeypatch):
    images, boxes = random_batch(np.random.default_rng(4), 5, 3)
    before = CropPolicy().crop(images, boxes, 16)
    monkeypatch.setattr(crop_policy, "_c", None)  # as after an install without a C compiler
    assert crop_backend() == "numpy"
    after = CropPolicy().crop(images, boxes, 16)
    np.testing.assert_array_equal(after.images, before.images)
    np.testing.assert_array_equal(after.windows, before.windows)
    with pytest.raises(UsageError, match="C crop .* is not built"):
        CropPolicy().crop(images, boxes, 16, backend="c")
    with pytest.raises(UsageError, match="is not built"):
        crop_and_resize(images, after.windows, 16, backend="c")


@needs_c
def test_other_dtypes_crop_in_numpy_by_default():
    images, boxes = random_batch(np.random.default_rng(5), 3, 3)
    floats = images.astype(np.float32)
    np.testing.assert_array_equal(
        CropPolicy().crop(floats, boxes, 8).images, CropPolicy().crop(images, boxes, 8).images
    )
    with pytest.raises(UsageError, match="C crop takes uint8 images, got float32"):
        CropPolicy().crop(floats, boxes, 8, backend="c")


@pytest.mark.parametrize("backend", ["C", "torch", ""])
def test_unknown_backend_raises_usage_error(backend):
    images, boxes = random_batch(np.random.default_rng(6), 1, 3)
    with pytest.raises(UsageError, match="unknown crop backend .* use one of c, numpy"):
        CropPolicy().crop(images, boxes, 8, backend=backend)
    with pytest.raises(UsageError, match="unknown crop backend"):
        crop_backend(backend)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_empty_batches_give_no_crops(backend):
    result = CropPolicy().crop(np.zeros((0, 16, 16, 3), np.uint8), np.zeros((0, 4)), 8, backend=backend)
    assert result.images.shape == (0, 8, 8, 3) and result.windows.shape == (0, 4) and result.fallback_count == 0

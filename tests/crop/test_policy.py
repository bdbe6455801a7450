"""The crop policy against crops worked out by hand: windows, clamping, regulation, fallbacks and the resize filter.

The images used here encode their own coordinates (channel 0 = column, channel 1 = row, channel 2 = image
index), so a crop taken at the wrong place, or from the wrong image, cannot look right by accident.
"""

import numpy as np
import pytest

from tfscissor.deploy.crop_policy import DEFAULT_SCALES, CropPolicy, crop_and_resize, filter_taps, resize_weights
from tfscissor.errors import UsageError


def coordinate_images(count, height, width):
    """uint8 (count, height, width, 3): pixel (y, x) of image n is (x, y, 10 * n)."""
    y, x = np.mgrid[0:height, 0:width]
    images = np.empty((count, height, width, 3), np.uint8)
    images[..., 0], images[..., 1] = x, y
    images[..., 2] = 10 * np.arange(count)[:, None, None]
    return images


def px_box(x0, y0, x1, y1, height=64, width=64):
    """A normalised box from pixel edges (exact in float32: all sizes here are powers of two)."""
    return [x0 / width, y0 / height, x1 / width, y1 / height]


def windows_of(policy, boxes, height=64, width=64):
    windows, fallbacks = policy.windows(np.array(boxes, np.float32), height, width)
    return windows.tolist(), fallbacks.tolist()


# ------------------------------------------------------------------------------------------------ windows


@pytest.mark.parametrize(
    "box, window",
    [
        # (box in pixels) -> hand-computed window [x0, y0, x1, y1) on a 64x64 image, default scales 16/32/48/64.
        ((15, 15, 25, 25), [12, 12, 28, 28]),  # 10x10 -> 16, centred on (20, 20)
        ((10, 30, 30, 42), [4, 20, 36, 52]),  # 20x12 -> 32, centred on (20, 36)
        ((30, 10, 42, 30), [20, 4, 52, 36]),  # 12x20 -> 32: the longer side decides
        ((24, 24, 40, 40), [24, 24, 40, 40]),  # exactly 16 stays 16
        ((23.5, 23.5, 40.5, 40.5), [16, 16, 48, 48]),  # 17 -> 32, centre 32
        ((8.5, 8.5, 41.5, 41.5), [1, 1, 49, 49]),  # 33 -> 48, centre 25
        ((10, 10, 58, 58), [10, 10, 58, 58]),  # exactly 48 stays 48
        ((4, 4, 53, 53), [0, 0, 64, 64]),  # 49 -> 64: the whole image
    ],
)
def test_windows_regulate_to_the_smallest_covering_scale(box, window):
    got, fallbacks = windows_of(CropPolicy(), [px_box(*box)])
    assert got == [window]
    assert fallbacks == [False]


def test_window_start_rounds_half_up():
    # Centres at x.5 put the window start on a half pixel: it rounds up, as C's floor(x + 0.5) does
    # (15.5 -> 16, 0.5 -> 1, 12.5 -> 13), so the firmware port computes the same window.
    got, _ = windows_of(CropPolicy(), [px_box(23, 23, 40, 40), px_box(8, 8, 41, 41)])
    assert got == [[16, 16, 48, 48], [1, 1, 49, 49]]
    got, _ = windows_of(CropPolicy(scales=None, margin=1.5), [px_box(15, 15, 25, 25)])
    assert got == [[13, 13, 28, 28]]


def test_window_side_rounds_up_to_cover_the_box():
    # 0.75 x 30 = 22.5 px: a 22.4-px box gets 23 px, not 22 (rounding to nearest even would cut it).
    box = np.array([[0.1, 0.1, 0.1 + 22.4 / 30, 0.1 + 22.4 / 30]])
    (window,), _ = CropPolicy().windows(box, 30, 30)
    assert window[2] - window[0] == 23 and window[0] <= 3 and window[2] >= 3 + 22.4


@pytest.mark.parametrize(
    "box, window",
    [
        ((0, 28, 4, 36), [0, 24, 16, 40]),  # left edge: centre x 2 -> x0 = -6, clamped to 0
        ((60, 28, 64, 36), [48, 24, 64, 40]),  # right edge: x0 = 54, clamped to 64 - 16
        ((28, 0, 36, 4), [24, 0, 40, 16]),  # top edge
        ((28, 60, 36, 64), [24, 48, 40, 64]),  # bottom edge
        ((0, 0, 4, 4), [0, 0, 16, 16]),  # top-left corner
        ((60, 0, 64, 4), [48, 0, 64, 16]),  # top-right corner
        ((0, 60, 4, 64), [0, 48, 16, 64]),  # bottom-left corner
        ((60, 60, 64, 64), [48, 48, 64, 64]),  # bottom-right corner
        ((0, 30, 20, 42), [0, 20, 32, 52]),  # 20x12 at the left edge: 32 wide, centred on y = 36, x clamped
        ((44, 54, 64, 64), [32, 32, 64, 64]),  # 20x10 -> 32 in the bottom-right corner: x0 = 38, y0 = 43
    ],
)
def test_windows_are_clamped_inside_the_image(box, window):
    got, fallbacks = windows_of(CropPolicy(), [px_box(*box)])
    assert got == [window]
    assert fallbacks == [False]
    x0, y0, x1, y1 = got[0]
    assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 and x1 - x0 == y1 - y0


def test_windows_stay_in_the_image_for_boxes_beyond_it():
    # Valid boxes partly or wholly outside [0, 1] still give a window inside the image, not a fallback.
    boxes = [[-0.5, -0.5, 1.5, 1.5], [1.1, 1.1, 1.2, 1.2], [-0.2, 0.4, -0.1, 0.5]]
    got, fallbacks = windows_of(CropPolicy(), boxes)
    # 128 px -> the whole image; 6.4 px at centre (73.6, 73.6) -> 16 px in the bottom-right corner;
    # 6.4 px at centre (-9.6, 28.8) -> 16 px at the left edge, y0 = floor(20.8 + 0.5) = 21.
    assert got == [[0, 0, 64, 64], [48, 48, 64, 64], [0, 21, 16, 37]]
    assert fallbacks == [False, False, False]


def test_scales_none_crops_the_squared_box():
    policy = CropPolicy(scales=None)
    boxes = [
        px_box(15, 17, 25, 23),  # 10x6 -> 10, centre (20, 20)
        px_box(15, 15, 26, 26),  # 11x11, centre 20.5 -> x0 = 15
        px_box(40, 2, 46, 22),  # 6x20 -> 20, centre (43, 12) -> y0 = 2
        px_box(60, 10, 64, 17),  # 4x7 -> 7 at the right edge: x0 = 59 (58.5 rounds up), clamped to 57
        [-0.1, 0.2, 1.1, 0.3],  # 76.8 px wide -> capped at the image: 64
        [0.5, 0.5, 0.5001, 0.5001],  # 0.0064 px -> at least one pixel, at (32, 32)
    ]
    got, fallbacks = windows_of(policy, boxes)
    assert got == [
        [15, 15, 25, 25],
        [15, 15, 26, 26],
        [33, 2, 53, 22],
        [57, 10, 64, 17],
        [0, 0, 64, 64],
        [32, 32, 33, 33],
    ]
    assert not any(fallbacks)


def test_margin_scales_the_box_about_its_centre():
    box = [px_box(15, 15, 25, 25)]  # 10x10 centred on (20, 20)
    assert windows_of(CropPolicy(margin=1.5), box)[0] == [[12, 12, 28, 28]]  # 15 -> 16
    assert windows_of(CropPolicy(margin=2.0), box)[0] == [[4, 4, 36, 36]]  # 20 -> 32
    assert windows_of(CropPolicy(scales=None, margin=1.4), box)[0] == [[13, 13, 27, 27]]  # 14
    assert windows_of(CropPolicy(scales=None, margin=0.6), box)[0] == [[17, 17, 23, 23]]  # 6
    # A margin that takes the box past every scale gives the whole image (not a fallback).
    windows, fallbacks = windows_of(CropPolicy(margin=3.0), [px_box(17, 17, 47, 47)])
    assert windows == [[0, 0, 64, 64]] and fallbacks == [False]


def test_box_larger_than_every_scale_gets_the_short_side():
    policy = CropPolicy(scales=(0.25, 0.5))  # 16 and 32 on a 64x64 image
    got, fallbacks = windows_of(policy, [px_box(10, 20, 50, 30), px_box(20, 20, 53, 30)])
    # 40 and 33 px cover no scale: the side becomes 64, the whole image.
    assert got == [[0, 0, 64, 64], [0, 0, 64, 64]]
    assert fallbacks == [False, False]


def test_custom_scales_are_sorted_and_deduplicated():
    policy = CropPolicy(scales=(1.0, 0.5, 0.5, 0.125))
    assert policy.scales == (0.125, 0.5, 1.0)
    assert policy.to_dict() == {"scales": [0.125, 0.5, 1.0], "margin": 1.0}
    # 8 px fits 0.125 * 64; 9 px jumps to 32, skipping the removed 16 and 48 (start 16.5 rounds up).
    got, _ = windows_of(policy, [px_box(28, 28, 36, 36), px_box(28, 28, 37, 37)])
    assert got == [[28, 28, 36, 36], [17, 17, 49, 49]]
    assert CropPolicy().scales == DEFAULT_SCALES


def test_non_square_images_regulate_to_the_short_side():
    # 32 rows by 64 columns: the scales are 8, 16, 24 and 32 pixels.
    def box(x0, y0, x1, y1):
        return px_box(x0, y0, x1, y1, height=32, width=64)

    boxes = [
        box(37, 13, 43, 19),  # 6x6 -> 8, centre (40, 16)
        box(0, 2, 20, 6),  # 20x4 -> 24, centre (10, 4): clamped into the top-left corner
        box(30, 11, 70, 21),  # 40x10 -> larger than every scale: 32, centre x 50 -> x0 = 34, clamped to 32
        box(48, 28, 64, 32),  # 16x4 -> 16 in the bottom-right corner
        [np.nan, 0.1, 0.2, 0.3],  # degenerate: the whole (non-square) image
    ]
    got, fallbacks = windows_of(CropPolicy(), boxes, height=32, width=64)
    assert got == [[36, 12, 44, 20], [0, 0, 24, 24], [32, 0, 64, 32], [48, 16, 64, 32], [0, 0, 64, 32]]
    assert fallbacks == [False, False, False, False, True]
    # A tall image: the same rules along the other axis.
    got, _ = windows_of(CropPolicy(), [px_box(28, 60, 32, 64, height=64, width=32)], height=64, width=32)
    assert got == [[24, 56, 32, 64]]  # 4 px -> 8, bottom-right corner


DEGENERATE = [
    [np.nan, 0.2, 0.5, 0.5],
    [0.1, 0.2, np.nan, 0.5],
    [0.1, 0.2, np.inf, 0.5],
    [-np.inf, 0.2, 0.5, 0.5],
    [0.3, 0.2, 0.3, 0.5],  # zero width
    [0.1, 0.4, 0.5, 0.4],  # zero height
    [0.6, 0.2, 0.4, 0.5],  # inverted x
    [0.1, 0.7, 0.5, 0.2],  # inverted y
    [0.0, 0.0, 0.0, 0.0],
]


def test_degenerate_boxes_fall_back_to_the_whole_image_and_are_counted():
    boxes = [px_box(15, 15, 25, 25), *DEGENERATE, px_box(60, 60, 64, 64)]
    images = coordinate_images(len(boxes), 64, 64)
    result = CropPolicy().crop(images, boxes, 64)
    expected = [[12, 12, 28, 28]] + [[0, 0, 64, 64]] * len(DEGENERATE) + [[48, 48, 64, 64]]
    assert result.windows.tolist() == expected
    assert result.fallbacks.tolist() == [False] + [True] * len(DEGENERATE) + [False]
    assert result.fallback_count == len(DEGENERATE)
    # A fallback at the image's own resolution is the image itself.
    np.testing.assert_array_equal(result.images[1 : 1 + len(DEGENERATE)], images[1 : 1 + len(DEGENERATE)])


def test_degenerate_box_on_a_non_square_image_is_the_whole_image_resized():
    images = coordinate_images(1, 16, 32)
    result = CropPolicy().crop(images, [[0.5, 0.5, 0.5, 0.5]], 16)
    assert result.fallback_count == 1
    assert result.windows.tolist() == [[0, 0, 32, 16]]
    # Rows keep their place (16 -> 16); columns shrink 2x: inside the image, column j weighs source columns
    # 2j - 1 .. 2j + 2 by 1/8, 3/8, 3/8, 1/8, which averages the column numbers to 2j + 0.5.
    np.testing.assert_array_equal(result.images[0, :, :, 1], np.broadcast_to(np.arange(16)[:, None], (16, 16)))
    interior = result.images[0, :, 1:15, 0].astype(float)
    assert (np.abs(interior - (2 * np.arange(1, 15) + 0.5)) <= 0.5).all()


# ------------------------------------------------------------------------------------------------ crops


def test_crop_at_the_window_side_is_the_exact_pixel_slice():
    boxes = [
        px_box(15, 15, 25, 25),  # [12, 12, 28, 28)
        px_box(0, 0, 4, 4),  # [0, 0, 16, 16)
        px_box(60, 28, 64, 36),  # [48, 24, 64, 40)
        px_box(28, 60, 36, 64),  # [24, 48, 40, 64)
    ]
    windows = [[12, 12, 28, 28], [0, 0, 16, 16], [48, 24, 64, 40], [24, 48, 40, 64]]
    images = coordinate_images(len(boxes), 64, 64)
    result = CropPolicy().crop(images, boxes, 16)
    assert result.images.dtype == np.uint8 and result.images.shape == (4, 16, 16, 3)
    assert result.windows.tolist() == windows
    assert result.fallback_count == 0
    for n, (x0, y0, x1, y1) in enumerate(windows):
        np.testing.assert_array_equal(result.images[n], images[n, y0:y1, x0:x1])
        # The coordinate image says where the crop starts, and from which image it came.
        assert tuple(result.images[n, 0, 0]) == (x0, y0, 10 * n)


def test_crops_of_mixed_sizes_are_exact_slices_at_each_side():
    boxes = [px_box(10, 30, 30, 42), px_box(0, 30, 20, 42), px_box(44, 54, 64, 64)]  # all 32 px windows
    images = coordinate_images(3, 64, 64)
    result = CropPolicy().crop(images, boxes, 32)
    windows = [[4, 20, 36, 52], [0, 20, 32, 52], [32, 32, 64, 64]]
    assert result.windows.tolist() == windows
    for n, (x0, y0, x1, y1) in enumerate(windows):
        np.testing.assert_array_equal(result.images[n], images[n, y0:y1, x0:x1])


def test_non_square_image_crop_is_the_exact_slice():
    images = coordinate_images(2, 32, 64)
    boxes = [px_box(37, 13, 43, 19, height=32, width=64), px_box(58, 26, 64, 32, height=32, width=64)]
    result = CropPolicy().crop(images, boxes, 8)
    assert result.windows.tolist() == [[36, 12, 44, 20], [56, 24, 64, 32]]
    np.testing.assert_array_equal(result.images[0], images[0, 12:20, 36:44])
    np.testing.assert_array_equal(result.images[1], images[1, 24:32, 56:64])


# ---------------------------------------------------------------------------------------- resize filter


def test_resize_weights_for_a_2x_downscale():
    # Centres at source 1 and 3, triangle half-width 2, taps at 0.5 .. 3.5:
    # row 0: 1 - |0.5 - 1| / 2 = 3/4, 3/4, 1 - 1.5/2 = 1/4, 1 - 2.5/2 < 0 -> 0; normalised by 7/4.
    np.testing.assert_allclose(resize_weights(4, 2), [[3 / 7, 3 / 7, 1 / 7, 0], [0, 1 / 7, 3 / 7, 3 / 7]], atol=1e-7)


def test_resize_weights_for_a_3x_downscale_and_a_2x_upscale():
    # 6 -> 2: centres 1.5 and 4.5, half-width 3: 2/3, 1, 2/3, 1/3, 0, 0 over a sum of 8/3.
    np.testing.assert_allclose(
        resize_weights(6, 2), [[1 / 4, 3 / 8, 1 / 4, 1 / 8, 0, 0], [0, 0, 1 / 8, 1 / 4, 3 / 8, 1 / 4]], atol=1e-7
    )
    # 2 -> 4 (bilinear): centres 0.25, 0.75, 1.25, 1.75, half-width 1, taps 0.5 and 1.5.
    np.testing.assert_allclose(resize_weights(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]], atol=1e-7)


def test_filter_taps_are_the_unnormalised_integer_weights():
    # 4 -> 2 in units of 1/4 pixel: taps at 2, 6, 10, 14, centres 4 and 12, reach 8. 2 -> 4 in units of 1/8:
    # taps at 4 and 12, centres 2, 6, 10, 14.
    assert filter_taps(4, 2).tolist() == [[6, 6, 2, 0], [0, 2, 6, 6]]
    assert filter_taps(2, 4).tolist() == [[6, 0], [6, 2], [2, 6], [0, 6]]


def test_ties_round_half_up():
    # 2 -> 1 averages two pixels with equal taps: (1 + 2) / 2 = 1.5 rounds to 2, (0 + 255) / 2 to 128.
    images = np.array([[[[1], [2]], [[1], [2]]], [[[0], [255]], [[0], [255]]]], np.uint8)
    assert crop_and_resize(images, [[0, 0, 2, 2]] * 2, 1).ravel().tolist() == [2, 128]


def test_windows_beyond_exact_arithmetic_are_refused():
    images = np.zeros((1, 4096, 4096, 1), np.uint8)
    with pytest.raises(UsageError, match="beyond exact arithmetic"):
        crop_and_resize(images, [[0, 0, 4096, 4096]], 1)


@pytest.mark.parametrize("size", [1, 2, 5, 16, 33])
def test_resize_weights_at_the_same_size_are_the_identity(size):
    np.testing.assert_array_equal(resize_weights(size, size), np.eye(size, dtype=np.float32))


@pytest.mark.parametrize("in_size, out_size", [(4, 2), (7, 3), (64, 24), (48, 32), (16, 48), (5, 1), (1, 9), (33, 32)])
def test_resize_weights_rows_sum_to_one(in_size, out_size):
    weights = resize_weights(in_size, out_size)
    assert weights.shape == (out_size, in_size) and weights.dtype == np.float32
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)


def test_2x_downscale_of_a_crop_is_the_triangle_filter_not_the_block_mean():
    # 32x32 coordinate image scaled by 7 (channel 0 = 7x, channel 1 = 7y, channel 2 = 100): linear, so each
    # output is 7 * (window start + weighted tap). With the rows above, the weighted taps of 0, 1, 2, 3 are
    # (0*3 + 1*3 + 2*1) / 7 = 5/7 and (1*1 + 2*3 + 3*3) / 7 = 16/7: outputs 7 * start + 5 and 7 * start + 16.
    # (A 2x2 block mean would give 7 * start + 3.5 and 7 * start + 17.5.)
    base = coordinate_images(1, 32, 32).astype(int)
    images = np.stack([7 * base[..., 0], 7 * base[..., 1], np.full((1, 32, 32), 100)], axis=-1).astype(np.uint8)
    images = np.repeat(images, 2, axis=0)
    policy = CropPolicy(scales=(0.125,))  # 4-pixel windows on a 32x32 image
    boxes = [px_box(8, 12, 12, 16, 32, 32), px_box(0, 0, 2, 2, 32, 32)]  # the second clamps to the corner
    result = policy.crop(images, boxes, 2)
    assert result.windows.tolist() == [[8, 12, 12, 16], [0, 0, 4, 4]]
    expected_first = [[[61, 89, 100], [72, 89, 100]], [[61, 100, 100], [72, 100, 100]]]
    expected_corner = [[[5, 5, 100], [16, 5, 100]], [[5, 16, 100], [16, 16, 100]]]
    assert result.images.tolist() == [expected_first, expected_corner]


def test_crop_and_resize_matches_pillow_bilinear():
    # An independent implementation of the same filter: Pillow's BILINEAR on float images.
    from PIL import Image

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (6, 40, 56, 1)).astype(np.uint8)
    windows = np.array(
        [[0, 0, 56, 40], [3, 5, 35, 37], [10, 2, 30, 22], [50, 30, 56, 36], [0, 0, 40, 40], [7, 9, 20, 22]]
    )
    for resolution in (24, 9, 48):
        ours = crop_and_resize(images, windows, resolution)
        for n, (x0, y0, x1, y1) in enumerate(windows):
            source = Image.fromarray(images[n, y0:y1, x0:x1, 0].astype(np.float32), mode="F")
            pillow = np.asarray(source.resize((resolution, resolution), Image.BILINEAR)).astype(np.float64)
            # Pillow's float sums are within 0.5 of our exact fractions, and rounding them half up gives ours.
            assert np.abs(ours[n, ..., 0] - pillow).max() <= 0.5, (resolution, n)
            np.testing.assert_array_equal(ours[n, ..., 0], np.floor(pillow + 0.5), err_msg=f"{resolution} {n}")


def test_constant_images_stay_constant_at_any_resolution():
    images = np.full((3, 20, 30, 2), 0, np.uint8)
    images[..., 0], images[..., 1] = 255, 77
    windows = np.array([[0, 0, 30, 20], [2, 3, 13, 14], [25, 15, 30, 20]])
    for resolution in (1, 4, 11, 40):
        out = crop_and_resize(images, windows, resolution)
        assert (out[..., 0] == 255).all() and (out[..., 1] == 77).all()


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("resolution", [0, -3, 1.5, 32.0, "32", True, None])
def test_bad_resolution_raises_usage_error(resolution):
    images = coordinate_images(1, 16, 16)
    with pytest.raises(UsageError, match="resolution"):
        CropPolicy().crop(images, [[0.1, 0.1, 0.5, 0.5]], resolution)
    with pytest.raises(UsageError, match="resolution"):
        crop_and_resize(images, [[0, 0, 16, 16]], resolution)


def test_numpy_integer_resolution_is_accepted():
    result = CropPolicy().crop(coordinate_images(1, 16, 16), [[0.0, 0.0, 1.0, 1.0]], np.int64(16))
    assert result.images.shape == (1, 16, 16, 3)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_mismatched_box_count_raises_usage_error(count):
    with pytest.raises(UsageError, match="2 images but"):
        CropPolicy().crop(coordinate_images(2, 16, 16), np.full((count, 4), 0.25), 8)


def test_images_must_be_a_batch():
    with pytest.raises(UsageError, match=r"\(N, H, W, C\)"):
        CropPolicy().crop(coordinate_images(1, 16, 16)[0], [[0.1, 0.1, 0.5, 0.5]], 8)


@pytest.mark.parametrize("scales", [(), (0.0,), (-0.25, 0.5), (0.5, 1.5), (np.nan,), (np.inf,)])
def test_invalid_scales_raise_usage_error(scales):
    with pytest.raises(UsageError, match="scales"):
        CropPolicy(scales=scales)


@pytest.mark.parametrize("margin", [0.0, -1.0, np.nan, np.inf])
def test_invalid_margin_raises_usage_error(margin):
    with pytest.raises(UsageError, match="margin"):
        CropPolicy(margin=margin)


def test_empty_batch_gives_no_crops():
    result = CropPolicy().crop(np.zeros((0, 16, 16, 3), np.uint8), np.zeros((0, 4)), 8)
    assert result.images.shape == (0, 8, 8, 3) and result.fallback_count == 0

"""Box overlap, validity, squaring and jitter, against hand-computed cases and stated ranges."""

import numpy as np
import pytest

from tfscissor.deploy.boxes import FULL_IMAGE, box_iou, jitter_boxes, square_boxes, valid_boxes


def random_boxes(rng, n, low=0.0, high=1.0, min_side=0.01):
    corners = rng.uniform(low, high, (n, 2, 2))
    x0, x1 = np.sort(corners[:, 0], axis=1).T
    y0, y1 = np.sort(corners[:, 1], axis=1).T
    return np.stack([x0, y0, np.maximum(x1, x0 + min_side), np.maximum(y1, y0 + min_side)], axis=1)


# -------------------------------------------------------------------------------------------------- IoU


@pytest.mark.parametrize(
    "a, b, iou",
    [
        ([0.1, 0.2, 0.6, 0.9], [0.1, 0.2, 0.6, 0.9], 1.0),  # identical
        ([0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7], 0.0),  # disjoint
        ([0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5], 0.0),  # touching along an edge
        ([0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.75, 0.5], 1 / 3),  # half of each overlaps: 0.125 / 0.375
        ([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5], 0.25),  # one inside the other
        ([0.0, 0.0, 0.4, 0.4], [0.2, 0.2, 0.6, 0.6], 0.04 / 0.28),  # corner overlap
        ([0.3, 0.3, 0.3, 0.6], [0.3, 0.3, 0.3, 0.6], 0.0),  # empty boxes overlap nothing
        ([0.6, 0.2, 0.4, 0.5], [0.0, 0.0, 1.0, 1.0], 0.0),  # inverted
        ([np.nan, 0.2, 0.4, 0.5], [0.0, 0.0, 1.0, 1.0], 0.0),  # not finite
    ],
)
def test_box_iou_hand_cases(a, b, iou):
    assert box_iou([a], [b]) == pytest.approx([iou])
    assert box_iou([b], [a]) == pytest.approx([iou])  # symmetric


def test_box_iou_is_row_by_row():
    a = [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]]
    b = [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]
    assert box_iou(a, b).tolist() == pytest.approx([1.0, 0.25])


def test_box_iou_of_random_boxes_is_a_fraction():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 500), random_boxes(rng, 500)
    iou = box_iou(a, b)
    assert iou.shape == (500,) and ((iou >= 0) & (iou <= 1)).all()
    np.testing.assert_allclose(box_iou(a, a), 1.0)


def test_valid_boxes():
    boxes = [
        [0.1, 0.1, 0.2, 0.2],
        [0.1, 0.1, 0.1, 0.2],  # zero width
        [0.1, 0.2, 0.2, 0.2],  # zero height
        [0.3, 0.1, 0.2, 0.2],  # inverted
        [np.nan, 0.1, 0.2, 0.2],
        [0.1, 0.1, np.inf, 0.2],
        [-0.5, -0.5, 1.5, 1.5],  # outside the image but a box
    ]
    assert valid_boxes(boxes).tolist() == [True, False, False, False, False, False, True]
    assert valid_boxes([FULL_IMAGE]).tolist() == [True]


# -------------------------------------------------------------------------------------------- squaring


@pytest.mark.parametrize(
    "box, squared",
    [
        ([0.4, 0.4, 0.6, 0.5], [0.4, 0.35, 0.6, 0.55]),  # short (y) side grows about the centre
        ([0.45, 0.1, 0.55, 0.5], [0.3, 0.1, 0.7, 0.5]),  # short (x) side grows
        ([0.0, 0.45, 0.5, 0.55], [0.0, 0.25, 0.5, 0.75]),
        ([0.9, 0.0, 1.0, 0.4], [0.6, 0.0, 1.0, 0.4]),  # would reach x = 1.15: shifted back
        ([0.0, 0.95, 0.3, 1.0], [0.0, 0.7, 0.3, 1.0]),  # would start at y = 0.825 and end at 1.125
        ([0.2, 0.2, 0.5, 0.5], [0.2, 0.2, 0.5, 0.5]),  # already square
    ],
)
def test_square_boxes_grow_the_short_side(box, squared):
    np.testing.assert_allclose(square_boxes([box]), [squared], atol=1e-6)


def test_square_boxes_are_square_in_pixels_for_wide_images():
    # aspect 2: the image is twice as wide as high, so a square spans half as much x as y, normalised.
    boxes = [
        [0.1, 0.1, 0.2, 0.5],  # 0.2 x 0.4 in height units -> side 0.4: x span 0.2 about 0.15
        [0.4, 0.4, 0.6, 0.5],  # 0.4 x 0.1 -> side 0.4: y span 0.4 about 0.45
        [0.0, 0.0, 1.0, 0.2],  # 2.0 x 0.2 -> larger than the image's height: clipped to the whole image
        [0.9, 0.9, 1.0, 1.0],  # 0.2 x 0.1 -> side 0.2: y span 0.2, shifted back to end at 1
    ]
    expected = [[0.05, 0.1, 0.25, 0.5], [0.4, 0.25, 0.6, 0.65], [0.0, 0.0, 1.0, 1.0], [0.9, 0.8, 1.0, 1.0]]
    np.testing.assert_allclose(square_boxes(boxes, aspect=2.0), expected, atol=1e-6)
    # The tall image's version: aspect 0.5.
    tall = square_boxes([[0.1, 0.1, 0.5, 0.2]], aspect=0.5)
    np.testing.assert_allclose(tall, [[0.1, 0.05, 0.5, 0.25]], atol=1e-6)


@pytest.mark.parametrize("aspect", [1.0, 2.0, 0.75, 1.5])
def test_square_boxes_stay_in_the_image_and_contain_the_box(aspect):
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 1000)
    squared = square_boxes(boxes, aspect=aspect)
    assert squared.dtype == np.float32 and squared.shape == boxes.shape
    assert (squared >= 0).all() and (squared <= 1 + 1e-6).all()
    # Every box is inside its square (up to float32 rounding).
    assert (squared[:, :2] <= boxes[:, :2] + 1e-6).all() and (squared[:, 2:] >= boxes[:, 2:] - 1e-6).all()
    width_px = (squared[:, 2] - squared[:, 0]) * aspect  # in units of the image's height
    height_px = squared[:, 3] - squared[:, 1]
    fits = np.maximum((boxes[:, 2] - boxes[:, 0]) * aspect, boxes[:, 3] - boxes[:, 1]) <= min(1.0, aspect)
    np.testing.assert_allclose(width_px[fits], height_px[fits], atol=1e-5)
    assert fits.mean() > 0.3  # the check above covered a good share of the boxes


# ---------------------------------------------------------------------------------------------- jitter


def test_jitter_stays_within_the_stated_shift_and_scale():
    rng = np.random.default_rng(2)
    # Small boxes well inside the image, so that clipping never interferes.
    centres = rng.uniform(0.4, 0.6, (2000, 2))
    sides = rng.uniform(0.05, 0.2, (2000, 2))
    boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)
    shift, scale = 0.15, (0.85, 1.2)
    jittered = jitter_boxes(boxes, np.random.default_rng(7), shift=shift, scale=scale)
    assert jittered.dtype == np.float32 and jittered.shape == boxes.shape
    jittered = jittered.astype(np.float64)
    old_w, old_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    new_w, new_h = jittered[:, 2] - jittered[:, 0], jittered[:, 3] - jittered[:, 1]
    dx = ((jittered[:, 0] + jittered[:, 2]) - (boxes[:, 0] + boxes[:, 2])) / 2 / old_w
    dy = ((jittered[:, 1] + jittered[:, 3]) - (boxes[:, 1] + boxes[:, 3])) / 2 / old_h
    factor_x, factor_y = new_w / old_w, new_h / old_h
    tol = 1e-4  # float32 output
    assert (np.abs(dx) <= shift + tol).all() and (np.abs(dy) <= shift + tol).all()
    assert (factor_x >= scale[0] - tol).all() and (factor_x <= scale[1] + tol).all()
    np.testing.assert_allclose(factor_x, factor_y, atol=1e-3)  # one factor for both sides
    # The ranges are used, not only respected: both directions and both ends appear.
    assert dx.min() < -0.12 and dx.max() > 0.12 and dy.min() < -0.12 and dy.max() > 0.12
    assert factor_x.min() < 0.87 and factor_x.max() > 1.17
    # Log-uniform: the median factor is the geometric mean of the range.
    assert np.median(factor_x) == pytest.approx(np.sqrt(scale[0] * scale[1]), abs=0.02)


def test_jitter_is_clipped_to_the_image():
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 2000)
    jittered = jitter_boxes(boxes, np.random.default_rng(4), shift=0.5, scale=(0.5, 3.0))
    assert jittered.dtype == np.float32
    assert (jittered >= 0).all() and (jittered <= 1).all()
    assert (jittered[:, 2] >= jittered[:, 0]).all() and (jittered[:, 3] >= jittered[:, 1]).all()
    assert (jittered == 0).any() and (jittered == 1).any()  # clipping did happen


def test_jitter_is_reproducible_for_a_seed():
    boxes = random_boxes(np.random.default_rng(5), 50)
    first = jitter_boxes(boxes, np.random.default_rng(11))
    again = jitter_boxes(boxes, np.random.default_rng(11))
    other = jitter_boxes(boxes, np.random.default_rng(12))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first, boxes)


def test_jitter_with_no_range_is_the_identity():
    boxes = random_boxes(np.random.default_rng(6), 20)
    np.testing.assert_allclose(
        jitter_boxes(boxes, np.random.default_rng(0), shift=0.0, scale=(1.0, 1.0)), boxes, atol=1e-6
    )

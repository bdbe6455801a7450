"""Box losses and the IoU metric (keras.ops) against hand formulas and the numpy box_iou."""

import numpy as np
import pytest

from tfscissor.deploy.boxes import box_iou


def run(function, y_true, y_pred):
    import keras

    y_true = keras.ops.convert_to_tensor(np.asarray(y_true, np.float32))
    y_pred = keras.ops.convert_to_tensor(np.asarray(y_pred, np.float32))
    return keras.ops.convert_to_numpy(function(y_true, y_pred)).astype(np.float64)


def random_boxes(rng, n):
    corners = rng.uniform(0, 1, (n, 2, 2))
    x0, x1 = np.sort(corners[:, 0], axis=1).T
    y0, y1 = np.sort(corners[:, 1], axis=1).T
    return np.stack([x0, y0, x1 + 1e-3, y1 + 1e-3], axis=1)


def test_weighted_box_mse_is_the_hand_formula():
    from tfscissor.crop.losses import BOX_WEIGHTS, weighted_box_mse

    assert BOX_WEIGHTS == (1.0, 1.0, 1.25, 1.25)
    y_true = [[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0]]
    y_pred = [[0.2, 0.2, 0.5, 0.1], [0.0, 0.0, 1.0, 1.0]]
    # Row 0: errors 0.1, 0, 0.2, -0.3 -> (0.01 + 0 + 1.25 * 0.04 + 1.25 * 0.09) / 4 = 0.043125.
    np.testing.assert_allclose(run(weighted_box_mse, y_true, y_pred), [0.043125, 0.0], atol=1e-7)
    # The far corner costs a quarter more than the near one for the same error.
    near = run(weighted_box_mse, [[0.5, 0.5, 0.5, 0.5]], [[0.6, 0.5, 0.5, 0.5]])
    far = run(weighted_box_mse, [[0.5, 0.5, 0.5, 0.5]], [[0.5, 0.5, 0.6, 0.5]])
    assert far[0] == pytest.approx(1.25 * near[0], rel=1e-5)


def test_weighted_box_mse_on_random_boxes():
    from tfscissor.crop.losses import weighted_box_mse

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.uniform(0, 1, (64, 4)), rng.uniform(0, 1, (64, 4))
    expected = np.mean(np.array([1.0, 1.0, 1.25, 1.25]) * (y_true - y_pred) ** 2, axis=-1)
    np.testing.assert_allclose(run(weighted_box_mse, y_true, y_pred), expected, rtol=1e-5)


def test_giou_loss_is_zero_for_identical_boxes():
    from tfscissor.crop.losses import giou_loss

    boxes = random_boxes(np.random.default_rng(1), 32)
    np.testing.assert_allclose(run(giou_loss, boxes, boxes), 0.0, atol=1e-4)


def test_giou_loss_for_disjoint_boxes():
    from tfscissor.crop.losses import giou_loss

    y_true, y_pred = [[0.0, 0.0, 0.2, 0.2]], [[0.5, 0.5, 0.7, 0.7]]
    # IoU 0; hull 0.7 * 0.7 = 0.49, union 0.08: GIoU = 0 - 0.41 / 0.49; loss = 1 - GIoU + weighted MSE,
    # the MSE being (0.25 + 0.25 + 1.25 * 0.25 * 2) / 4 = 0.28125.
    expected = 1 + 0.41 / 0.49 + 0.28125
    loss = run(giou_loss, y_true, y_pred)
    assert loss[0] == pytest.approx(expected, rel=1e-5)
    assert loss[0] > 1


def test_giou_loss_for_overlapping_boxes():
    from tfscissor.crop.losses import giou_loss

    # Half overlap side by side: IoU 1/3, the hull is the union, MSE (0.0625 + 0 + 1.25 * 0.0625 + 0) / 4.
    loss = run(giou_loss, [[0.0, 0.0, 0.5, 0.5]], [[0.25, 0.0, 0.75, 0.5]])
    assert loss[0] == pytest.approx(1 - 1 / 3 + 2.25 * 0.0625 / 4, rel=1e-5)


def test_giou_loss_grows_as_disjoint_boxes_move_apart():
    from tfscissor.crop.losses import giou_loss

    y_true = [[0.0, 0.0, 0.2, 0.2]] * 3
    y_pred = [[0.3, 0.0, 0.5, 0.2], [0.5, 0.0, 0.7, 0.2], [0.8, 0.0, 1.0, 0.2]]
    loss = run(giou_loss, y_true, y_pred)
    assert (loss > 1).all() and loss[0] < loss[1] < loss[2]


def test_mean_iou_matches_numpy_box_iou():
    from tfscissor.crop.losses import mean_iou

    rng = np.random.default_rng(2)
    y_true, y_pred = random_boxes(rng, 400), random_boxes(rng, 400)
    # Half of the pairs overlap by construction: predictions near their boxes.
    y_pred[:200] = np.clip(y_true[:200] + rng.normal(0, 0.05, (200, 4)), 0, 1)
    y_pred[:200, 2:] = np.maximum(y_pred[:200, 2:], y_pred[:200, :2] + 1e-3)
    expected = box_iou(y_pred, y_true)
    assert (expected[:200] > 0.3).mean() > 0.5
    np.testing.assert_allclose(run(mean_iou, y_true, y_pred), expected, atol=1e-5)


def test_inverted_prediction_has_no_iou():
    from tfscissor.crop.losses import mean_iou

    y_true = [[0.3, 0.3, 0.7, 0.7]] * 3
    # Inverted in x, in y, in both: each spans the true box's area if read as |x1 - x0|, yet counts as empty.
    y_pred = [[0.7, 0.3, 0.3, 0.7], [0.3, 0.7, 0.7, 0.3], [0.7, 0.7, 0.3, 0.3]]
    np.testing.assert_array_equal(run(mean_iou, y_true, y_pred), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(box_iou(y_pred, y_true), [0.0, 0.0, 0.0])


def test_losses_are_registered_for_saving():
    import keras

    from tfscissor.crop.losses import LOSSES, giou_loss, mean_iou, weighted_box_mse

    assert sorted(LOSSES) == ["giou", "mse"]
    assert LOSSES["mse"] is weighted_box_mse and LOSSES["giou"] is giou_loss
    for function in (weighted_box_mse, giou_loss, mean_iou):
        name = keras.saving.get_registered_name(function)
        assert name == f"tfscissor>{function.__name__}"
        assert keras.saving.get_registered_object(name) is function

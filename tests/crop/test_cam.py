"""Grad-CAM pseudo-boxes: on a model whose CAM is known by hand, on a trained classifier, and their disk cache."""

import numpy as np
import pytest

from tfscissor.deploy.boxes import box_iou
from tfscissor.errors import ModelError, UsageError


def identity_cam_model(height, width):
    """A classifier whose Grad-CAM for class 0 is the image itself, and for class 1 is zero.

    A 1x1 convolution with weight 1 is the feature map; global average pooling and a Dense layer with weights
    [1, -1] make the logits +-mean(image), so the gradient of class 0's logit is +1/(H*W) everywhere (the map
    is the positive image) and class 1's is -1/(H*W) (the map is relu(-image) = 0: flat).
    """
    import keras

    inputs = keras.Input((height, width, 1))
    features = keras.layers.Conv2D(1, 1, name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(2, activation="softmax", name="scores")(pooled)
    model = keras.Model(inputs, outputs, name="identity_cam")
    model.get_layer("features").set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    model.get_layer("scores").set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    return model


def bright_rectangle(height, width, x0, y0, x1, y1, value=200.0):
    image = np.full((height, width, 1), 10.0, np.float32)
    image[y0:y1, x0:x1] = value
    return image


def test_cam_boxes_of_a_known_map():
    from tfscissor.crop.cam import cam_boxes, gradcam

    model = identity_cam_model(8, 8)
    images = np.stack([bright_rectangle(8, 8, 1, 2, 5, 4), bright_rectangle(8, 8, 6, 5, 8, 8)])
    maps = gradcam(model, images, [0, 0])
    assert maps.shape == (2, 8, 8)
    np.testing.assert_allclose(maps, images[..., 0] / 64, rtol=1e-5)
    boxes = cam_boxes(model, images, [0, 0])
    # Pixels at or above min + 0.5 * (max - min) are the rectangle: columns 1-4, rows 2-3 -> [1/8, 2/8, 5/8, 4/8],
    # squared to 4 px about the centre row 3: [1/8, 1/8, 5/8, 5/8]. The second: columns 6-7, rows 5-7 ->
    # [6/8, 5/8, 1, 1], squared to 3 px and shifted back inside: [5/8, 5/8, 1, 1].
    np.testing.assert_allclose(boxes, [[1 / 8, 1 / 8, 5 / 8, 5 / 8], [5 / 8, 5 / 8, 1.0, 1.0]], atol=1e-6)


def test_cam_boxes_are_square_in_pixels_on_wide_images():
    from tfscissor.crop.cam import cam_boxes

    model = identity_cam_model(8, 16)
    # Columns 3-8, rows 2-3 (6 x 2 px): squared to 6 px about row 3, shifted to start at row 0.
    boxes = cam_boxes(model, bright_rectangle(8, 16, 3, 2, 9, 4)[None], [0])
    np.testing.assert_allclose(boxes, [[3 / 16, 0.0, 9 / 16, 6 / 8]], atol=1e-6)


def test_flat_cam_gives_the_whole_image():
    from tfscissor.crop.cam import cam_boxes

    model = identity_cam_model(8, 8)
    # For class 1 the map is relu(-image) = 0 everywhere: nothing to locate.
    boxes = cam_boxes(model, bright_rectangle(8, 8, 1, 2, 5, 4)[None], [1])
    np.testing.assert_array_equal(boxes, [[0.0, 0.0, 1.0, 1.0]])


def test_threshold_widens_or_narrows_the_box():
    from tfscissor.crop.cam import cam_boxes

    model = identity_cam_model(8, 8)
    image = np.full((8, 8, 1), 0.0, np.float32)
    image[2:6, 2:6] = 100.0  # a plateau at 100 with a peak of 4 pixels at 200
    image[3:5, 3:5] = 200.0
    low = cam_boxes(model, image[None], [0], threshold=0.25)  # >= 50: the plateau
    high = cam_boxes(model, image[None], [0], threshold=0.75)  # >= 150: the peak
    np.testing.assert_allclose(low, [[2 / 8, 2 / 8, 6 / 8, 6 / 8]], atol=1e-6)
    np.testing.assert_allclose(high, [[3 / 8, 3 / 8, 5 / 8, 5 / 8]], atol=1e-6)
    for threshold in (-0.1, 1.0, 1.5):
        with pytest.raises(UsageError, match="threshold"):
            cam_boxes(model, image[None], [0], threshold=threshold)


@pytest.mark.slow
def test_cam_pseudo_boxes_reach_a_mean_iou_of_0_4(trained_plain, tiny_data):
    from tfscissor.crop.cam import cam_boxes
    from tfscissor.models import load_model

    classifier = load_model(trained_plain)
    val = tiny_data.val
    boxes = cam_boxes(classifier, val.images, val.labels)
    assert boxes.shape == (len(val), 4) and boxes.dtype == np.float32
    assert (boxes >= 0).all() and (boxes <= 1).all()
    iou = box_iou(boxes, val.boxes)
    assert iou.mean() >= 0.4, f"CAM pseudo-boxes reach a mean IoU of only {iou.mean():.3f}"
    # Far better than boxes that ignore the image: the centred box of the same mean size.
    side = np.mean(boxes[:, 2] - boxes[:, 0])
    centred = np.tile([0.5 - side / 2, 0.5 - side / 2, 0.5 + side / 2, 0.5 + side / 2], (len(val), 1))
    assert iou.mean() > box_iou(centred, val.boxes).mean() + 0.1


def test_cached_cam_boxes_are_written_and_read_back(tmp_path):
    from tfscissor.crop.cam import cached_cam_boxes, cam_boxes

    model = identity_cam_model(8, 8)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, 8, 8, 1)).astype(np.float32)
    labels = np.zeros(6, np.int32)
    cache = tmp_path / "cache"
    boxes, path, was_cached = cached_cam_boxes(model, images, labels, cache_dir=cache)
    assert not was_cached
    assert path.parent == cache and path.is_file() and path.suffix == ".npy"
    np.testing.assert_array_equal(boxes, cam_boxes(model, images, labels))
    again, again_path, was_cached = cached_cam_boxes(model, images, labels, cache_dir=cache)
    assert was_cached and again_path == path
    np.testing.assert_array_equal(again, boxes)
    assert again.dtype == np.float32
    # Another threshold, other labels or other weights are other entries.
    _, other_threshold, cached = cached_cam_boxes(model, images, labels, threshold=0.3, cache_dir=cache)
    assert not cached and other_threshold != path
    _, other_labels, cached = cached_cam_boxes(model, images, np.ones(6, np.int32), cache_dir=cache)
    assert not cached and other_labels not in (path, other_threshold)
    weights = model.get_layer("features").get_weights()
    model.get_layer("features").set_weights([weights[0] * 2, weights[1]])
    _, other_weights, cached = cached_cam_boxes(model, images, labels, cache_dir=cache)
    assert not cached and other_weights not in (path, other_threshold, other_labels)
    assert len(list(cache.iterdir())) == 4


def test_cached_cam_boxes_serve_the_file_not_a_recomputation(tmp_path):
    from tfscissor.crop.cam import cached_cam_boxes

    model = identity_cam_model(8, 8)
    images = np.random.default_rng(1).uniform(0, 255, (3, 8, 8, 1)).astype(np.float32)
    _, path, _ = cached_cam_boxes(model, images, [0, 0, 0], cache_dir=tmp_path)
    marker = np.full((3, 4), 0.125, np.float32)
    np.save(path, marker)
    boxes, _, was_cached = cached_cam_boxes(model, images, [0, 0, 0], cache_dir=tmp_path)
    assert was_cached
    np.testing.assert_array_equal(boxes, marker)


def test_damaged_cache_entry_is_recomputed(tmp_path):
    from tfscissor.crop.cam import cached_cam_boxes

    model = identity_cam_model(8, 8)
    images = np.random.default_rng(2).uniform(0, 255, (3, 8, 8, 1)).astype(np.float32)
    boxes, path, _ = cached_cam_boxes(model, images, [0, 0, 0], cache_dir=tmp_path)
    path.write_bytes(b"not an npy file")
    again, _, was_cached = cached_cam_boxes(model, images, [0, 0, 0], cache_dir=tmp_path)
    assert not was_cached
    np.testing.assert_array_equal(again, boxes)
    np.testing.assert_array_equal(np.load(path), boxes)  # replaced


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    from tfscissor.crop.cam import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "tfscissor"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "tfscissor"


@pytest.mark.parametrize("sequential", [False, True])
def test_classifier_without_spatial_maps_raises_model_error(sequential):
    import keras

    from tfscissor.crop.cam import cam_boxes

    if sequential:
        model = keras.Sequential(
            [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")]
        )
    else:
        inputs = keras.Input((8, 8, 3))
        outputs = keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, outputs, name="dense_only")
    images = np.zeros((2, 8, 8, 3), np.float32)
    with pytest.raises(ModelError, match="no spatial feature map"):
        cam_boxes(model, images, [0, 1])


def test_images_of_another_size_raise_model_error():
    from tfscissor.crop.cam import gradcam

    with pytest.raises(ModelError, match="takes images of"):
        gradcam(identity_cam_model(8, 8), np.zeros((1, 16, 16, 1), np.float32), [0])


def test_cam_explains_a_backbone_nested_as_one_layer():
    """A keras.applications-style classifier (backbone model, then pooling and Dense) hides its feature maps in
    the nested model: Grad-CAM explains the inlined graph, with the same boxes as the flat model."""
    import keras

    from tfscissor.crop.cam import cam_boxes

    flat = identity_cam_model(8, 8)
    inputs = keras.Input((8, 8, 1))
    backbone = keras.Model(inputs, flat.get_layer("features")(inputs), name="backbone")
    outer_in = keras.Input((8, 8, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(outer_in))
    nested = keras.Model(outer_in, flat.get_layer("scores")(pooled), name="nested")
    images = np.stack([bright_rectangle(8, 8, 2, 3, 5, 7), bright_rectangle(8, 8, 0, 0, 4, 4)])
    labels = np.zeros(2, np.int32)
    np.testing.assert_array_equal(cam_boxes(nested, images, labels), cam_boxes(flat, images, labels))


def test_cam_of_a_sequential_model_whose_only_conv_is_its_first_layer():
    import keras

    from tfscissor.crop.cam import cam_boxes

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(1, 1),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    model.layers[0].set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    model.layers[-1].set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    boxes = cam_boxes(model, bright_rectangle(8, 8, 2, 2, 6, 6)[None], np.zeros(1, np.int32))
    np.testing.assert_allclose(boxes, [[0.25, 0.25, 0.75, 0.75]])


def test_a_label_beyond_the_classifier_outputs_raises_model_error():
    from tfscissor.crop.cam import cam_boxes

    with pytest.raises(ModelError, match="2 outputs, the data has label 5"):
        cam_boxes(identity_cam_model(8, 8), bright_rectangle(8, 8, 2, 2, 6, 6)[None], np.array([5]))

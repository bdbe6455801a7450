import os
from pathlib import Path

import numpy as np
import pytest

from tfscissor.data import cluttered, load_data, parse_spec
from tfscissor.data.cluttered import ClutteredConfig, generate_cluttered
from tfscissor.data.idx import FASHION_MNIST_CLASSES, write_idx
from tfscissor.data.objects import GLYPHS, DigitsSource, _PoolSource, make_source
from tfscissor.errors import DataError, UsageError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SMALL = {"size": 48, "n": 120, "classes": 6, "clutter": 4, "seed": 3}


@pytest.fixture(scope="module")
def small():
    return generate_cluttered(SMALL, return_masks=True)


def _mask_boxes(masks):
    """Tight [xmin, ymin, xmax, ymax) pixel boxes of boolean masks."""
    boxes = []
    for mask in masks:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    return np.array(boxes)


def test_same_seed_is_bit_identical_and_another_seed_differs(small):
    names, train, val = small
    names2, train2, val2 = generate_cluttered(SMALL, return_masks=True)
    assert names == names2
    for a, b in ((train, train2), (val, val2)):
        for field in ("images", "labels", "boxes", "masks"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
    _, other, _ = generate_cluttered({**SMALL, "seed": 4})
    assert not np.array_equal(other.images, train.images)


@pytest.mark.parametrize("split", [1, 2])
def test_boxes_are_the_tight_box_of_the_visible_object(small, split):
    part = small[split]
    size = SMALL["size"]
    assert part.boxes.dtype == np.float32
    assert np.all(part.boxes >= 0) and np.all(part.boxes <= 1)
    assert np.all(part.boxes[:, 0] < part.boxes[:, 2]) and np.all(part.boxes[:, 1] < part.boxes[:, 3])
    assert np.array_equal(np.rint(part.boxes * size), _mask_boxes(part.masks))
    assert np.allclose(part.boxes * size, np.rint(part.boxes * size), atol=1e-4)


def test_mask_is_where_the_object_was_pasted_last(monkeypatch):
    """White-box: the mask is the last paste's coverage >= 1/2, painted over everything, and distractors
    stay off the object's box."""
    calls = []
    real_paste = cluttered._paste

    def recording_paste(canvas, layers, x, y, body, outline, opacity=1.0):
        calls.append((layers, x, y, body, outline, opacity))
        real_paste(canvas, layers, x, y, body, outline, opacity)

    monkeypatch.setattr(cluttered, "_paste", recording_paste)
    config = ClutteredConfig.from_options({"size": 40, "n": 30, "classes": 3, "clutter": 6})
    composer = cluttered._Composer(config, make_source("glyphs", 3), "train", 30)
    rng = np.random.default_rng(0)
    for label in range(3):
        calls.clear()
        image, box, visible, x, y = composer.compose(rng, label)
        layers, px, py, body, outline, opacity = calls[-1]
        assert (px, py, opacity) == (x, y, 1.0)
        assert np.array_equal(visible, layers[..., 0] >= 128)
        # Fully covered pixels show only the object's colours (plus at most 3-sigma sensor noise).
        full = layers[..., 0] == 255
        planes = layers[full].astype(np.float32) / 255
        expected = planes[:, 1:2] * planes[:, 2:3] * body + (planes[:, 0:1] - planes[:, 1:2]) * outline
        assert np.abs(image[y : y + layers.shape[0], x : x + layers.shape[1]][full] - expected).max() <= 10
        box_area = (box[2] - box[0]) * (box[3] - box[1])
        for d_layers, dx, dy, *_ in calls[:-1]:
            h, w = d_layers.shape[:2]
            overlap = max(0, min(dx + w, box[2]) - max(dx, box[0])) * max(0, min(dy + h, box[3]) - max(dy, box[1]))
            assert overlap <= 0.15 * min(w * h, box_area)


def test_classes_are_all_present_and_balanced():
    names, train, val = generate_cluttered({"size": 16, "n": 200, "classes": 10, "clutter": 0})
    assert names == tuple(GLYPHS[:10])
    for part, per_class in ((train, 16), (val, 4)):
        assert np.array_equal(np.bincount(part.labels, minlength=10), [per_class] * 10)
    _, train, _ = generate_cluttered({"size": 16, "n": 50, "classes": 7, "clutter": 0})
    counts = np.bincount(train.labels, minlength=7)
    assert counts.min() >= 1 and counts.max() - counts.min() <= 1


def test_load_data_returns_a_dataset_with_canonical_spec():
    ds = load_data("cluttered:size=24,n=50,classes=3,val=0.3,seed=7")
    assert ds.image_shape == (24, 24, 3) and ds.num_classes == 3 and ds.has_boxes
    assert (len(ds.train), len(ds.val)) == (35, 15)
    assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int32
    assert ds.spec == (
        "cluttered:channels=3,classes=3,clutter=3,difficulty=normal,max_scale=0.75,min_scale=0.3,"
        "n=50,seed=7,size=24,source=glyphs,val=0.3"
    )
    again = load_data(ds.spec)  # the canonical spec reproduces the data exactly
    assert np.array_equal(again.train.images, ds.train.images) and again.spec == ds.spec


def test_image_size_resizes_and_keeps_boxes():
    full = load_data("cluttered:size=32,n=20,classes=2")
    small = load_data("cluttered:size=32,n=20,classes=2", image_size=(16, 24))
    assert small.image_shape == (16, 24, 3)
    assert np.array_equal(small.train.boxes, full.train.boxes)
    assert small.spec == full.spec


def test_channels_1_is_the_luma_of_the_colour_images():
    _, rgb, _ = generate_cluttered({"size": 20, "n": 10, "classes": 2})
    _, grey, _ = generate_cluttered({"size": 20, "n": 10, "classes": 2, "channels": 1})
    assert grey.images.shape == (8, 20, 20, 1)
    luma = np.rint(rgb.images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    assert np.array_equal(grey.images[..., 0], luma.astype(np.uint8))
    assert np.array_equal(grey.boxes, rgb.boxes)


def test_scale_options_bound_the_object_size():
    _, train, _ = generate_cluttered({"size": 64, "n": 40, "classes": 4, "min_scale": 0.5, "max_scale": 0.5})
    long_side = np.max((train.boxes[:, 2:] - train.boxes[:, :2]) * 64, axis=1)
    assert long_side.min() >= 28 and long_side.max() <= 32
    _, tiny, _ = generate_cluttered({"size": 64, "n": 40, "classes": 4, "min_scale": 0.15, "max_scale": 0.2})
    assert np.max((tiny.boxes[:, 2:] - tiny.boxes[:, :2]) * 64) <= 13


def test_hard_has_brighter_backgrounds_smaller_objects_and_more_clutter():
    normal = load_data("cluttered:size=32,n=100,classes=4")
    hard = load_data("cluttered:size=32,n=100,classes=4,difficulty=hard")
    assert "clutter=5" in hard.spec and "max_scale=0.5" in hard.spec and "min_scale=0.2" in hard.spec
    assert hard.train.images.mean() > normal.train.images.mean() + 10

    def area(ds):
        return np.mean(np.prod(ds.train.boxes[:, 2:] - ds.train.boxes[:, :2], axis=1))

    assert area(hard) < 0.6 * area(normal)
    explicit = load_data("cluttered:size=32,n=20,classes=4,difficulty=hard,clutter=1,max_scale=0.9")
    assert "clutter=1" in explicit.spec and "max_scale=0.9" in explicit.spec


def test_digits_source():
    names, train, val = generate_cluttered({"size": 32, "n": 40, "classes": 10, "source": "digits"}, return_masks=True)
    assert names == tuple(str(i) for i in range(10))
    assert np.array_equal(np.rint(train.boxes * 32), _mask_boxes(train.masks))


def test_digits_train_and_val_items_are_disjoint():
    source = DigitsSource(10)
    for cls in range(10):
        train = {item.tobytes() for item in source.pools["train"][cls]}
        val = {item.tobytes() for item in source.pools["val"][cls]}
        assert train and val and not train & val


def _write_shapes_idx(directory, n_train=40, n_val=20):
    """A tiny IDX data set: class 0 a filled disc, class 1 a hollow square, class 2 a bar; black around them."""
    yy, xx = np.mgrid[0:28, 0:28]
    shapes = [
        ((yy - 14) ** 2 + (xx - 14) ** 2 < 81) * 200,
        ((np.abs(yy - 14) < 10) & (np.abs(xx - 14) < 10) & ~((np.abs(yy - 14) < 6) & (np.abs(xx - 14) < 6))) * 255,
        ((np.abs(yy - 14) < 11) & (np.abs(xx - 14) < 3)) * 120,
    ]
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n_train), ("t10k", n_val)):
        labels = np.arange(count, dtype=np.uint8) % 3
        images = np.stack([shapes[label] for label in labels]).astype(np.uint8)
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte", labels)
    return directory


def test_idx_source_pastes_item_silhouettes(tmp_path):
    directory = _write_shapes_idx(tmp_path / "shapes")
    names, train, val = generate_cluttered(
        {"size": 40, "n": 30, "classes": 3, "source": f"idx:{directory}", "clutter": 0}, return_masks=True
    )
    assert names == ("0", "1", "2")
    assert np.array_equal(np.rint(train.boxes * 40), _mask_boxes(train.masks))
    # The hollow square keeps its hole: its silhouette is filled, so the hole is object (the body) too,
    # while the black 28x28 surround is never pasted: masks are much smaller than the item's square.
    for mask, label, box in zip(train.masks, train.labels, train.boxes, strict=True):
        box_area = np.prod((box[2:] - box[:2]) * 40)
        assert mask.sum() <= box_area
        if label == 2:  # a thin bar: far less than its box once rotated, far less than the canvas
            assert mask.sum() < 0.5 * 40 * 40


def test_idx_source_errors(tmp_path):
    directory = _write_shapes_idx(tmp_path / "shapes")
    with pytest.raises(UsageError, match="classes=4 is more than source=idx"):
        generate_cluttered({"size": 32, "n": 20, "classes": 4, "source": f"idx:{directory}"})
    with pytest.raises(DataError, match="does not exist"):
        generate_cluttered({"size": 32, "n": 20, "classes": 2, "source": f"idx:{tmp_path / 'missing'}"})


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_source_from_debian_package():
    ds = load_data(f"cluttered:size=48,n=75,source=idx:{FASHION_DIR}")
    assert ds.class_names == FASHION_MNIST_CLASSES
    assert ds.image_shape == (48, 48, 3) and np.bincount(ds.train.labels).tolist() == [6] * 10


def test_pool_source_with_an_empty_class():
    pools = {
        "train": [np.zeros((2, 8, 8), np.uint8), np.zeros((0, 8, 8), np.uint8)],
        "val": [np.zeros((1, 8, 8), np.uint8)] * 2,
    }
    with pytest.raises(DataError, match="no train items of class 'b'"):
        _PoolSource(pools, ("a", "b"), 2, "source=test")


def test_config_errors():
    with pytest.raises(UsageError, match="min_scale=0.8 is larger than max_scale=0.75"):
        ClutteredConfig.from_options({"min_scale": 0.8})
    with pytest.raises(UsageError, match="n=20 with val=0.2 leaves 16 train and 4 val images for 20 classes"):
        ClutteredConfig.from_options({"n": 20, "classes": 20})
    with pytest.raises(UsageError, match="leaves 2 train and 0 val"):
        ClutteredConfig.from_options({"n": 2, "classes": 2})
    with pytest.raises(UsageError, match=f"classes=40 is more than source=glyphs offers \\({len(GLYPHS)}\\)"):
        load_data("cluttered:classes=40")
    with pytest.raises(UsageError, match="classes=11 is more than source=digits offers"):
        load_data("cluttered:classes=11,source=digits,n=50")
    with pytest.raises(UsageError, match="unknown object source 'photos'"):
        make_source("photos", 3)
    assert ClutteredConfig.from_options(parse_spec("cluttered").options) == ClutteredConfig()
    with pytest.raises(UsageError, match="bad value '5' for option 'size'"):
        generate_cluttered({"size": 5})  # options built in code are checked like spec strings
    with pytest.raises(UsageError, match="unknown option 'colour'"):
        generate_cluttered({"colour": "red"})


def test_object_that_never_becomes_visible_is_a_bug_not_a_hang(monkeypatch):
    config = ClutteredConfig.from_options({"size": 16, "n": 4, "classes": 2})
    composer = cluttered._Composer(config, make_source("glyphs", 2), "train", 4)
    monkeypatch.setattr(composer, "_sprite", lambda rng, cls, side: np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(RuntimeError, match="could not draw a visible object"):
        composer.compose(np.random.default_rng(0), 0)


def test_a_tiny_cnn_learns_it_above_chance():
    """The data is learnable: a 3-conv CNN beats chance (20%) by far on held-out images in a few seconds."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from tfscissor.data import to_tf_dataset

    ds = load_data("cluttered:size=32,n=600,classes=5")
    keras.utils.set_random_seed(0)

    def block(filters):
        return [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(momentum=0.5),
            keras.layers.ReLU(),
        ]

    model = keras.Sequential(
        [
            keras.Input(ds.image_shape),
            keras.layers.Rescaling(1 / 255),
            *block(16),
            keras.layers.MaxPooling2D(),
            *block(32),
            keras.layers.MaxPooling2D(),
            *block(64),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(ds.num_classes, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(to_tf_dataset(ds.train, 32, shuffle=True), epochs=3, shuffle=False, verbose=0)
    _, accuracy = model.evaluate(to_tf_dataset(ds.val, 64), verbose=0)
    assert accuracy >= 0.4

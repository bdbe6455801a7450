import subprocess
import sys

import numpy as np
import pytest

from tfscissor.data import Dataset, Split, load_data, parse_spec
from tfscissor.data.dataset import normalize_image_size, resize_images, stratified_split
from tfscissor.errors import DataError, UsageError


def _split(n=4, size=8, channels=3, boxes=False):
    images = np.zeros((n, size, size, channels), dtype=np.uint8)
    return Split(images, np.arange(n) % 2, np.tile([0.1, 0.2, 0.6, 0.9], (n, 1)) if boxes else None)


def test_split_coerces_labels_and_boxes():
    split = _split(boxes=True)
    assert split.labels.dtype == np.int32 and split.boxes.dtype == np.float32
    assert len(split) == 4


def test_split_rejects_non_uint8_images():
    with pytest.raises(DataError, match="uint8"):
        Split(np.zeros((2, 4, 4, 3), dtype=np.float32), [0, 1])


def test_split_rejects_label_count_mismatch():
    with pytest.raises(DataError, match="labels"):
        Split(np.zeros((2, 4, 4, 3), dtype=np.uint8), [0, 1, 2])


def test_split_rejects_bad_boxes():
    with pytest.raises(DataError, match="boxes"):
        Split(np.zeros((2, 4, 4, 3), dtype=np.uint8), [0, 1], np.zeros((2, 3)))


def test_dataset_properties():
    ds = Dataset("cluttered", ["a", "b"], _split(), _split(2))
    assert ds.image_shape == (8, 8, 3) and ds.num_classes == 2 and ds.class_names == ("a", "b")
    assert not ds.has_boxes


def test_dataset_rejects_shape_mismatch():
    with pytest.raises(DataError, match="differ in shape"):
        Dataset("x", ("a", "b"), _split(size=8), _split(size=4))


def test_dataset_rejects_labels_outside_classes():
    with pytest.raises(DataError, match="outside 0..0"):
        Dataset("x", ("a",), _split(), _split())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ((None, None), None),
        (32, (32, 32)),
        ((24, 40), (24, 40)),
        ([5, 6], (5, 6)),
        ((np.int64(3), 4), (3, 4)),
    ],
)
def test_normalize_image_size(value, expected):
    assert normalize_image_size(value) == expected


@pytest.mark.parametrize("value", ["32", 3.5, (1, 2, 3), True, (4, "5"), (None, 32)])
def test_normalize_image_size_rejects_types(value):
    with pytest.raises(UsageError, match="image_size must be None, an int or"):
        normalize_image_size(value)


@pytest.mark.parametrize("value", [0, (4, -1)])
def test_normalize_image_size_rejects_non_positive(value):
    with pytest.raises(UsageError, match="must be positive"):
        normalize_image_size(value)


def test_resize_images_grey_and_rgb():
    grey = np.full((3, 10, 12, 1), 200, dtype=np.uint8)
    rgb = np.zeros((2, 10, 12, 3), dtype=np.uint8)
    rgb[..., 1] = 90
    out = resize_images(grey, (5, 7))
    assert out.shape == (3, 5, 7, 1) and np.all(out == 200)
    out = resize_images(rgb, (20, 6))
    assert out.shape == (2, 20, 6, 3) and np.all(out[..., 1] == 90) and np.all(out[..., 0] == 0)
    assert resize_images(rgb, (10, 12)) is rgb


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 1)
    train, val = stratified_split(labels, 0.2, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(13))
    assert np.sum(labels[val] == 0) == 2 and np.sum(labels[val] == 1) == 1 and np.sum(labels[val] == 2) == 0
    assert np.array_equal(stratified_split(labels, 0.2, seed=0)[1], val)
    empty = stratified_split(np.zeros(0, dtype=np.int32), 0.2, 0)
    assert len(empty[0]) == 0 and len(empty[1]) == 0


def test_load_data_accepts_dataspec_and_validates_image_size():
    spec = parse_spec("cluttered:size=16,n=24,classes=2,clutter=0")
    ds = load_data(spec, image_size=(8, 12))
    assert ds.image_shape == (8, 12, 3)
    with pytest.raises(UsageError, match="image_size"):
        load_data(spec, image_size=-1)
    with pytest.raises(UsageError, match="unknown data spec kind"):
        load_data("csv:/x")


def test_import_does_not_pull_in_tensorflow():
    code = "import sys, tfscissor.data; sys.exit(int(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

import numpy as np
import pytest

from tfscissor.data import Split, to_tf_dataset
from tfscissor.errors import UsageError


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 6, 6, 3), dtype=np.uint8)
    boxes = np.tile(np.array([0.1, 0.2, 0.5, 0.7], dtype=np.float32), (10, 1)) + np.arange(10)[:, None] * 0.01
    return Split(images, np.arange(10) % 3, boxes)


def test_batches_float_images_in_0_255_and_int_labels(split):
    batches = list(to_tf_dataset(split, 4).as_numpy_iterator())
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.dtype == np.float32 and np.array_equal(images, split.images.astype(np.float32))
    assert labels.dtype == np.int32 and np.array_equal(labels, split.labels)


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    # Image i is filled with the value i, so a batch's first pixels give the order.
    indexed = Split(
        np.broadcast_to(np.arange(20, dtype=np.uint8)[:, None, None, None], (20, 2, 2, 1)).copy(),
        np.zeros(20, dtype=int),
    )

    def order(dataset):
        return np.concatenate([images[:, 0, 0, 0] for images, _ in dataset.as_numpy_iterator()]).astype(int).tolist()

    shuffled = to_tf_dataset(indexed, 3, shuffle=True, seed=5)
    epoch1, epoch2 = order(shuffled), order(shuffled)
    assert sorted(epoch1) == list(range(20)) and epoch1 != list(range(20))
    assert epoch1 != epoch2
    assert order(to_tf_dataset(indexed, 3, shuffle=True, seed=5)) == epoch1
    assert order(to_tf_dataset(indexed, 3)) == list(range(20))


def test_with_boxes_yields_a_dict_target(split):
    images, target = next(iter(to_tf_dataset(split, 10, with_boxes=True).as_numpy_iterator()))
    assert set(target) == {"labels", "boxes"}
    assert np.array_equal(target["labels"], split.labels)
    assert np.allclose(target["boxes"], split.boxes) and target["boxes"].dtype == np.float32


def test_with_boxes_needs_boxes(split):
    no_boxes = Split(split.images, split.labels)
    with pytest.raises(UsageError, match="no boxes"):
        to_tf_dataset(no_boxes, 4, with_boxes=True)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True, "8"])
def test_bad_batch_size(split, batch_size):
    with pytest.raises(UsageError, match="batch_size must be a positive integer"):
        to_tf_dataset(split, batch_size)

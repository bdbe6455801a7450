import gzip
from pathlib import Path

import numpy as np
import pytest

from tfscissor.data import load_data
from tfscissor.data.idx import FASHION_MNIST_CLASSES, read_idx, read_idx_dir, write_idx
from tfscissor.errors import DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _write_dir(directory, n_train=12, n_val=5, size=(6, 5), gz=True, dotted=False, labels_mod=4):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("t10k", n_val)):
        images = rng.integers(0, 256, size=(count, *size), dtype=np.uint8)
        labels = (np.arange(count) % labels_mod).astype(np.uint8)
        sep = "." if dotted else "-"
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{split}-images{sep}idx3-ubyte{suffix}", images)
        write_idx(directory / f"{split}-labels{sep}idx1-ubyte{suffix}", labels)
    return directory


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) - 7).astype(dtype)
    path = tmp_path / f"a-idx3-ubyte{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)


def test_header_is_the_mnist_layout(tmp_path):
    write_idx(tmp_path / "x", np.zeros((3, 2, 2), dtype=np.uint8))
    assert (tmp_path / "x").read_bytes()[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2])


def test_write_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="cannot write uint16 as IDX"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))


def _corrupt(tmp_path, data, name="bad-idx1-ubyte"):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_truncated_data(tmp_path):
    write_idx(tmp_path / "good", np.arange(10, dtype=np.uint8))
    data = (tmp_path / "good").read_bytes()
    assert "is truncated: header (10,) needs 18 bytes, found 15" in _corrupt(tmp_path, data[:-3])


def test_extra_data(tmp_path):
    write_idx(tmp_path / "good", np.arange(10, dtype=np.uint8))
    assert "longer than its header says" in _corrupt(tmp_path, (tmp_path / "good").read_bytes() + b"\0")


def test_truncated_header(tmp_path):
    assert "shorter than the 4-byte header" in _corrupt(tmp_path, b"\0\0")
    assert "truncated inside its header" in _corrupt(tmp_path, bytes([0, 0, 8, 3, 0, 0, 0, 1]))


def test_bad_magic(tmp_path):
    assert "is not an IDX file: its magic number is 0x89504e47" in _corrupt(tmp_path, b"\x89PNG\r\n\x1a\n")
    assert "magic number is 0x00000700" in _corrupt(tmp_path, bytes([0, 0, 7, 0]))


def test_truncated_gzip(tmp_path):
    payload = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 100]) + bytes(100))
    assert "is not a complete gzip file" in _corrupt(tmp_path, payload[:-10], name="bad-idx1-ubyte.gz")
    assert "is not a complete gzip file" in _corrupt(tmp_path, b"plain text", name="other-idx1-ubyte.gz")


def test_unreadable_file(tmp_path):
    (tmp_path / "dir-idx1-ubyte").mkdir()
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "dir-idx1-ubyte")


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dotted", [True, False])
def test_load_idx_directory(tmp_path, gz, dotted):
    directory = _write_dir(tmp_path / "digits", gz=gz, dotted=dotted)
    ds = load_data(f"idx:{directory}")
    assert ds.image_shape == (6, 5, 1) and (len(ds.train), len(ds.val)) == (12, 5)
    assert ds.class_names == ("0", "1", "2", "3") and not ds.has_boxes
    assert np.array_equal(ds.train.images[..., 0], read_idx_dir(directory).train_images)
    assert ds.spec == f"idx:{directory}"


def test_limit_and_image_size(tmp_path):
    directory = _write_dir(tmp_path / "d")
    ds = load_data(f"idx:{directory},limit=3", image_size=(12, 10))
    assert (len(ds.train), len(ds.val)) == (3, 3) and ds.image_shape == (12, 10, 1)


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="IDX directory .* does not exist"):
        load_data(f"idx:{tmp_path / 'nope'}")


def test_missing_file_lists_names_looked_for(tmp_path):
    directory = _write_dir(tmp_path / "d")
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DataError, match="no t10k labels file: looked for t10k-labels-idx1-ubyte, t10k-labels-idx1-ubyte.gz"
    ):
        load_data(f"idx:{directory}")


def test_count_mismatch(tmp_path):
    directory = _write_dir(tmp_path / "d")
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataError, match="has 12 images but .* has 11 labels"):
        load_data(f"idx:{directory}")


def test_wrong_dimensions(tmp_path):
    directory = _write_dir(tmp_path / "d")
    write_idx(directory / "train-images-idx3-ubyte.gz", np.zeros((12, 30), dtype=np.uint8))
    with pytest.raises(DataError, match=r"holds uint8 of shape \(12, 30\): expected uint8 with 3 dimension"):
        load_data(f"idx:{directory}")


def test_train_and_test_sizes_differ(tmp_path):
    directory = _write_dir(tmp_path / "d")
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((5, 7, 7), dtype=np.uint8))
    with pytest.raises(DataError, match="differ in size"):
        load_data(f"idx:{directory}")


def test_classes_txt_names_classes(tmp_path):
    directory = _write_dir(tmp_path / "letters")
    (directory / "classes.txt").write_text("alpha\nbeta\n\ngamma\ndelta\nepsilon\n")
    assert load_data(f"idx:{directory}").class_names == ("alpha", "beta", "gamma", "delta", "epsilon")
    (directory / "classes.txt").write_text("alpha\nbeta\n")
    with pytest.raises(DataError, match="names 2 classes but the labels go up to 3"):
        load_data(f"idx:{directory}")


def test_fashion_names_by_directory_name(tmp_path):
    directory = _write_dir(tmp_path / "my-Fashion-subset", labels_mod=10)
    assert load_data(f"idx:{directory}").class_names == FASHION_MNIST_CLASSES
    many = _write_dir(tmp_path / "fashion-but-many", n_train=15, labels_mod=15)
    assert load_data(f"idx:{many}").class_names == tuple(str(i) for i in range(15))


def test_fashion_names_by_content(tmp_path):
    """The content rule recognises Fashion-MNIST's labels under any directory name."""
    if not FASHION_DIR.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    directory = tmp_path / "renamed"
    directory.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (directory / name).symlink_to(FASHION_DIR / name)
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((2, 28, 28), dtype=np.uint8))
    write_idx(directory / "train-labels-idx1-ubyte", np.array([0, 1], dtype=np.uint8))
    assert read_idx_dir(directory).class_names == FASHION_MNIST_CLASSES


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package():
    ds = load_data(f"idx:{FASHION_DIR}")
    assert ds.class_names == FASHION_MNIST_CLASSES
    assert ds.image_shape == (28, 28, 1) and (len(ds.train), len(ds.val)) == (60000, 10000)
    assert np.array_equal(np.bincount(ds.train.labels), [6000] * 10)
    assert np.array_equal(np.bincount(ds.val.labels), [1000] * 10)
    assert 60 < ds.train.images.mean() < 90  # Fashion-MNIST's mean pixel is about 73

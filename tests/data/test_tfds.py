import time

import numpy as np
import pytest

from tfscissor.data import load_data
from tfscissor.data.tfds_source import find_prepared
from tfscissor.errors import DataError


def _fails_fast(spec):
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_data(spec)
    assert time.monotonic() - start < 2.0
    message = str(info.value)
    assert "\n" not in message
    return message


def test_no_data_dir_fails_at_once(monkeypatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    message = _fails_fast("tfds:mnist")
    assert "data_dir=PATH" in message and "TFDS_DATA_DIR" in message and "tfds build mnist" in message


def test_empty_data_dir_fails_at_once_naming_the_place_searched(tmp_path, monkeypatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    message = _fails_fast(f"tfds:mnist,data_dir={tmp_path}")
    assert f"looked for {tmp_path}/mnist/<version>/dataset_info.json" in message
    assert f"tfds build mnist --data_dir {tmp_path}" in message
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    assert f"not prepared in data dir {tmp_path}" in _fails_fast("tfds:cifar10/plain:1.0.0")


def test_version_that_is_not_prepared(tmp_path):
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)
    (tmp_path / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
    assert find_prepared("mnist", tmp_path) == tmp_path / "mnist" / "3.0.1"
    assert find_prepared("mnist:3.0.1", tmp_path) == tmp_path / "mnist" / "3.0.1"
    assert "mnist/2.0.0/dataset_info.json" in _fails_fast(f"tfds:mnist:2.0.0,data_dir={tmp_path}")


def test_newest_version_and_configs(tmp_path):
    for version in ("1.0.0", "1.10.0", "1.2.0"):
        (tmp_path / "ds" / version).mkdir(parents=True)
        (tmp_path / "ds" / version / "dataset_info.json").write_text("{}")
    assert find_prepared("ds", tmp_path).name == "1.10.0"
    (tmp_path / "multi" / "small" / "2.0.0").mkdir(parents=True)
    (tmp_path / "multi" / "small" / "2.0.0" / "dataset_info.json").write_text("{}")
    assert find_prepared("multi", tmp_path) == tmp_path / "multi" / "small" / "2.0.0"
    assert find_prepared("multi/small", tmp_path) == tmp_path / "multi" / "small" / "2.0.0"
    (tmp_path / "multi" / "large" / "2.0.0").mkdir(parents=True)
    (tmp_path / "multi" / "large" / "2.0.0" / "dataset_info.json").write_text("{}")
    assert "choose one of tfds:multi/large, tfds:multi/small" in _fails_fast(f"tfds:multi,data_dir={tmp_path}")


def test_damaged_prepared_directory(tmp_path):
    (tmp_path / "broken" / "1.0.0").mkdir(parents=True)
    (tmp_path / "broken" / "1.0.0" / "dataset_info.json").write_text("not json")
    with pytest.raises(DataError, match="cannot open the prepared tfds data set in"):
        load_data(f"tfds:broken,data_dir={tmp_path}")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Tiny data sets prepared locally with GeneratorBasedBuilder: nothing is downloaded."""
    tfds = pytest.importorskip("tensorflow_datasets")
    data_dir = tmp_path_factory.mktemp("tfds")

    def builder(name, features, splits, supervised_keys=None):
        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features), supervised_keys=supervised_keys
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(examples) for split, examples in splits.items()}

        def _generate_examples(self, examples):
            yield from enumerate(examples)

        attrs = {
            "VERSION": tfds.core.Version("1.0.0"),
            "_info": _info,
            "_split_generators": _split_generators,
            "_generate_examples": _generate_examples,
        }
        cls = type(name, (tfds.core.GeneratorBasedBuilder,), attrs)
        cls(data_dir=str(data_dir)).download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )

    rng = np.random.default_rng(0)

    def examples(n, shape=(8, 8, 3), sizes=None, keys=("image", "label")):
        out = []
        for i in range(n):
            image_shape = sizes[i % len(sizes)] + (shape[2],) if sizes else shape
            out.append({keys[0]: rng.integers(0, 255, image_shape, dtype=np.uint8), keys[1]: i % 3})
        return out

    classes = tfds.features.ClassLabel(names=["circle", "square", "star"])
    builder(
        "TinyShapes",
        {"image": tfds.features.Image(shape=(8, 8, 3)), "label": classes},
        {"train": examples(12), "test": examples(6)},
        ("image", "label"),
    )
    builder(
        "TinyVariable",
        {"picture": tfds.features.Image(shape=(None, None, 1)), "kind": classes},
        {"train": examples(10, (None, None, 1), sizes=[(6, 5), (9, 9)], keys=("picture", "kind"))},
    )
    builder("TinyTestOnly", {"image": tfds.features.Image(shape=(8, 8, 3)), "label": classes}, {"test": examples(3)})
    builder(
        "TinyNoLabels",
        {"image": tfds.features.Image(shape=(8, 8, 3)), "label": tfds.features.Tensor(shape=(), dtype=np.int64)},
        {"train": examples(3)},
    )
    return data_dir


def test_reads_a_prepared_data_set(prepared):
    ds = load_data(f"tfds:tiny_shapes,data_dir={prepared}")
    assert ds.class_names == ("circle", "square", "star")
    assert ds.image_shape == (8, 8, 3) and (len(ds.train), len(ds.val)) == (12, 6)
    assert ds.train.images.dtype == np.uint8 and sorted(np.bincount(ds.train.labels).tolist()) == [4, 4, 4]
    assert ds.spec == f"tfds:tiny_shapes,data_dir={prepared}"


def test_limit_image_size_and_env(prepared, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(prepared))
    ds = load_data("tfds:tiny_shapes:1.0.0,limit=5", image_size=4)
    assert (len(ds.train), len(ds.val)) == (5, 5) and ds.image_shape == (4, 4, 3)


def test_train_only_variable_sizes_without_supervised_keys(prepared):
    ds = load_data(f"tfds:tiny_variable,data_dir={prepared}")
    assert ds.image_shape == (6, 5, 1)  # the first image's size
    assert len(ds.train) + len(ds.val) == 10 and len(ds.val) == 3  # a seeded 20% per class


def test_no_train_split(prepared):
    with pytest.raises(DataError, match=r"has no train split \(splits: test\)"):
        load_data(f"tfds:tiny_test_only,data_dir={prepared}")


def test_not_a_classification_data_set(prepared):
    with pytest.raises(DataError, match="has no image and class-label features"):
        load_data(f"tfds:tiny_no_labels,data_dir={prepared}")

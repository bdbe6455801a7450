"""TensorFlow Datasets, read only from a data dir that already holds the prepared data set.

``tfds.load`` would try to download a missing data set, and without internet it retries DNS for
minutes. So the prepared data is looked for on disk first (``DATA_DIR/NAME[/CONFIG]/VERSION/
dataset_info.json``), with no TensorFlow import, and a clear error comes back at once when it is not
there. Only then is the data read, with ``tfds.builder_from_directory``, which reads local files only.

Splits: ``train`` becomes train; ``validation``, else ``test``, becomes val; with neither, a seeded
per-class 20% of train becomes val. Images and labels are the builder's supervised keys, else its first
Image and ClassLabel features. Images of different sizes are resized to ``image_size`` or, without it,
to the first image's size.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from tfscissor.data.dataset import Dataset, Split, resize_images, stratified_split
from tfscissor.errors import DataError

__all__ = ["find_prepared", "load_tfds"]

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def _how_to_prepare(name, data_dir):
    return (
        f"prepare it on a machine with internet with `tfds build {name} --data_dir {data_dir}` "
        f"(or, for data sets with manual downloads, `tfds build {name} --data_dir {data_dir} --manual_dir DIR`) "
        f"and copy {data_dir}/{name.split('/')[0].split(':')[0]} here"
    )


def _versions(directory):
    if not directory.is_dir():
        return []
    return sorted(
        (p for p in directory.iterdir() if _VERSION.match(p.name) and (p / "dataset_info.json").is_file()),
        key=lambda p: tuple(int(x) for x in p.name.split(".")),
    )


def find_prepared(name, data_dir=None):
    """Return the directory of the prepared data set ``NAME[/CONFIG][:VERSION]``, checking the disk only.

    ``data_dir`` defaults to the ``TFDS_DATA_DIR`` environment variable. Raises :class:`DataError`
    naming the directory searched when the data set is not prepared there.
    """
    if data_dir is None:
        data_dir = os.environ.get("TFDS_DATA_DIR")
    if not data_dir:
        raise DataError(
            f"tfds:{name} needs a data dir that holds the prepared data set: add data_dir=PATH to the spec "
            f"or set TFDS_DATA_DIR (nothing is downloaded at run time); {_how_to_prepare(name, '~/tensorflow_datasets')}"
        )
    root = Path(data_dir).expanduser()
    base_name, _, version = name.partition(":")
    dataset, _, config = base_name.partition("/")
    searched = root / dataset / config if config else root / dataset
    if version:
        if (searched / version / "dataset_info.json").is_file():
            return searched / version
        found = []
    else:
        found = _versions(searched)
        if not found and not config and searched.is_dir():
            # A data set with configs: accept the only prepared one, else ask which.
            configs = [d for d in sorted(searched.iterdir()) if d.is_dir() and _versions(d)]
            if len(configs) == 1:
                return _versions(configs[0])[-1]
            if configs:
                choices = ", ".join(f"tfds:{dataset}/{d.name}" for d in configs)
                raise DataError(f"tfds:{name} has several prepared configs under {searched}: choose one of {choices}")
        if found:
            return found[-1]
    where = searched / (version or "<version>") / "dataset_info.json"
    raise DataError(
        f"tfds data set {name!r} is not prepared in data dir {root}: looked for {where}; {_how_to_prepare(name, root)}"
    )


def _keys(info):
    import tensorflow_datasets as tfds

    if (
        info.supervised_keys
        and len(info.supervised_keys) == 2
        and all(isinstance(k, str) for k in info.supervised_keys)
    ):
        image_key, label_key = info.supervised_keys
    else:
        features = info.features
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
        if not images or not labels:
            raise DataError(
                f"tfds data set {info.full_name} has no image and class-label features "
                f"(features: {', '.join(features.keys())}): tfscissor needs an image classification data set"
            )
        image_key, label_key = images[0], labels[0]
    return image_key, label_key


def _read_split(builder, split, image_key, label_key, limit):
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    if limit is not None:
        dataset = dataset.take(limit)
    images, labels = [], []
    for example in dataset.as_numpy_iterator():
        image = np.asarray(example[image_key])
        images.append(image if image.ndim == 3 else image[..., None])
        labels.append(int(example[label_key]))
    return images, np.asarray(labels, dtype=np.int32)


def _stack(images, size, channels):
    height, width = size
    out = np.empty((len(images), height, width, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        if image.shape[2] != channels:  # a grey image among colour ones
            image = np.repeat(image[..., :1], channels, axis=2)
        out[i] = resize_images(image[None].astype(np.uint8), (height, width))[0]
    return out


def load_tfds(spec, image_size=None):
    """Loader for ``tfds:NAME`` specs (see :func:`tfscissor.data.load_data`)."""
    builder_dir = find_prepared(spec.arg, spec.options.get("data_dir"))
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder_from_directory(str(builder_dir))
    except Exception as exc:  # tfds raises many types for a damaged directory
        raise DataError(f"cannot open the prepared tfds data set in {builder_dir}: {exc}") from None
    info = builder.info
    image_key, label_key = _keys(info)
    class_names = tuple(info.features[label_key].names)
    limit = spec.options.get("limit")
    splits = set(info.splits.keys())
    if "train" not in splits:
        raise DataError(
            f"tfds data set {info.full_name} in {builder_dir} has no train split (splits: {', '.join(sorted(splits))})"
        )
    train_images, train_labels = _read_split(builder, "train", image_key, label_key, limit)
    val_name = next((s for s in ("validation", "test") if s in splits), None)
    if val_name is not None:
        val_images, val_labels = _read_split(builder, val_name, image_key, label_key, limit)
    else:
        train_idx, val_idx = stratified_split(train_labels, 0.2, 0)
        val_images, val_labels = [train_images[i] for i in val_idx], train_labels[val_idx]
        train_images, train_labels = [train_images[i] for i in train_idx], train_labels[train_idx]
    # tfds refuses to prepare an empty split, and the seeded split keeps a lone example in train.
    size = image_size if image_size is not None else train_images[0].shape[:2]
    channels = max(image.shape[2] for image in train_images + val_images)
    return Dataset(
        str(spec),
        class_names,
        Split(_stack(train_images, size, channels), train_labels),
        Split(_stack(val_images, size, channels), val_labels),
    )

"""MNIST-format IDX files (MNIST, Fashion-MNIST, EMNIST, KMNIST, ...), parsed with numpy alone.

A directory holds four files, each optionally gzip-compressed (``.gz``) and named either
``train-images-idx3-ubyte`` (the original and Debian's ``dataset-fashion-mnist`` naming) or
``train-images.idx3-ubyte`` (a common re-packaging)::

    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

``train`` becomes the train split and ``t10k`` the val split.

Class names, in order of precedence:

1. ``classes.txt`` in the directory, one name per line, for any data set (EMNIST letters, KMNIST, ...);
2. Fashion-MNIST's ten names when the labels are Fashion-MNIST's: the SHA-256 of the train or t10k
   label bytes equals the published data set's, or (for subsets and re-exports) the directory's path
   contains "fashion" and there are at most ten classes;
3. otherwise the label numbers, "0", "1", ...

The content check is the robust rule (it recognises the files wherever they are); the path rule is a
convenience for trimmed copies, and ``classes.txt`` overrides both.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfscissor.data.dataset import Dataset, Split, resize_images
from tfscissor.data.spec import IDX_MISSING, require_directory
from tfscissor.errors import DataError
from tfscissor.io import write_bytes

__all__ = ["read_idx", "write_idx", "read_idx_dir", "IdxData", "load_idx", "FASHION_MNIST_CLASSES"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# SHA-256 of the label bytes after the 8-byte header, of Fashion-MNIST's train and t10k label files.
_FASHION_LABEL_SHA256 = {
    "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
    "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
}

# IDX type codes -> big-endian numpy dtypes.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}

_ROLES = {
    "train_images": ("train", "images", 3),
    "train_labels": ("train", "labels", 1),
    "val_images": ("t10k", "images", 3),
    "val_labels": ("t10k", "labels", 1),
}


def _read_bytes(path):
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror or exc}") from None
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"IDX file {path} is not a complete gzip file ({exc}): download or copy it again") from None
    return data


def read_idx(path):
    """Read one IDX file (``.gz`` decompressed) into a native-endian numpy array, checking its header."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(data)} bytes, shorter than the 4-byte header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES or data[3] == 0:
        raise DataError(
            f"{path} is not an IDX file: its magic number is 0x{data[:4].hex()}, expected 0x0000TTNN "
            f"(type TT in {', '.join(f'{k:02x}' for k in _DTYPES)}, NN dimensions)"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file {path} is truncated inside its header ({len(data)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"IDX file {path} is {state}: header {shape} needs {expected} bytes, found {len(data)}: "
            f"download or copy it again"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``). Used by tests and exports."""

    array = np.asarray(array)
    code = _CODES.get(array.dtype)
    if code is None:
        raise DataError(f"cannot write {array.dtype} as IDX: use uint8, int8, int16, int32, float32 or float64")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(_DTYPES[code]).tobytes()
    path = Path(path)
    write_bytes(path, gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)


def _find(directory, split, what, dims):
    names = [f"{split}-{what}-idx{dims}-ubyte", f"{split}-{what}.idx{dims}-ubyte"]
    candidates = [name + suffix for name in names for suffix in ("", ".gz")]
    for name in candidates:
        if (directory / name).is_file():
            return directory / name
    raise DataError(
        f"IDX directory {directory} has no {split} {what} file: looked for {', '.join(candidates)}; "
        f"point idx:PATH at a directory with the four MNIST-format files"
    )


@dataclass(frozen=True, eq=False)
class IdxData:
    train_images: np.ndarray  # uint8 (N, H, W)
    train_labels: np.ndarray  # int32 (N,)
    val_images: np.ndarray
    val_labels: np.ndarray
    class_names: tuple[str, ...]


def _class_names(directory, raw_labels, num_classes):
    names_file = directory / "classes.txt"
    if names_file.is_file():
        names = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(names) < num_classes:
            raise DataError(
                f"{names_file} names {len(names)} classes but the labels go up to {num_classes - 1}: "
                f"give one name per line for every label"
            )
        return tuple(names)
    fashion_content = any(hashlib.sha256(raw).hexdigest() in _FASHION_LABEL_SHA256 for raw in raw_labels)
    fashion_path = "fashion" in str(directory.resolve()).lower() and num_classes <= len(FASHION_MNIST_CLASSES)
    if fashion_content or fashion_path:
        return FASHION_MNIST_CLASSES
    return tuple(str(i) for i in range(num_classes))


def read_idx_dir(path):
    """Read the four files of an IDX directory, check they fit together, and name the classes."""
    directory = require_directory(path, IDX_MISSING)
    arrays = {}
    for role, (split, what, dims) in _ROLES.items():
        file = _find(directory, split, what, dims)
        array = read_idx(file)
        if array.ndim != dims or array.dtype != np.uint8:
            raise DataError(
                f"IDX file {file} holds {array.dtype} of shape {array.shape}: expected uint8 with {dims} dimension(s)"
            )
        arrays[role] = (file, array)
    for split in ("train", "val"):
        (image_file, images), (label_file, labels) = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels")
    if arrays["train_images"][1].shape[1:] != arrays["val_images"][1].shape[1:]:
        raise DataError(
            f"train and t10k images in {directory} differ in size: "
            f"{arrays['train_images'][1].shape[1:]} vs {arrays['val_images'][1].shape[1:]}"
        )
    raw_labels = [arrays[r][1].tobytes() for r in ("train_labels", "val_labels")]
    num_classes = int(max((a[1].max() for r, a in arrays.items() if r.endswith("labels") and a[1].size), default=0)) + 1
    return IdxData(
        arrays["train_images"][1],
        arrays["train_labels"][1].astype(np.int32),
        arrays["val_images"][1],
        arrays["val_labels"][1].astype(np.int32),
        _class_names(directory, raw_labels, num_classes),
    )


def load_idx(spec, image_size=None):
    """Loader for ``idx:PATH`` specs (see :func:`tfscissor.data.load_data`)."""
    data = read_idx_dir(spec.arg)
    limit = spec.options.get("limit")
    splits = []
    for images, labels in ((data.train_images, data.train_labels), (data.val_images, data.val_labels)):
        images, labels = images[:limit, ..., None], labels[:limit]
        if image_size is not None:
            images = resize_images(images, image_size)
        splits.append(Split(images, labels))
    return Dataset(str(spec), data.class_names, *splits)

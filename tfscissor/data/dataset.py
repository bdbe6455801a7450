"""The in-memory data set every source produces: uint8 images, int32 labels, optional normalised boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfscissor.errors import DataError, UsageError

__all__ = ["Split", "Dataset", "normalize_image_size", "resize_images", "stratified_split"]


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a data set.

    ``images``: uint8 (N, H, W, C) with pixels 0..255 (models carry their own Rescaling).
    ``labels``: int32 (N,).
    ``boxes``: float32 (N, 4) as [xmin, ymin, xmax, ymax] normalised to [0, 1], or None. A box covers the
    pixel columns ``[xmin * W, xmax * W)`` and rows ``[ymin * H, ymax * H)``, so it survives resizing.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray | None = None

    def __post_init__(self):
        images = np.asarray(self.images)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DataError(f"split images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        labels = np.asarray(self.labels)
        if labels.shape != (len(images),) or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
            raise DataError(
                f"split labels must be integers of shape ({len(images)},), got {labels.dtype} {labels.shape}"
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int32, copy=False))
        if self.boxes is not None:
            boxes = np.asarray(self.boxes, dtype=np.float32)
            if boxes.shape != (len(images), 4):
                raise DataError(f"split boxes must have shape ({len(images)}, 4), got {boxes.shape}")
            object.__setattr__(self, "boxes", boxes)

    def __len__(self):
        return len(self.images)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and validation splits with the class names and the canonical spec string they came from."""

    spec: str
    class_names: tuple[str, ...]
    train: Split
    val: Split

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(str(name) for name in self.class_names))
        if self.train.images.shape[1:] != self.val.images.shape[1:]:
            raise DataError(
                f"train and val images differ in shape: {self.train.images.shape[1:]} vs {self.val.images.shape[1:]}"
            )
        for name, split in (("train", self.train), ("val", self.val)):
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= len(self.class_names)):
                raise DataError(
                    f"{name} labels of {self.spec} fall outside 0..{len(self.class_names) - 1} "
                    f"(the {len(self.class_names)} class names)"
                )

    @property
    def image_shape(self):
        """(H, W, C) of every image."""
        return tuple(int(d) for d in self.train.images.shape[1:])

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def has_boxes(self):
        return self.train.boxes is not None


def normalize_image_size(image_size):
    """Validate ``image_size`` (None, an int, or (height, width)) and return None or (height, width).

    ``(None, None)``, what a Keras model with a flexible input reports, means keep the source's size.
    """
    if image_size is None or (isinstance(image_size, (tuple, list)) and list(image_size) == [None, None]):
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in image_size)
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise UsageError(f"image_size must be None, an int or (height, width), got {image_size!r}: e.g. image_size=32")
    if min(size) < 1:
        raise UsageError(f"image_size must be positive, got {image_size!r}: e.g. image_size=32")
    return size


def resize_images(images, size):
    """Resize uint8 (N, H, W, C) images to ``size`` = (height, width) with an antialiasing bilinear filter."""
    from PIL import Image

    height, width = size
    if images.shape[1:3] == (height, width):
        return images
    out = np.empty((len(images), height, width, images.shape[3]), dtype=np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
        resized = np.asarray(pil.resize((width, height), Image.BILINEAR))
        out[i] = resized.reshape(height, width, -1)
    return out


def stratified_split(labels, val_fraction, seed):
    """Return (train_indices, val_indices): per class, a seeded ``val_fraction`` goes to val.

    A class with at least two items keeps at least one on each side, so no class vanishes from either.
    """
    rng = np.random.default_rng(seed)
    train, val = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = min(max(round(len(members) * val_fraction), 1), len(members) - 1) if len(members) >= 2 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))

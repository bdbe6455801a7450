"""``load_data``: one entry point from a spec string to a :class:`Dataset`."""

from __future__ import annotations

import importlib

from tfscissor.data.dataset import normalize_image_size
from tfscissor.data.spec import parse_spec

__all__ = ["load_data", "LOADERS"]

# kind -> "module:function"; imported on use so that `import tfscissor.data` stays light.
LOADERS = {
    "cluttered": "tfscissor.data.cluttered:load_cluttered",
    "folder": "tfscissor.data.folder:load_folder",
    "idx": "tfscissor.data.idx:load_idx",
    "tfds": "tfscissor.data.tfds_source:load_tfds",
}


def load_data(spec, image_size=None):
    """Load the data set named by ``spec`` (a spec string or :class:`DataSpec`).

    ``image_size``: None to keep the source's size, an int for square images, or (height, width).
    Boxes are normalised, so resizing leaves them valid. Raises :class:`UsageError` for a malformed
    spec and :class:`DataError` for data that cannot be read.
    """
    spec = parse_spec(spec)
    size = normalize_image_size(image_size)
    module, _, function = LOADERS[spec.kind].partition(":")
    return getattr(importlib.import_module(module), function)(spec, size)

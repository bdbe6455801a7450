"""Image folders: ``PATH/<class>/*.png|jpg|jpeg|bmp``, optionally split and boxed.

* Splits: if ``PATH/train/`` and ``PATH/val/`` both exist, their ``<class>/`` subfolders are the
  splits (a class may be missing from val); otherwise the class folders sit directly under PATH and a
  seeded, per-class split sends ``val`` (default 0.2) of each class to val (option ``seed``, default 0).
  Because of this, a data set cannot have classes named ``train`` and ``val`` side by side.
* Class names are the sorted subfolder names; hidden entries (starting with ".") are ignored, as are
  files with other extensions. Images are read from the class folder itself, not from deeper folders.
* Images are resized to ``image_size`` if given, else to the first image's size (first class, first
  file in sorted order; train first). They stay single-channel only if every image is grayscale.
* ``PATH/boxes.csv`` (optional) gives one box per image: header ``path,xmin,ymin,xmax,ymax``, ``path``
  relative to PATH with "/" separators, coordinates normalised to [0, 1]. It must cover every image
  exactly once.
"""

from __future__ import annotations

import csv
import math

import numpy as np

from tfscissor.data.dataset import Dataset, Split, stratified_split
from tfscissor.data.spec import FOLDER_MISSING, require_directory
from tfscissor.errors import DataError

__all__ = ["load_folder", "IMAGE_EXTENSIONS", "BOXES_HEADER"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
BOXES_HEADER = ("path", "xmin", "ymin", "xmax", "ymax")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"}


def _visible_dirs(directory):
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(directory):
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _scan(root):
    """Return (class_names, {split: [(path, class_index), ...]}, has_splits)."""
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() != val_dir.is_dir():
        present, missing = ("train", "val") if train_dir.is_dir() else ("val", "train")
        raise DataError(
            f"folder {root} has {present}/ but no {missing}/: add {root / missing}/<class>/ images, "
            f"or move the class folders up to {root}/<class>/ for a seeded split"
        )
    split_dirs = {"train": train_dir, "val": val_dir} if train_dir.is_dir() else {"all": root}
    names = sorted({d.name for base in split_dirs.values() for d in _visible_dirs(base)})
    if not names:
        where = " and ".join(f"{d}/<class>/" for d in split_dirs.values())
        raise DataError(f"folder {root} has no images: expected {where} with {', '.join(IMAGE_EXTENSIONS)} files")
    files = {}
    counts = dict.fromkeys(names, 0)
    for split, base in split_dirs.items():
        files[split] = []
        for index, name in enumerate(names):
            if (base / name).is_dir():
                found = _images_in(base / name)
                counts[name] += len(found)
                files[split].extend((path, index) for path in found)
    if not any(files.values()):
        raise DataError(
            f"folder {root} has no images: expected {', '.join(IMAGE_EXTENSIONS)} files in its class folders"
        )
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise DataError(
            f"class folder(s) {', '.join(empty)} in {root} have no images ({', '.join(IMAGE_EXTENSIONS)}): "
            f"add images or remove the folder(s)"
        )
    return tuple(names), files, "all" not in files


def _read_boxes(root, image_paths):
    """Validate ``root/boxes.csv`` against the images found and return {relative path: box}."""
    csv_path = root / "boxes.csv"
    known = {p.relative_to(root).as_posix() for p in image_paths}
    boxes, first_line = {}, {}
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {csv_path}: {exc}") from None
    if not text.strip():
        raise DataError(f"{csv_path} line 1: the file is empty, expected the header {','.join(BOXES_HEADER)}")
    rows = csv.reader(text.splitlines())
    for line, row in enumerate(rows, start=1):
        if line == 1:
            if tuple(cell.strip() for cell in row) != BOXES_HEADER:
                raise DataError(
                    f"{csv_path} line 1: header is {','.join(row)!r}, expected exactly {','.join(BOXES_HEADER)!r}"
                )
            continue
        if not any(cell.strip() for cell in row):
            continue  # blank lines, e.g. a trailing newline
        if len(row) != len(BOXES_HEADER):
            raise DataError(f"{csv_path} line {line}: {len(row)} fields, expected 5 ({','.join(BOXES_HEADER)})")
        rel = row[0].strip()
        try:
            values = [float(cell) for cell in row[1:]]
        except ValueError:
            raise DataError(
                f"{csv_path} line {line}: coordinates {','.join(row[1:])!r} are not all numbers: "
                f"write xmin,ymin,xmax,ymax as numbers in [0, 1]"
            ) from None
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            raise DataError(
                f"{csv_path} line {line}: coordinates {','.join(row[1:])} are outside [0, 1]: "
                f"normalise by the image width (x) and height (y)"
            )
        xmin, ymin, xmax, ymax = values
        if xmin >= xmax or ymin >= ymax:
            raise DataError(
                f"{csv_path} line {line}: empty or inverted box (xmin={xmin}, xmax={xmax}, ymin={ymin}, ymax={ymax}): "
                f"need xmin < xmax and ymin < ymax"
            )
        if rel not in known:
            raise DataError(
                f"{csv_path} line {line}: {rel!r} is not an image of the folder: give the path relative to {root}, "
                f"e.g. {next(iter(sorted(known)))}"
            )
        if rel in boxes:
            raise DataError(
                f"{csv_path} line {line}: {rel!r} already has a box on line {first_line[rel]}: keep one row per image"
            )
        boxes[rel] = values
        first_line[rel] = line
    missing = sorted(known - boxes.keys())
    if missing:
        raise DataError(
            f"{csv_path}: {len(missing)} image(s) have no row, e.g. {missing[0]!r}: add a row for every image "
            f"or remove boxes.csv"
        )
    return boxes


def _decode(path):
    """Open one image as (uint8 array (H, W) or (H, W, 3), is_grey)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in _GREY_MODES:
                if image.mode.startswith("I"):
                    # 16-bit grey: scale the full range down; Pillow's convert("L") would clip at 255.
                    array = np.asarray(image).astype(np.float64)
                    if array.max() > 255:
                        array = array / 257.0
                    return np.rint(np.clip(array, 0, 255)).astype(np.uint8), True
                return np.asarray(image.convert("L")), True
            return np.asarray(image.convert("RGB")), False
    except Image.DecompressionBombError:
        raise DataError(
            f"cannot decode image {path}: it has more pixels than Pillow decodes safely "
            f"({2 * Image.MAX_IMAGE_PIXELS:,}); downscale it or remove it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}; remove or replace the file") from None


def load_folder(spec, image_size=None):
    """Loader for ``folder:PATH`` specs (see :func:`tfscissor.data.load_data`)."""
    from PIL import Image

    root = require_directory(spec.arg, FOLDER_MISSING)
    class_names, files, has_splits = _scan(root)
    ordered = [entry for split in files.values() for entry in split]
    # boxes.csv is checked before any image is decoded, so a mistake in it is reported at once.
    table = _read_boxes(root, [path for path, _ in ordered]) if (root / "boxes.csv").is_file() else None
    decoded = [_decode(path) for path, _ in ordered]
    all_grey = all(grey for _, grey in decoded)
    height, width = image_size if image_size is not None else decoded[0][0].shape[:2]
    channels = 1 if all_grey else 3
    images = np.empty((len(decoded), height, width, channels), dtype=np.uint8)
    for i, (array, grey) in enumerate(decoded):
        pil = Image.fromarray(array)
        if not all_grey and grey:
            pil = pil.convert("RGB")
        if pil.size != (width, height):
            pil = pil.resize((width, height), Image.BILINEAR)
        images[i] = np.asarray(pil).reshape(height, width, channels)
    labels = np.array([label for _, label in ordered], dtype=np.int32)
    boxes = None
    if table is not None:
        boxes = np.array([table[path.relative_to(root).as_posix()] for path, _ in ordered], dtype=np.float32)
    if has_splits:
        n_train = len(files["train"])
        train_idx, val_idx = np.arange(n_train), np.arange(n_train, len(ordered))
    else:
        train_idx, val_idx = stratified_split(labels, spec.options.get("val", 0.2), spec.options.get("seed", 0))

    def take(indices):
        return Split(images[indices], labels[indices], None if boxes is None else boxes[indices])

    return Dataset(str(spec), class_names, take(train_idx), take(val_idx))

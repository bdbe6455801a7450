"""The crop policy: from a predicted box to the classifier's input, the same steps in training, evaluation
and firmware.

For each image of height H and width W (pixels) and its normalised box:

1. **scale**: the box to pixels, each side multiplied by ``margin`` about its centre (context around the
   object; 1.0 keeps the box as predicted);
2. **square**: the side is the box's longer side;
3. **regulate**: the side grows to the smallest of ``scales`` x min(H, W) that covers it (so small objects
   are zoomed in by a few discrete factors and the resize filters are few), or to the image side if none
   does; with ``scales=None`` it is only capped at the image side;
4. **clamp**: the side is rounded up to whole pixels, the square is centred on the box (its corner rounded
   half up) and shifted back inside the image;
5. **crop and resize** to the classifier's resolution with a separable triangle filter whose support grows
   with the zoom-out factor (bilinear when enlarging, area-like when shrinking, as Pillow's BILINEAR), on
   half-pixel centres, rounded half up back to uint8 pixels.

A box that is not finite or has no area (a degenerate prediction) gets the whole image instead, resized to
the classifier's resolution, and is counted as a fallback.

The firmware runs the same policy in plain C (``firmware/tflm/two_stage/crop_policy.c``) and must give the
same pixels, so nothing here depends on the order of float sums: the windows are a few float64 operations
that C's double repeats one for one, and the filter's weights are integers (:func:`filter_taps`), so each
output pixel is an exact fraction of integer sums, rounded once.

The host runs that C too: setup.py builds it into ``tfscissor.deploy._crop_policy_c`` where a C compiler is
found, and :meth:`CropPolicy.crop` and :func:`crop_and_resize` use it for uint8 images: about ten times
faster than numpy on one small image, where numpy's per-call overhead dominates, two to three times on a batch
(bench/host_crop.py). numpy is the reference and the fallback, equal bit for bit; ``backend="numpy"`` forces it
and :func:`crop_backend` says which one runs by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfscissor.deploy.boxes import FULL_IMAGE, valid_boxes
from tfscissor.errors import UsageError

try:
    from tfscissor.deploy import _crop_policy_c as _c
except ImportError:  # built at install only where a C compiler was found: numpy gives the same bytes
    _c = None

__all__ = [
    "BACKENDS",
    "CropPolicy",
    "CropResult",
    "DEFAULT_SCALES",
    "crop_and_resize",
    "crop_backend",
    "filter_taps",
    "resize_weights",
]

BACKENDS = ("c", "numpy")

DEFAULT_SCALES = (0.25, 0.5, 0.75, 1.0)
_CHUNK = 256  # images resized at once: bounds the float64 copies to a few tens of MB
_EXACT = 2**53  # float64 holds every integer below this exactly, whatever the order of a sum


@dataclass(frozen=True, eq=False)
class CropResult:
    """``images``: uint8 (N, R, R, C) crops. ``windows``: int (N, 4) pixel windows ``[x0, y0, x1, y1)``.
    ``fallbacks``: bool (N,), True where the box was degenerate and the whole image was used."""

    images: np.ndarray
    windows: np.ndarray
    fallbacks: np.ndarray

    @property
    def fallback_count(self):
        return int(self.fallbacks.sum())


@dataclass(frozen=True)
class CropPolicy:
    """How a box becomes a crop (see the module docstring). ``scales``: the regulated crop sides as
    fractions of the image's short side, or None to crop the squared box as it is."""

    scales: tuple[float, ...] | None = DEFAULT_SCALES
    margin: float = 1.0

    def __post_init__(self):
        if self.scales is not None:
            scales = tuple(sorted({float(s) for s in self.scales}))
            if not scales or not all(0.0 < s <= 1.0 for s in scales):
                raise UsageError(
                    f"crop scales must be fractions in (0, 1], got {self.scales!r}: e.g. 0.25,0.5,0.75,1.0"
                )
            object.__setattr__(self, "scales", scales)
        if not (np.isfinite(self.margin) and self.margin > 0):
            raise UsageError(f"crop margin must be a positive number, got {self.margin!r}: e.g. 1.0 or 1.2")

    def to_dict(self):
        return {"scales": None if self.scales is None else list(self.scales), "margin": self.margin}

    def windows(self, boxes, height, width):
        """Pixel windows ``[x0, y0, x1, y1)`` (int64 (N, 4)) and the fallback mask for normalised ``boxes``."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        fallbacks = ~valid_boxes(boxes)
        safe = np.where(fallbacks[:, None], FULL_IMAGE, boxes)
        centre_x = (safe[:, 0] + safe[:, 2]) / 2 * width
        centre_y = (safe[:, 1] + safe[:, 3]) / 2 * height
        side = np.maximum((safe[:, 2] - safe[:, 0]) * width, (safe[:, 3] - safe[:, 1]) * height) * self.margin
        short = min(height, width)
        if self.scales is None:
            side = np.minimum(side, short)
        else:
            sides = np.array(self.scales) * short
            # The smallest regulated side that covers the box; the short side where none does.
            fits = sides[None, :] >= side[:, None] - 1e-9
            side = np.where(fits.any(axis=1), np.where(fits, sides[None, :], np.inf).min(axis=1), short)
        # Whole pixels: the side rounds up, so the window still covers the box (the tolerance keeps float noise
        # such as 10 * 1.4 = 14.000000000000002 from adding a pixel); starts round half up, as C's
        # floor(x + 0.5) does.
        side = np.clip(np.ceil(side - 1e-6), 1, short).astype(np.int64)
        # Clamped while still float: a box far outside the image must not overflow the integer conversion.
        x0 = np.clip(np.floor(centre_x - side / 2 + 0.5), 0, width - side).astype(np.int64)
        y0 = np.clip(np.floor(centre_y - side / 2 + 0.5), 0, height - side).astype(np.int64)
        windows = np.stack([x0, y0, x0 + side, y0 + side], axis=1)
        windows[fallbacks] = [0, 0, width, height]
        return windows, fallbacks

    def crop(self, images, boxes, resolution, backend=None):
        """Crop uint8 ``images`` (N, H, W, C) to ``boxes`` and resize to ``resolution`` (an int: square).

        ``backend``: ``"c"``, ``"numpy"``, or None for C where it is built (see :func:`crop_backend`); the
        result is the same, and a batch C refuses (see :func:`crop_and_resize`) is cropped in numpy.
        """
        images = np.asarray(images)
        if images.ndim != 4:
            raise UsageError(f"images must be (N, H, W, C), got shape {images.shape}")
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) != len(images):
            raise UsageError(f"{len(images)} images but {len(boxes)} boxes: give one box per image")
        resolution = _checked(resolution)
        if _use_c(backend, images):
            out, windows = _outputs(images, resolution), np.empty((len(images), 4), np.int64)
            fallbacks = np.empty(len(images), bool)
            scales = self.scales or ()  # C's scale_count 0: the squared box only capped at the short side
            arguments = (np.ascontiguousarray(boxes), scales, self.margin, windows, fallbacks, out)
            if _c.crop(np.ascontiguousarray(images), images.shape, resolution, *arguments) == 0:
                return CropResult(out, windows, fallbacks)
        windows, fallbacks = self.windows(boxes, images.shape[1], images.shape[2])
        return CropResult(_resize_numpy(images, windows, resolution), windows, fallbacks)


def filter_taps(in_size, out_size):
    """The triangle filter that resamples one axis as integers: an int64 (out_size, in_size) matrix.

    Output pixel ``i`` is centred at source coordinate ``(i + 0.5) * in_size / out_size`` (pixel ``j`` covers
    ``[j, j + 1)``) and the triangle's half-width is the zoom-out factor, at least one pixel. In units of
    ``1 / (2 * out_size)`` source pixels every distance is an integer, so the weight of tap ``j`` is
    ``max(0, 2M - |(2j + 1) * out_size - (2i + 1) * in_size|)`` with ``M = max(in_size, out_size)``, to be
    divided by its row's sum.
    """
    reach = 2 * max(in_size, out_size)
    taps = (2 * np.arange(in_size, dtype=np.int64) + 1) * out_size
    centres = (2 * np.arange(out_size, dtype=np.int64) + 1) * in_size
    return np.maximum(reach - np.abs(taps[None, :] - centres[:, None]), 0)


def resize_weights(in_size, out_size):
    """:func:`filter_taps` normalised: float32 rows of triangle-filter weights summing to 1."""
    taps = filter_taps(in_size, out_size)
    return (taps / taps.sum(axis=1, keepdims=True)).astype(np.float32)


def crop_backend(backend=None):
    """The backend that crops: ``backend`` checked (``"c"`` needs the extension built), or by default ``"c"``
    (the firmware's ``crop_policy.c``, built at install where a C compiler was found), else ``"numpy"``."""
    if backend is None:
        return "numpy" if _c is None else "c"
    if backend not in BACKENDS:
        raise UsageError(f"unknown crop backend {backend!r}: use one of {', '.join(BACKENDS)}, or None")
    if backend == "c" and _c is None:
        raise UsageError(
            "the C crop (tfscissor.deploy._crop_policy_c) is not built: reinstall tfscissor where a C compiler "
            "is found (pip install -e .), or use the numpy backend"
        )
    return backend


def _use_c(backend, images):
    """Whether ``images`` are cropped in C: by default where it is built and the pixels are uint8."""
    if crop_backend(backend) == "numpy":
        return False
    if images.dtype == np.uint8:
        return True
    if backend is None:
        return False
    raise UsageError(f"the C crop takes uint8 images, got {images.dtype}: convert them or use backend='numpy'")


def _checked(resolution):
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise UsageError(f"crop resolution must be a positive integer, got {resolution!r}: e.g. 48")
    return int(resolution)


def _outputs(images, resolution):
    return np.empty((len(images), resolution, resolution, images.shape[3]), dtype=np.uint8)


def crop_and_resize(images, windows, resolution, backend=None):
    """uint8 crops of ``images`` at pixel ``windows`` ``[x0, y0, x1, y1)``, resized to ``resolution`` square.

    Each output pixel is ``sum(taps_y * taps_x * pixels) / (sum(taps_y) * sum(taps_x))`` rounded half up. In C
    (``backend`` as in :meth:`CropPolicy.crop`) the sums are 32- and 64-bit integers; a batch with a window C
    refuses (outside the image, or sums beyond those widths) is cropped in numpy, which refuses sums at or
    beyond 2**53 (float64 BLAS is exact below, in any order) and divides in int64.
    """
    resolution = _checked(resolution)
    images, windows = np.asarray(images), np.asarray(windows, np.int64)
    if _use_c(backend, images):
        out = _outputs(images, resolution)
        if _c.resize(np.ascontiguousarray(images), images.shape, resolution, np.ascontiguousarray(windows), out) == 0:
            return out
    return _resize_numpy(images, windows, resolution)


def _resize_numpy(images, windows, resolution):
    """:func:`crop_and_resize` in numpy, for int64 ``windows`` and a checked ``resolution``: the reference."""
    out = _outputs(images, resolution)
    sizes = np.stack([windows[:, 3] - windows[:, 1], windows[:, 2] - windows[:, 0]], axis=1)
    # Windows of one size share their filter tables, so they are resized together.
    for height, width in np.unique(sizes, axis=0):
        taps_y, taps_x = filter_taps(int(height), resolution), filter_taps(int(width), resolution)
        sums_y, sums_x = taps_y.sum(axis=1), taps_x.sum(axis=1)
        if 255 * int(sums_y.max()) * int(sums_x.max()) >= _EXACT:
            raise UsageError(
                f"a {width}x{height} crop resized to {resolution} px is beyond exact arithmetic: "
                "use a higher resolution or smaller images"
            )
        denominators = (sums_y[:, None] * sums_x[None, :])[None, :, :, None]
        members = np.flatnonzero((sizes[:, 0] == height) & (sizes[:, 1] == width))
        for start in range(0, len(members), _CHUNK):
            chunk = members[start : start + _CHUNK]
            crops = np.stack(
                [images[i, windows[i, 1] : windows[i, 3], windows[i, 0] : windows[i, 2]] for i in chunk]
            ).astype(np.float64)
            k, _, w, c = crops.shape
            # Rows, then columns, as two batched matrix products (BLAS; einsum was ten times slower).
            sums = np.matmul(taps_y.astype(np.float64), crops.reshape(k, int(height), w * c))
            sums = sums.reshape(k, resolution, w, c).transpose(0, 1, 3, 2) @ taps_x.T.astype(np.float64)
            numerators = sums.transpose(0, 1, 3, 2).astype(np.int64)
            out[chunk] = (2 * numerators + denominators) // (2 * denominators)
    return out

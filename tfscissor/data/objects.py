"""Object sources for the cluttered data set, and the sprite renderer they share.

A source draws a *stamp* of one instance of a class: a uint8 (h, w, 3) image whose channels are not
colours but layers, so that one geometric transform moves all of them together and the colours can be
chosen later against the actual background:

* R: coverage of the whole object (its body plus an outline ring), the alpha used for compositing;
* G: coverage of the body alone (G <= R; R - G is the outline);
* B: shading of the body (255 = full colour), a gradient for glyphs, the item's own grey levels for
  Fashion-MNIST-like items.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from tfscissor.data.idx import read_idx_dir
from tfscissor.errors import DataError, UsageError

__all__ = ["GLYPHS", "GlyphSource", "DigitsSource", "IdxItemSource", "make_source", "render_sprite"]

# Glyphs of the font Pillow embeds (Aileron Regular) that read as distinct shapes under the allowed
# rotation and shear. Left out: O, I, S, B, Z, X (too close to 0, 1, 5, 8, 2, +), lower case (too
# close to upper case once scaled), and anything the font lacks (it draws an empty box for those).
GLYPHS = "0123456789ACEFHKLMNPRTUVWY#&@%?+$"
_SYMBOL_NAMES = {"#": "hash", "&": "ampersand", "@": "at", "%": "percent", "?": "question", "+": "plus", "$": "dollar"}


@functools.lru_cache(maxsize=256)
def _font(size):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _soft_threshold(values, threshold, width):
    """0 below ``threshold - width / 2``, 1 above ``threshold + width / 2``, linear between."""
    return np.clip((values - threshold) / width + 0.5, 0.0, 1.0)


def _gradient(rng, height, width, strength):
    """A linear shading ramp in a random direction: 1 on one side, 1 - strength on the other."""
    angle = rng.uniform(0, 2 * math.pi)
    xs = np.arange(width, dtype=np.float32) * np.float32(math.cos(angle))
    ys = np.arange(height, dtype=np.float32)[:, None] * np.float32(math.sin(angle))
    proj = xs + ys
    low = float(proj.min())
    span = max(float(proj.max()) - low, 1.0)
    return 1.0 - np.float32(strength / span) * (proj - np.float32(low))


def _pack(coverage, body, shade):
    return np.rint(np.stack([coverage, body, shade], axis=-1) * 255).astype(np.uint8)


class GlyphSource:
    """Digits, letters and symbols drawn with the FreeType font that Pillow ships.

    Each instance varies in weight (a stroke in the body colour), outline thickness and shading; the
    renderer adds rotation, shear and aspect changes. Glyphs are never mirrored.
    """

    kind = "glyphs"
    flippable = False
    max_rotation = 25.0

    def __init__(self, classes):
        if classes > len(GLYPHS):
            raise UsageError(
                f"classes={classes} is more than source=glyphs offers ({len(GLYPHS)}): lower classes, "
                f"e.g. cluttered:classes=10"
            )
        self.glyphs = GLYPHS[:classes]
        self.class_names = tuple(_SYMBOL_NAMES.get(ch, ch) for ch in self.glyphs)

    def stamp(self, cls, split, rng, px):
        from PIL import Image, ImageDraw

        # Capitals and digits are about 0.7 of the font size tall.
        font_size = max(8, round(px / 0.7))
        font = _font(font_size)
        weight = int(round(rng.uniform(0.0, 0.06) * font_size))
        outline = max(1, int(round(rng.uniform(0.035, 0.09) * font_size)))
        glyph = self.glyphs[cls]
        left, top, right, bottom = font.getbbox(glyph, stroke_width=weight + outline)
        image = Image.new("RGB", (right - left + 2, bottom - top + 2))
        draw = ImageDraw.Draw(image)
        origin = (1 - left, 1 - top)
        # Two passes: the wider stroke sets R (body + outline), the narrower one G (body only).
        draw.text(origin, glyph, font=font, fill=(255, 0, 0), stroke_width=weight + outline, stroke_fill=(255, 0, 0))
        draw.text(origin, glyph, font=font, fill=(255, 255, 0), stroke_width=weight, stroke_fill=(255, 255, 0))
        layers = np.asarray(image).astype(np.float32) / 255
        shade = _gradient(rng, *layers.shape[:2], strength=rng.uniform(0.0, 0.4))
        return _pack(layers[..., 0], layers[..., 1], shade)


class _PoolSource:
    """A source whose instances are grey images, kept apart per split so val never reuses train items."""

    flippable = True
    max_rotation = 15.0

    def __init__(self, pools, class_names, classes, what):
        available = len(class_names)
        if classes > available:
            raise UsageError(
                f"classes={classes} is more than {what} offers ({available}): lower classes, e.g. classes={available}"
            )
        self.class_names = tuple(class_names[:classes])
        self.pools = pools  # split -> list (per class) of uint8 (m, h, w) arrays
        for split, per_class in pools.items():
            for cls in range(classes):
                if len(per_class[cls]) == 0:
                    raise DataError(f"{what} has no {split} items of class {class_names[cls]!r}: lower classes")

    def _item(self, cls, split, rng):
        items = self.pools[split][cls]
        return items[rng.integers(len(items))]

    @staticmethod
    def _upsample(grey, px, resample):
        """Resize a float grey image so its long side is ``px``."""
        from PIL import Image

        height, width = grey.shape
        scale = px / max(height, width)
        size = (max(2, round(width * scale)), max(2, round(height * scale)))
        return np.asarray(Image.fromarray(grey.astype(np.float32)).resize(size, resample))


class DigitsSource(_PoolSource):
    """scikit-learn's 8x8 handwritten digits, upscaled smoothly and thresholded into clean strokes."""

    kind = "digits"
    flippable = False
    max_rotation = 20.0

    def __init__(self, classes):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
        labels = digits.target
        # A fixed permutation, not the data seed: the train/val items stay disjoint whatever the seed.
        order = np.random.default_rng(8).permutation(len(labels))
        cut = len(order) // 5
        pools = {
            "val": [images[order[:cut]][labels[order[:cut]] == c] for c in range(10)],
            "train": [images[order[cut:]][labels[order[cut:]] == c] for c in range(10)],
        }
        super().__init__(pools, tuple(str(c) for c in range(10)), classes, "source=digits")

    def stamp(self, cls, split, rng, px):
        from PIL import Image

        # Pad so the smooth upscaling can fade to zero before the edge.
        grey = np.pad(self._item(cls, split, rng).astype(np.float32) / 255, 1)
        smooth = self._upsample(grey, px, Image.BICUBIC)
        body_level = rng.uniform(0.3, 0.55)
        outline = rng.uniform(0.12, 0.22)
        body = _soft_threshold(smooth, body_level, 0.15)
        coverage = np.maximum(_soft_threshold(smooth, body_level - outline, 0.15), body)
        shade = _gradient(rng, *smooth.shape, strength=rng.uniform(0.0, 0.4))
        return _pack(coverage, body, shade)


class IdxItemSource(_PoolSource):
    """Items from an MNIST-format IDX directory (e.g. Fashion-MNIST), pasted by their silhouette.

    The silhouette is the item's non-black pixels with holes filled, so a dark garment is pasted whole
    and its black 28x28 square is not; the grey levels inside become the shading of the body colour.
    """

    kind = "idx"

    def __init__(self, path, classes):
        data = read_idx_dir(path)
        num = len(data.class_names)
        pools = {
            "train": [data.train_images[data.train_labels == c] for c in range(num)],
            "val": [data.val_images[data.val_labels == c] for c in range(num)],
        }
        super().__init__(pools, data.class_names, classes, f"source=idx:{path}")

    def stamp(self, cls, split, rng, px):
        from PIL import Image, ImageFilter
        from scipy.ndimage import binary_fill_holes

        item = np.pad(self._item(cls, split, rng), 1)
        silhouette = binary_fill_holes(item > 12).astype(np.float32)
        if not silhouette.any():  # a blank item: fall back to its faintest content
            silhouette = (item > 0).astype(np.float32)
        body = _soft_threshold(self._upsample(silhouette, px, Image.BILINEAR), 0.5, 0.35)
        radius = max(1, round(px * rng.uniform(0.02, 0.045)))
        grown = Image.fromarray(np.rint(body * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * radius + 1))
        coverage = np.asarray(grown).astype(np.float32) / 255
        grey = self._upsample(item.astype(np.float32), px, Image.BILINEAR)
        # Keep the item's own texture, but never let it fade the body into black.
        shade = 0.35 + 0.65 * np.clip(grey / max(float(item.max()), 1.0), 0, 1)
        return _pack(coverage, body, shade)


def make_source(source, classes):
    """The object source named by the ``source=`` option of a cluttered spec."""
    if source == "glyphs":
        return GlyphSource(classes)
    if source == "digits":
        return DigitsSource(classes)
    if source.startswith("idx:"):
        return IdxItemSource(source[4:], classes)
    raise UsageError(f"unknown object source {source!r}: use glyphs, digits or idx:PATH, e.g. cluttered:source=digits")


def render_sprite(source, cls, split, rng, side, shear=0.25, aspect=1.25, oversample=2.0):
    """Draw one instance of class ``cls`` and return its layers (see the module doc) with long side ``side``.

    The stamp is drawn at ``oversample`` times the final resolution, rotated, sheared, stretched (and mirrored where the
    source allows) in one affine resampling, cropped to its coverage and then downscaled with an
    antialiasing filter, which keeps thin strokes smooth.
    """
    from PIL import Image

    stamp = source.stamp(cls, split, rng, max(4, round(oversample * side)))
    height, width = stamp.shape[:2]
    theta = math.radians(rng.uniform(-source.max_rotation, source.max_rotation))
    stretch = math.sqrt(math.exp(rng.uniform(-math.log(aspect), math.log(aspect))))
    mirror = -1.0 if source.flippable and rng.random() < 0.5 else 1.0
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    skew = np.array([[1.0, rng.uniform(-shear, shear)], [0.0, 1.0]])
    forward = rotation @ skew @ np.diag([stretch * mirror, 1.0 / stretch])
    corners = np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2 @ forward.T
    out_w = int(math.ceil(np.ptp(corners[:, 0]))) + 2
    out_h = int(math.ceil(np.ptp(corners[:, 1]))) + 2
    # PIL maps each output pixel back into the input: input = inverse @ (output - out_centre) + in_centre.
    inverse = np.linalg.inv(forward)
    offset = np.array([width / 2, height / 2]) - inverse @ np.array([out_w / 2, out_h / 2])
    coeffs = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    warped = Image.fromarray(stamp).transform((out_w, out_h), Image.AFFINE, coeffs, resample=Image.BILINEAR)
    bbox = warped.getchannel(0).getbbox()
    if bbox is None:
        return None
    warped = warped.crop(bbox)
    scale = side / max(warped.size)
    size = (max(1, round(warped.size[0] * scale)), max(1, round(warped.size[1] * scale)))
    return np.asarray(warped.resize(size, Image.BILINEAR))

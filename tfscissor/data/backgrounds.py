"""Backgrounds for the cluttered data set: random crops of the photos and textures shipped in scikit-image.

Every source image is resized once per canvas size to a few zoom levels, so drawing a background is a
slice, a flip and a colour jitter: no resampling per image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["BackgroundBank", "background_bank", "BACKGROUND_SOURCES"]

# Textures (grey, statistically uniform) may also be flipped upside down; photos keep their orientation
# so that the sky stays above. "text" is a photo of printed characters: it is deliberately kept as a
# source of glyph-like clutter the classifier must learn to ignore.
_TEXTURES = ("grass", "gravel", "brick")
_PHOTOS = (
    "camera",
    "coffee",
    "astronaut",
    "rocket",
    "chelsea",
    "text",
    "coins",
    "moon",
    "page",
    "clock",
    "immunohistochemistry",
)
BACKGROUND_SOURCES = _TEXTURES + _PHOTOS

# Short side of each zoom level, as a multiple of the canvas side: 1.5 shows large parts of a photo,
# 6 shows much of it in miniature.
_ZOOMS = (1.5, 3.0, 6.0)


@dataclass(frozen=True)
class BackgroundStyle:
    """Photometric jitter ranges: (low, high) for uniform draws."""

    contrast: tuple[float, float]
    brightness: tuple[float, float]
    blend_probability: float


STYLES = {
    # Dimmed, low-contrast backgrounds: the object is usually the most salient thing in the image.
    "normal": BackgroundStyle(contrast=(0.35, 0.85), brightness=(0.45, 1.0), blend_probability=0.3),
    # Bright, contrasty backgrounds: finding the object is a real task for a cropper.
    "hard": BackgroundStyle(contrast=(0.8, 1.3), brightness=(0.85, 1.3), blend_probability=0.3),
}


def _load_source(name):
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


class BackgroundBank:
    """All zoom levels of all background sources for one canvas side."""

    def __init__(self, size):
        from PIL import Image

        self.size = size
        self.levels = []  # (uint8 array (h, w, 3), is_grey, is_texture)
        for name in BACKGROUND_SOURCES:
            image = _load_source(name)
            is_grey = bool(np.all(image[..., 0] == image[..., 1]) and np.all(image[..., 1] == image[..., 2]))
            pil = Image.fromarray(image)
            for zoom in _ZOOMS:
                short = max(size + 1, round(size * zoom))
                scale = short / min(pil.size)
                width, height = max(size + 1, round(pil.size[0] * scale)), max(size + 1, round(pil.size[1] * scale))
                level = np.asarray(pil.resize((width, height), Image.BILINEAR))
                level.setflags(write=False)
                self.levels.append((level, is_grey, name in _TEXTURES))

    def _crop(self, rng):
        level, is_grey, is_texture = self.levels[rng.integers(len(self.levels))]
        height, width = level.shape[:2]
        y = rng.integers(0, height - self.size + 1)
        x = rng.integers(0, width - self.size + 1)
        crop = level[y : y + self.size, x : x + self.size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if is_texture and rng.random() < 0.5:
            crop = crop[::-1]
        crop = crop.astype(np.float32)
        # Grey sources get a colour cast, colour photos a mild white-balance shift, so that colour alone
        # never tells background from object.
        spread = 0.3 if is_grey else 0.12
        crop *= (1.0 + rng.uniform(-spread, spread, size=3)).astype(np.float32)
        return crop

    def sample(self, rng, style="normal"):
        """A float32 (size, size, 3) background in 0..255."""
        params = STYLES[style]
        canvas = self._crop(rng)
        if rng.random() < params.blend_probability:
            weight = np.float32(rng.uniform(0.25, 0.5))
            canvas = canvas * (1 - weight) + self._crop(rng) * weight
        mean = np.float32(canvas.mean())
        contrast = np.float32(rng.uniform(*params.contrast))
        brightness = np.float32(rng.uniform(*params.brightness))
        canvas = (canvas - mean) * contrast + mean * brightness
        return np.clip(canvas, 0, 255, out=canvas)


@functools.lru_cache(maxsize=4)
def background_bank(size):
    """The shared, read-only :class:`BackgroundBank` for canvases of ``size`` x ``size``."""
    return BackgroundBank(size)

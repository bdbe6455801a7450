"""The embedded ``cluttered`` data set: one object per image among clutter, with its exact bounding box.

Each image is a random crop of a photo or texture shipped with scikit-image, a few distractors (pieces
of objects of other classes, partly transparent, and random strokes and shapes), and one object of the
labelled class pasted on top at a random position and scale. The object's colours are chosen against
the background under it (a body colour far from the background's brightness, and an outline of the
opposite brightness), so the task is always learnable; finding the object is still required because
the distractors share its look.

The box is the tight box of the object's visible pixels, those where its coverage (alpha) is at least
one half. The object is pasted last, so nothing hides it and these pixels are exactly the mask that
:func:`generate_cluttered` can return.

Options (``cluttered:key=value,...``), with defaults:

* ``size=64`` canvas side in pixels; ``n=2000`` images in train + val; ``val=0.2`` val fraction;
* ``classes=10``; ``source=glyphs`` (digits, letters and symbols drawn with Pillow's embedded FreeType
  font), ``digits`` (scikit-learn's 8x8 digits) or ``idx:PATH`` (items of an MNIST-format directory,
  e.g. Fashion-MNIST, pasted by silhouette);
* ``clutter=3`` distractors per image; ``min_scale=0.3``, ``max_scale=0.75`` object side / canvas side;
* ``difficulty=normal`` or ``hard`` (bright backgrounds, objects 0.2-0.5, five large bold fragments;
  the scale and clutter defaults follow it unless given);
* ``channels=3`` (or 1: luma); ``seed=0``.

Generation is seeded: the same options give bit-identical images with the same library versions. Val
images use their own seeded stream and their own object instances (other rendered glyph variants, or
held-out digits/IDX items), so val measures generalisation to unseen objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image

from tfscissor.data.backgrounds import background_bank
from tfscissor.data.dataset import Dataset, Split, resize_images
from tfscissor.data.objects import make_source, render_sprite
from tfscissor.data.spec import CLUTTERED_OPTIONS, DataSpec, parse_spec
from tfscissor.errors import UsageError

__all__ = ["ClutteredConfig", "ClutteredSplit", "generate_cluttered", "load_cluttered", "DIFFICULTIES"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# A pixel belongs to the object where its coverage is at least this (out of 255).
_VISIBLE = 128
_SPLITS = ("train", "val")
# Instances rendered per class and split (see _Composer._sprite_bank).
_MIN_VARIANTS, _MAX_VARIANTS = 8, 48


@dataclass(frozen=True)
class Difficulty:
    """What a difficulty level changes; the scale and clutter values are defaults an option may override."""

    clutter: int
    min_scale: float
    max_scale: float
    fragment_scale: tuple[float, float]  # fragment's whole sprite, relative to the object's side
    fragment_crop: tuple[float, float]  # part of that sprite kept, per axis
    fragment_opacity: tuple[float, float]
    fragment_contrast: bool  # fragments coloured as boldly as the object
    stroke_opacity: tuple[float, float]


DIFFICULTIES = {
    "normal": Difficulty(3, 0.3, 0.75, (0.5, 0.9), (0.35, 0.65), (0.35, 0.7), False, (0.35, 0.75)),
    # Smaller objects, bright backgrounds, and fragments as large and bold as objects: see PAPERS.md sec. 4.
    "hard": Difficulty(5, 0.2, 0.5, (0.8, 1.2), (0.4, 0.7), (0.75, 1.0), True, (0.7, 1.0)),
}


@dataclass(frozen=True)
class ClutteredConfig:
    """Every option of a cluttered spec, defaults filled in. See ``CLUTTERED_OPTIONS`` for the ranges."""

    size: int = 64
    n: int = 2000
    classes: int = 10
    clutter: int = 3
    seed: int = 0
    source: str = "glyphs"
    min_scale: float = 0.3
    max_scale: float = 0.75
    val: float = 0.2
    channels: int = 3
    difficulty: str = "normal"

    @classmethod
    def from_options(cls, options):
        """Resolve parsed spec options (a mapping) into a config, checking the options that constrain each other."""
        # Round-trip through the spec parser so that a mapping built in code is validated like a spec string.
        options = parse_spec(str(DataSpec("cluttered", None, options))).options
        difficulty = DIFFICULTIES[options.get("difficulty", "normal")]
        values = {name: option.default for name, option in CLUTTERED_OPTIONS.items()}
        values.update(clutter=difficulty.clutter, min_scale=difficulty.min_scale, max_scale=difficulty.max_scale)
        values.update(options)
        config = cls(**values)
        if config.min_scale > config.max_scale:
            raise UsageError(
                f"cluttered min_scale={config.min_scale} is larger than max_scale={config.max_scale}: "
                f"make min_scale <= max_scale, e.g. min_scale=0.3,max_scale=0.75"
            )
        n_val = config.val_count
        if n_val < 1 or config.n - n_val < config.classes:
            raise UsageError(
                f"cluttered n={config.n} with val={config.val} leaves {config.n - n_val} train and {n_val} val "
                f"images for {config.classes} classes: raise n or adjust val so both splits get images, e.g. n=2000"
            )
        return config

    @property
    def val_count(self):
        return round(self.n * self.val)

    def to_spec(self):
        """The canonical spec string with every option spelled out, so it reproduces the data exactly."""
        return str(DataSpec("cluttered", None, {f.name: getattr(self, f.name) for f in fields(self)}))


@dataclass(frozen=True, eq=False)
class ClutteredSplit:
    """A generated split; ``masks`` (bool (N, H, W), the object's visible pixels) only when asked for."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray | None = None


def _colour(rng, luma_low, luma_high, saturation=1.0):
    """A random RGB colour (float32 array, 0..255) whose luma lies in [luma_low, luma_high]."""
    # Plain floats: this runs several times per image and numpy's per-call overhead dominated it.
    red, green, blue = rng.random(3).tolist()
    grey = 0.299 * red + 0.587 * green + 0.114 * blue
    rgb = [grey + (c - grey) * saturation for c in (red, green, blue)]
    target = rng.uniform(luma_low, luma_high) / 255
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    if luma > target:
        rgb = [c * target / luma for c in rgb]
    else:  # mixing with white raises luma linearly and keeps the hue
        rgb = [c + (1 - c) * (target - luma) / (1 - luma) for c in rgb]
    return np.array(rgb, dtype=np.float32) * np.float32(255)


def _contrasting_colours(rng, background_luma):
    """(body, outline) colours: the body far from the background's luma, the outline opposite the body."""
    dark_body = rng.random() < 1 / (1 + math.exp(-(background_luma - 128) / 12))
    if dark_body:
        body = _colour(rng, 0, max(10.0, min(70.0, background_luma - 80)))
        outline = _colour(rng, 200, 255, saturation=0.3)
    else:
        body = _colour(rng, min(245.0, max(170.0, background_luma + 80)), 255)
        outline = _colour(rng, 0, 50, saturation=0.3)
    return body, outline


def _paste(canvas, layers, x, y, body, outline, opacity=1.0):
    """Alpha-composite sprite layers onto ``canvas`` in place, top-left corner at (x, y)."""
    height, width = layers.shape[:2]
    planes = layers.astype(np.float32) * np.float32(1 / 255)
    coverage = planes[..., 0:1] * np.float32(opacity)
    body_cover = planes[..., 1:2] * np.float32(opacity)
    shade = planes[..., 2:3]
    region = canvas[y : y + height, x : x + width]
    region *= 1 - coverage
    region += body_cover * shade * body + (coverage - body_cover) * outline


def _overlap(x, y, width, height, box):
    return max(0, min(x + width, box[2]) - max(x, box[0])) * max(0, min(y + height, box[3]) - max(y, box[1]))


def _stroke_sprite(rng, side):
    """Random lines, an ellipse, a polygon or an arc: clutter with no class, drawn at 2x then smoothed."""
    from PIL import ImageDraw

    big = 2 * side
    image = Image.new("L", (big, big))
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(2, max(3, big // 8) + 1))
    points = [tuple(p) for p in rng.integers(0, big, size=(int(rng.integers(2, 6)), 2)).tolist()]
    xs, ys = sorted(rng.integers(0, big, size=2).tolist()), sorted(rng.integers(0, big, size=2).tolist())
    box = (xs[0], ys[0], xs[1] + 2, ys[1] + 2)
    shape = rng.integers(4)
    if shape == 0:
        draw.line(points, fill=255, width=width, joint="curve")
    elif shape == 1:
        draw.ellipse(box, outline=255, width=width)
    elif shape == 2 and len(points) >= 3:
        draw.polygon(points, fill=255)
    else:
        start = int(rng.integers(0, 360))
        draw.arc(box, start, start + int(rng.integers(60, 300)), fill=255, width=width)
    bbox = image.getbbox()
    if bbox is None:
        return None
    image = image.crop(bbox)
    image = image.resize((max(1, image.size[0] // 2), max(1, image.size[1] // 2)), Image.BILINEAR)
    mask = np.asarray(image)
    return np.stack([mask, mask, np.full_like(mask, 255)], axis=-1)


class _Composer:
    """Draws the images of one split; holds what is shared by all of them."""

    def __init__(self, config, source, split, count):
        self.config = config
        self.split = split
        self.style = DIFFICULTIES[config.difficulty]
        self.bank = background_bank(config.size)
        self.log_scales = (math.log(config.min_scale), math.log(config.max_scale))
        self.sprites = self._sprite_bank(source, count)

    def _sprite_bank(self, source, count):
        """Per class, a few dozen instances rendered once at the largest size any image needs.

        Rendering (font, transform) costs about a millisecond; resizing a banked sprite costs a few
        microseconds, so this makes generation several times faster. Each split has its own bank, so
        val objects are instances train never saw. Scale, colour, shading direction, position and
        background still vary per image.
        """
        config = self.config
        rng = np.random.default_rng([config.seed, _SPLITS.index(self.split), 1])
        largest = config.max_scale * max(1.0, self.style.fragment_scale[1])
        side = max(8, min(config.size, math.ceil(config.size * largest)))
        variants = min(_MAX_VARIANTS, max(_MIN_VARIANTS, math.ceil(count / config.classes)))
        bank = []
        for cls in range(config.classes):
            sprites = []
            while len(sprites) < variants:
                layers = render_sprite(source, cls, self.split, rng, side, oversample=1.5)
                if layers is not None and np.count_nonzero(layers[..., 0] >= _VISIBLE) >= 4:
                    sprites.append(Image.fromarray(layers))
            bank.append(sprites)
        return bank

    def _sprite(self, rng, cls, side):
        """A banked instance of ``cls`` resized so its long side is ``side``, as a uint8 layer array."""
        variants = self.sprites[cls]
        sprite = variants[rng.integers(len(variants))]
        scale = side / max(sprite.size)
        size = (max(1, round(sprite.size[0] * scale)), max(1, round(sprite.size[1] * scale)))
        return np.asarray(sprite.resize(size, Image.BILINEAR))

    def _object(self, rng, label):
        size = self.config.size
        for _ in range(20):
            side = max(6, min(size, round(size * math.exp(rng.uniform(*self.log_scales)))))
            layers = self._sprite(rng, label, side)
            if np.count_nonzero(layers[..., 0] >= _VISIBLE) >= 4:
                return layers, side
        raise RuntimeError("cluttered: could not draw a visible object in 20 attempts")  # a bug, not user input

    def _fragment(self, rng, label, side):
        others = [c for c in range(self.config.classes) if c != label]
        for _ in range(3):
            scale = rng.uniform(*self.style.fragment_scale)
            frag_side = max(4, min(self.config.size, round(side * scale)))
            layers = self._sprite(rng, others[rng.integers(len(others))], frag_side)
            height, width = layers.shape[:2]
            crop_h = max(2, round(height * rng.uniform(*self.style.fragment_crop)))
            crop_w = max(2, round(width * rng.uniform(*self.style.fragment_crop)))
            y0 = int(rng.integers(0, height - crop_h + 1))
            x0 = int(rng.integers(0, width - crop_w + 1))
            piece = layers[y0 : y0 + crop_h, x0 : x0 + crop_w]
            if np.count_nonzero(piece[..., 0] >= _VISIBLE) >= 3:
                return piece
        return None

    def _distractors(self, rng, canvas, label, side, box):
        size = self.config.size
        box_area = (box[2] - box[0]) * (box[3] - box[1])
        for _ in range(self.config.clutter):
            if rng.random() < 0.6:
                layers = self._fragment(rng, label, side)
                opacity = rng.uniform(*self.style.fragment_opacity)
                bold = self.style.fragment_contrast
            else:
                layers = _stroke_sprite(rng, max(3, round(size * rng.uniform(0.15, 0.5))))
                opacity = rng.uniform(*self.style.stroke_opacity)
                bold = False
            if layers is None:
                continue
            layers = layers[:size, :size]
            height, width = layers.shape[:2]
            for _ in range(10):  # a distractor may touch the object's box but never cover much of it
                x = int(rng.integers(0, size - width + 1))
                y = int(rng.integers(0, size - height + 1))
                if _overlap(x, y, width, height, box) <= 0.15 * min(width * height, box_area):
                    break
            else:
                continue
            if bold:
                body, outline = _contrasting_colours(
                    rng, float(canvas[y : y + height, x : x + width].mean(axis=(0, 1)) @ _LUMA)
                )
            else:
                body, outline = _colour(rng, 20, 235), _colour(rng, 0, 255, saturation=0.3)
            _paste(canvas, layers, x, y, body, outline, opacity)

    def compose(self, rng, label):
        """One image: returns (uint8 image (S, S, 3), pixel box (x0, y0, x1, y1), visible mask of the sprite, x, y)."""
        size = self.config.size
        canvas = self.bank.sample(rng, self.config.difficulty)
        layers, side = self._object(rng, label)
        height, width = layers.shape[:2]
        x = int(rng.integers(0, size - width + 1))
        y = int(rng.integers(0, size - height + 1))
        visible = layers[..., 0] >= _VISIBLE
        rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        box = (x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1)
        self._distractors(rng, canvas, label, side, box)
        under = canvas[box[1] : box[3], box[0] : box[2]]
        body, outline = _contrasting_colours(rng, float(under.mean(axis=(0, 1)) @ _LUMA))
        _paste(canvas, layers, x, y, body, outline)
        # Mild sensor noise, so that flat regions are not perfectly flat.
        canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(rng.uniform(0.0, 3.0))
        image = np.rint(np.clip(canvas, 0, 255)).astype(np.uint8)
        return image, box, visible, x, y


def _generate_split(config, source, split, return_masks):
    size, count = config.size, (config.n - config.val_count if split == "train" else config.val_count)
    rng = np.random.default_rng([config.seed, _SPLITS.index(split)])
    # Balanced classes: every class appears count // classes or one more times.
    labels = rng.permutation(np.arange(count) % config.classes).astype(np.int32)
    composer = _Composer(config, source, split, count)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    boxes = np.empty((count, 4), dtype=np.float32)
    masks = np.zeros((count, size, size), dtype=bool) if return_masks else None
    for i, label in enumerate(labels):
        images[i], box, visible, x, y = composer.compose(rng, int(label))
        boxes[i] = np.asarray(box, dtype=np.float32) / size
        if return_masks:
            masks[i, y : y + visible.shape[0], x : x + visible.shape[1]] = visible
    if config.channels == 1:
        images = np.rint(images.astype(np.float32) @ _LUMA).astype(np.uint8)[..., None]
    return ClutteredSplit(images, labels, boxes, masks)


def generate_cluttered(config, return_masks=False):
    """Generate both splits. Returns (class_names, train, val) as :class:`ClutteredSplit` objects.

    ``config`` is a :class:`ClutteredConfig` or a mapping of spec options.
    """
    if not isinstance(config, ClutteredConfig):
        config = ClutteredConfig.from_options(config)
    source = make_source(config.source, config.classes)
    train = _generate_split(config, source, "train", return_masks)
    val = _generate_split(config, source, "val", return_masks)
    return source.class_names, train, val


def load_cluttered(spec, image_size=None):
    """Loader for ``cluttered:`` specs (see :func:`tfscissor.data.load_data`)."""

    config = ClutteredConfig.from_options(spec.options)
    class_names, train, val = generate_cluttered(config)
    splits = []
    for part in (train, val):
        images = part.images if image_size is None else resize_images(part.images, image_size)
        splits.append(Split(images, part.labels, part.boxes))
    return Dataset(config.to_spec(), class_names, *splits)

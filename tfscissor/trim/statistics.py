"""Per-channel activation statistics, the evidence every data-driven criterion ranks channels by."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfscissor.errors import DataError
from tfscissor.io import atomic_path


@dataclass(frozen=True)
class LayerStatistics:
    """Sums over every sample and spatial position of one layer's output, one entry per channel.

    Sums (not means) are kept so that statistics of several batches, runs or replicas merge by addition.
    """

    total: np.ndarray  # sum of the activation
    magnitude: np.ndarray  # sum of its absolute value
    zeros: np.ndarray  # number of positions where the activation is exactly zero
    count: int  # positions summed per channel (samples x height x width)

    @property
    def mean(self):
        return self.total / max(self.count, 1)

    @property
    def mean_magnitude(self):
        return self.magnitude / max(self.count, 1)

    @property
    def zero_fraction(self):
        return self.zeros / max(self.count, 1)

    def merge(self, other):
        if self.total.shape != other.total.shape:
            raise ValueError(f"cannot merge statistics of {self.total.shape[0]} and {other.total.shape[0]} channels")
        return LayerStatistics(
            self.total + other.total,
            self.magnitude + other.magnitude,
            self.zeros + other.zeros,
            self.count + other.count,
        )


@dataclass(frozen=True)
class GroupSaliency:
    """Sums over images of one channel group's squared first-order loss changes (see
    :mod:`tfscissor.trim.saliency`), one entry per group channel; kept as sums to merge by addition."""

    squares: np.ndarray
    count: int  # images summed

    @property
    def mean(self):
        return self.squares / max(self.count, 1)

    def merge(self, other):
        if self.squares.shape != other.squares.shape:
            raise ValueError(f"cannot merge saliency of {self.squares.shape[0]} and {other.squares.shape[0]} channels")
        return GroupSaliency(self.squares + other.squares, self.count + other.count)


_ARRAYS = ("total", "magnitude", "zeros")
# Keras layer names cannot hold a "/", so this prefix never meets a layer's own entries in the file.
_SALIENCY = "saliency/"


class ChannelStatistics(dict):
    """Layer name -> :class:`LayerStatistics`, and in :attr:`saliency` group name -> :class:`GroupSaliency`
    where it was measured; saved and loaded as one ``.npz`` file."""

    def __init__(self, layers=(), saliency=None, **named):
        super().__init__(layers, **named)
        self.saliency = dict(saliency or {})

    def merge(self, other):
        merged = ChannelStatistics(self, self.saliency)
        for name, stats in other.items():
            merged[name] = merged[name].merge(stats) if name in merged else stats
        for name, saliency in other.saliency.items():
            merged.saliency[name] = merged.saliency[name].merge(saliency) if name in merged.saliency else saliency
        return merged

    def with_saliency(self, saliency):
        """A copy with ``saliency`` (group name -> :class:`GroupSaliency`) added."""
        return ChannelStatistics(self, {**self.saliency, **saliency})

    def save(self, path):
        arrays = {}
        for name, stats in self.items():
            for key in _ARRAYS:
                arrays[f"{name}/{key}"] = getattr(stats, key)
            arrays[f"{name}/count"] = np.asarray(stats.count)
        for name, saliency in self.saliency.items():
            arrays[f"{_SALIENCY}{name}/squares"] = saliency.squares
            arrays[f"{_SALIENCY}{name}/count"] = np.asarray(saliency.count)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        try:
            with np.load(Path(path)) as data:
                names = sorted({key.rsplit("/", 1)[0] for key in data.files})
                layers = [name for name in names if not name.startswith(_SALIENCY)]
                groups = [name.removeprefix(_SALIENCY) for name in names if name.startswith(_SALIENCY)]
                return cls(
                    (
                        (name, LayerStatistics(*(data[f"{name}/{key}"] for key in _ARRAYS), int(data[f"{name}/count"])))
                        for name in layers
                    ),
                    {
                        name: GroupSaliency(data[f"{_SALIENCY}{name}/squares"], int(data[f"{_SALIENCY}{name}/count"]))
                        for name in groups
                    },
                )
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"cannot read statistics {path}: {err}; collect them again") from err

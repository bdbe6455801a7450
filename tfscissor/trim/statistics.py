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


_ARRAYS = ("total", "magnitude", "zeros")


class ChannelStatistics(dict):
    """Layer name -> :class:`LayerStatistics`; saved and loaded as one ``.npz`` file."""

    def merge(self, other):
        merged = ChannelStatistics(self)
        for name, stats in other.items():
            merged[name] = merged[name].merge(stats) if name in merged else stats
        return merged

    def save(self, path):
        arrays = {}
        for name, stats in self.items():
            for key in _ARRAYS:
                arrays[f"{name}/{key}"] = getattr(stats, key)
            arrays[f"{name}/count"] = np.asarray(stats.count)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path):
        try:
            with np.load(Path(path)) as data:
                names = sorted({key.rsplit("/", 1)[0] for key in data.files})
                return cls(
                    (name, LayerStatistics(*(data[f"{name}/{key}"] for key in _ARRAYS), int(data[f"{name}/count"])))
                    for name in names
                )
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"cannot read statistics {path}: {err}; collect them again") from err

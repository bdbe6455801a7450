"""Channel-ranking criteria, pluggable by name.

A criterion maps (group, statistics, model) to one score per channel of the group: higher means more worth
keeping. Register your own with :func:`register_criterion`.
"""

import numpy as np

from tfscissor.errors import UsageError

_CRITERIA = {}


def register_criterion(name):
    """Register ``fn(group, statistics, model, **options) -> np.ndarray`` (one score per channel) as ``name``."""

    def decorator(fn):
        _CRITERIA[name] = fn
        return fn

    return decorator


def criterion_names():
    return tuple(sorted(_CRITERIA))


def get_criterion(name):
    if name not in _CRITERIA:
        raise UsageError(f"unknown criterion {name!r}: use one of {', '.join(criterion_names())}")
    return _CRITERIA[name]


def _tap_statistics(group, statistics):
    if group.tap not in statistics:
        raise UsageError(f"statistics have no entry for layer {group.tap!r}: collect them on this model")
    return statistics[group.tap]


@register_criterion("relevance")
def relevance(group, statistics, model, normalize=True):
    """Mean post-activation output of each channel (Ressi et al.), divided by the layer's mean if
    ``normalize`` so that one threshold ranks channels of layers with different activation scales.

    A channel that never activates scores exactly 0, whatever the normalisation.
    """
    mean = _tap_statistics(group, statistics).mean
    if not normalize:
        return mean
    layer_mean = mean.mean()
    return mean / layer_mean if layer_mean > 0 else mean


@register_criterion("apoz")
def apoz(group, statistics, model):
    """One minus the average percentage of zeros of each channel's output (Hu et al., 2016)."""
    return 1.0 - _tap_statistics(group, statistics).zero_fraction


@register_criterion("l1")
def l1(group, statistics, model):
    """Sum of absolute kernel weights of each output filter of the producer (Li et al., ICLR 2017)."""
    kernel = model.get_layer(group.producer).get_weights()[0]
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


@register_criterion("random")
def random(group, statistics, model, seed=0):
    """A seeded random ranking: the floor any criterion must beat."""
    rng = np.random.default_rng([seed, group.channels, *group.producer.encode()])
    return rng.random(group.channels)

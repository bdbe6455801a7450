"""Channel-ranking criteria, pluggable by name.

A criterion maps (group, statistics, model) to one score per channel of the group: higher means more worth
keeping. Data-driven criteria read the statistics of the group's taps (the tensors that the next
convolutions read); a channel measured at several taps (a residual stream feeds every block of its stage)
scores the mean over all of them. Register your own with :func:`register_criterion`.

The default, ``taylor``, scores each channel by the loss change its removal causes where it is read (see
:mod:`tfscissor.trim.saliency`). On the benchmarks (bench/RESULTS.md) it was the one criterion that never
collapsed a model before fine-tuning: the activation-based ones (``relevance``, ``apoz``) rank a channel by
how loud it is, not by what the next layers make of it, and the weight-based ``l1`` cannot see the data.
"""

import numpy as np

from tfscissor.errors import UsageError

DEFAULT_CRITERION = "taylor"

_CRITERIA = {}
_IN_LOSS = set()


def register_criterion(name, saliency=False):
    """Register ``fn(group, statistics, model, **options) -> np.ndarray`` (one score per channel) as ``name``.

    With ``saliency``, the criterion reads ``statistics.saliency`` (a gradient pass with labels, see
    :mod:`tfscissor.trim.saliency`), which :func:`tfscissor.trim.trim_classifier` then collects, and its
    scores are in units of the loss: under a MACs or parameter budget they are then weighed against what
    each channel costs.
    """

    def decorator(fn):
        _CRITERIA[name] = fn
        (_IN_LOSS.add if saliency else _IN_LOSS.discard)(name)
        return fn

    return decorator


def measures_loss(name):
    """Whether criterion ``name`` reads saliency and scores in units of the loss."""
    get_criterion(name)  # an unknown name is refused here too
    return name in _IN_LOSS


def criterion_names():
    return tuple(sorted(_CRITERIA))


def get_criterion(name):
    if name not in _CRITERIA:
        raise UsageError(f"unknown criterion {name!r}: use one of {', '.join(criterion_names())}")
    return _CRITERIA[name]


def channel_mean(group, members, values):
    """Average, per group channel, the per-position ``values(member)`` of every member."""
    total = np.zeros(group.channels)
    count = np.zeros(group.channels)
    for member in members:
        np.add.at(total, member.channels, np.asarray(values(member), float)[member.positions])
        np.add.at(count, member.channels, 1)
    return total / np.maximum(count, 1)


def _tap_statistics(member, statistics):
    if member.layer not in statistics:
        raise UsageError(f"statistics have no entry for layer {member.layer!r}: collect them on this model")
    return statistics[member.layer]


@register_criterion("taylor", saliency=True)
def taylor(group, statistics, model):
    """The mean over images of the squared first-order loss change that removing each channel causes at
    every layer that reads it (activation x gradient, with the mean the surgery puts in its place)."""
    saliency = statistics.saliency.get(group.name)
    if saliency is None:
        raise UsageError(
            f"statistics have no saliency for group {group.name!r}: collect them with labels "
            "(tfscissor.trim.trim_classifier does) on this model"
        )
    return saliency.mean


@register_criterion("relevance")
def relevance(group, statistics, model, normalize=True):
    """Mean post-activation output of each channel (Ressi et al.), divided by its layer's mean if
    ``normalize`` so that one threshold ranks channels of layers with different activation scales;
    ``normalize=False`` is the raw mean.

    The magnitude is averaged, which is the output itself after ReLU-like activations and keeps the score
    meaningful where a tap is not rectified (MobileNetV2's linear bottlenecks, swish). A channel whose
    output is zero everywhere it is read scores exactly 0, whatever the normalisation.
    """

    def score(member):
        mean = _tap_statistics(member, statistics).mean_magnitude
        layer_mean = mean.mean()
        return mean / layer_mean if normalize and layer_mean > 0 else mean

    return channel_mean(group, group.taps, score)


@register_criterion("apoz")
def apoz(group, statistics, model):
    """One minus the average percentage of zeros of each channel's output (Hu et al., 2016)."""
    return 1.0 - channel_mean(group, group.taps, lambda member: _tap_statistics(member, statistics).zero_fraction)


@register_criterion("l1")
def l1(group, statistics, model, normalize=True):
    """Sum of absolute kernel weights of each output filter of the producers (Li et al., ICLR 2017), divided
    by its layer's mean if ``normalize``. Li et al. rank filters within a layer; without the normalisation a
    global ranking would strip the layers with the fewest weights per filter (the stem) first.
    """

    def norms(member):
        layer = model.get_layer(member.layer)
        kernel = getattr(layer, "pointwise_kernel", None)
        kernel = np.abs(np.asarray(layer.kernel if kernel is None else kernel))
        norm = kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
        return norm / norm.mean() if normalize and norm.mean() > 0 else norm

    return channel_mean(group, group.producers, norms)


@register_criterion("random")
def random(group, statistics, model, seed=0):
    """A seeded random ranking: the floor any criterion must beat."""
    rng = np.random.default_rng([seed, group.channels, *group.name.encode()])
    return rng.random(group.channels)

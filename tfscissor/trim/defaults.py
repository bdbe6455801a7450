"""The trim stage's choices, defaults and policy check, in a module that loads no Keras, so that the CLI and
the recipe schema offer the same choices as the library, and the CLI checks a policy as the library does,
without slowing every command's start."""

from tfscissor.errors import UsageError

POLICIES = ("ratio", "min_relevance", "target_macs", "target_params")
ALLOCATIONS = ("global", "sensitivity")

# The largest fraction of one group's channels a trim may remove by default. Without a limit one global
# ranking can strip a layer to a channel or two, and the model collapses before fine-tuning can help.
MAX_LAYER_RATIO = 0.75


def layer_limit(max_layer_ratio, name):
    """The largest fraction group ``name`` may lose under ``max_layer_ratio``: one number for every group, or a
    mapping group -> number in which a group not named has no limit."""
    return max_layer_ratio.get(name, 1.0) if isinstance(max_layer_ratio, dict) else max_layer_ratio


# Surgeries per round by default: the evidence is measured again after each, on the partly trimmed model.
# Re-measuring between smaller surgeries keeps more before any fine-tuning: on the benchmark ResNet at 90% of
# the MACs, 0.7115 in five steps against 0.6864 in one (mean of 3 seeds, baseline 0.7455; bench/RESULTS.md).
STEPS = 5

# The fine-tune's learning rate (Adam, cosine to 0 over the fine-tune): twice the rate the benchmark baselines
# were trained at. A short fine-tune after surgery recovers more at a high rate, in the spirit of learning-rate
# rewinding (Renda et al., 2020, which fine-tunes at the training rate): at half the MACs, 2 epochs, 3 seeds
# (bench/RESULTS.md, the `_lr` sections), taylor ended higher at 4e-3 than at 2e-3 on all four model and data-set
# pairs (+0.3 to +1.7 points) and random too (+0.4 to +3.0), and 2e-3 above 5e-4 (Fashion ResNet 0.7441 against
# 0.7265, digits 0.8327 against 0.7810).
FINE_TUNE_LR = 4e-3


def check_policy(policy, round_to=1, min_channels=1):
    """Check that ``policy`` (a dict) names exactly one of :data:`POLICIES` with a valid value."""
    given = {name: value for name, value in policy.items() if value is not None}
    if len(given) != 1:
        raise UsageError(
            "give exactly one trimming policy: ratio (fraction of channels to remove), min_relevance (a score "
            "threshold), target_macs or target_params (fraction of the original to keep)"
        )
    ((name, value),) = given.items()
    if name not in POLICIES:
        raise UsageError(f"unknown trimming policy {name!r}: use one of {', '.join(POLICIES)}")
    if name == "ratio" and not 0.0 <= value < 1.0:
        raise UsageError(f"ratio must be in [0, 1), got {value}")
    if name == "min_relevance" and value < 0:
        raise UsageError(f"min_relevance must be >= 0, got {value}")
    if name.startswith("target_") and not 0.0 < value <= 1.0:
        raise UsageError(f"{name} is the fraction of the original to keep: give a value in (0, 1], got {value}")
    if round_to < 1 or min_channels < 1:
        raise UsageError(f"round_to and min_channels must be >= 1, got {round_to} and {min_channels}")
    return name, value

"""How big a cropper is: the default cropper narrowed, then given a coarser view, until it fits a MACs budget."""

from tfscissor.analysis import profile_model
from tfscissor.errors import UsageError
from tfscissor.models.cropper import build_cropper, default_view, pools

MACS_SHARE = 0.05  # by default a cropper costs at most this share of the classifier it serves

# Tried in order until the cropper fits the MAC budget: the view's resolution is kept longest, because the
# box's precision depends on it; width goes first.
_WIDTHS = (1.0, 0.75, 0.5, 0.375, 0.25)


def fitted_cropper(input_shape, max_macs=None, seed=None, **options):
    """The default cropper for ``input_shape``, narrowed (then given a coarser view) until its MACs are at
    most ``max_macs``; ``options`` fix any of :func:`build_cropper`'s arguments. Raises UsageError when even
    the smallest candidate is over the budget."""
    side = min(int(input_shape[0]), int(input_shape[1]))
    views = [options.pop("view")] if "view" in options else _coarser_views(input_shape)
    widths = [options.pop("width")] if "width" in options else _WIDTHS
    smallest = None
    for view in views:
        for width in widths:
            model = build_cropper(input_shape, view=view, width=width, seed=seed, **options)
            macs = profile_model(model).macs
            if max_macs is None or macs <= max_macs:
                return model
            smallest = macs if smallest is None else min(smallest, macs)
    raise UsageError(
        f"no cropper for {side}-pixel images fits {int(max_macs):,} MACs (the smallest tried needs {smallest:,}): "
        "give the cropper a larger budget, or a smaller view and width"
    )


def _coarser_views(input_shape):
    """The default view, then every coarser one down to 16 pixels (or the default, if it is smaller)."""
    height, width = int(input_shape[0]), int(input_shape[1])
    side = min(height, width)
    first = default_view(height, width)
    return [side // p for p in pools(height, width, side) if side // p <= first and side // p >= min(first, 16)]

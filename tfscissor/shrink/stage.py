"""The shrink stage as the CLI and recipes run it: the compound search on whole images at each resolution, or,
with a cropper, on its crops with the cropper's costs counted in every candidate's budget."""

from tfscissor.crop.pipeline import cropped
from tfscissor.crop.stage import check_cropper
from tfscissor.shrink.budget import measure_costs
from tfscissor.shrink.compound import resized, search

__all__ = ["run_shrink"]


def run_shrink(model, dataset, limits, *, cropper=None, calibration=256, **options):
    """:func:`~tfscissor.shrink.search` ``model`` within ``limits`` (:func:`~tfscissor.shrink.parse_budget`).

    Without a ``cropper``, each candidate resolution sees ``dataset`` resized; with a Keras ``cropper`` (which
    takes ``dataset``'s images), it sees the crops at the cropper's boxes, and the budget holds the whole
    pipeline: the cropper's costs are added to every candidate's. ``options`` go to the search.
    """
    if cropper is None:
        return search(model, resized(dataset), limits, calibration=calibration, **options)
    check_cropper(cropper, getattr(cropper, "name", "cropper"))
    beside = measure_costs(cropper, [limit.axis for limit in limits], dataset.train.images[:calibration])
    return search(model, cropped(dataset, cropper), limits, beside=beside, calibration=calibration, **options)

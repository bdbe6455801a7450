"""The shrink stage as the CLI and recipes run it: the compound search on whole images at each resolution, or,
with a cropper, on its crops with the cropper's costs counted in every candidate's budget."""

from tfscissor.crop.pipeline import cropped
from tfscissor.crop.stage import check_cropper
from tfscissor.shrink.budget import measure_costs
from tfscissor.shrink.compound import resized, search

__all__ = ["run_shrink"]


def run_shrink(model, dataset, limits, *, cropper=None, calibration=256, distill=True, teacher=None, **options):
    """:func:`~tfscissor.shrink.search` ``model`` within ``limits`` (:func:`~tfscissor.shrink.parse_budget`).

    Without a ``cropper``, each candidate resolution sees ``dataset`` resized; with a Keras ``cropper`` (which
    takes ``dataset``'s images), it sees the crops at the cropper's boxes, and the budget holds the whole
    pipeline: the cropper's costs are added to every candidate's. ``options`` go to the search.

    With ``distill``, the final fine-tunes learn from a teacher's outputs as well as the labels, as trimming
    and ``crop finetune`` do: from ``teacher`` on the whole images resized to its input (typically the
    full-resolution classifier, which sees all of each image where the candidates see crops), or, without
    one, from ``model`` itself on what it takes (the search's view at its own side).
    """
    data_at = resized(dataset) if cropper is None else cropped(dataset, cropper)
    if distill and teacher is None:
        teacher, teacher_data = model, data_at(int(model.input_shape[1]))
    elif distill:
        teacher_data = resized(dataset)(int(teacher.input_shape[1]))
    else:
        teacher = teacher_data = None
    beside = None
    if cropper is not None:
        check_cropper(cropper, getattr(cropper, "name", "cropper"))
        beside = measure_costs(cropper, [limit.axis for limit in limits], dataset.train.images[:calibration])
    return search(
        model,
        data_at,
        limits,
        beside=beside,
        calibration=calibration,
        teacher=teacher,
        teacher_data=teacher_data,
        **options,
    )

"""What a recipe stage records for the report and the run summary: one :class:`~tfscissor.report.Stage` per
artifact, with the ``.tflite`` file the bench stage times (and the cropper it runs first, for a pipeline).

A two-stage pipeline's record holds the pipeline's figures, both models': MACs, parameters and model bytes
add up, and so do the arenas, because the two-stage firmware gives each interpreter an arena of its own (each
keeps its tensors planned between invocations; see firmware/tflm/two_stage/main_functions.cc).
"""

from tfscissor.deploy import measure_arena
from tfscissor.io import write_bytes
from tfscissor.report import Stage as Record

ADDED = ("macs", "params", "model_bytes", "arena_bytes")  # the figures a pipeline's stages add up


def record(name, label, artifact, *, tflite=None, cropper=None, **fields):
    """A manifest entry: the report record, the ``.tflite`` the bench stage times and its cropper's."""
    return {"record": Record(name, label, artifact, **fields).to_dict(), "tflite": tflite, "cropper": cropper}


def float_metrics(ctx, model, tflite_path, accuracy=None):
    """A float Keras model's figures: its graph's MACs and params, and its float ``.tflite`` (written to
    ``tflite_path``): its size and TFLM arena."""
    from tfscissor.quantize import to_tflite  # loads TensorFlow

    tflite = to_tflite(model)
    write_bytes(ctx.path(tflite_path), tflite)
    return tflite_metrics(tflite, model=model, accuracy=accuracy)


def tflite_metrics(tflite, *, model=None, metrics=None, accuracy=None):
    """Figures of a ``.tflite`` model: its size and TFLM arena, with MACs and params from the Keras ``model``
    it came from (or from ``metrics``, the Keras stage's figures)."""
    if model is not None:
        from tfscissor.analysis import profile_model  # loads Keras

        profile = profile_model(model)
        metrics = {"macs": profile.macs, "params": profile.params}
    return {
        **(metrics or {}),
        "accuracy": None if accuracy is None else round(accuracy, 4),
        "model_bytes": len(tflite),
        "arena_bytes": measure_arena(tflite),
    }


def pipeline_metrics(cropper, classifier, accuracy):
    """The two-stage pipeline's figures from its two models' (dicts of :data:`ADDED`), at ``accuracy``."""
    return {**{key: cropper[key] + classifier[key] for key in ADDED}, "accuracy": round(accuracy, 4)}


def stem(path):
    return path.rsplit("/", 1)[-1].removesuffix(".keras")

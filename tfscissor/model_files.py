"""What the ``eval`` and ``info`` commands do with a model file, whether ``.keras`` or ``.tflite``."""

from pathlib import Path

from tfscissor.data import load_data
from tfscissor.deploy import read_model
from tfscissor.deploy.litert import TFLiteModel
from tfscissor.errors import UsageError
from tfscissor.models import load_model
from tfscissor.models.training import check_input, evaluate_classifier

FORMATS = {".keras": "keras", ".tflite": "tflite"}


def model_format(path):
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise UsageError(f"{path} is neither a .keras nor a .tflite model: give a file saved by tfscissor or Keras 3")
    return FORMATS[suffix]


def evaluate_file(path, data_spec):
    """Accuracy of the model in ``path`` on the validation split of ``data_spec``, as a JSON-able dict.

    A ``.tflite`` model runs in LiteRT, so an int8 model is evaluated exactly as it is deployed.
    """

    if model_format(path) == "keras":
        model = load_model(path)
        dataset = load_data(data_spec, image_size=tuple(model.input_shape[1:3]))
        check_input(model, dataset.image_shape, dataset.spec)
        accuracy = evaluate_classifier(model, dataset.val)
    else:
        model = TFLiteModel.load(path)
        dataset = load_data(data_spec, image_size=model.input_shape[:2])
        accuracy = model.accuracy(dataset.val.images, dataset.val.labels)
    return {
        "model": str(path),
        "format": model_format(path),
        "data": dataset.spec,
        "samples": len(dataset.val),
        "accuracy": accuracy,
    }


def describe_file(path):
    """Per-layer costs of a ``.keras`` model, or the ops, tensors and quantisation of a ``.tflite``."""
    if model_format(path) == "keras":
        from tfscissor.analysis import profile_model

        model = load_model(path)
        return {"format": "keras", "name": model.name, **profile_model(model).to_dict()}

    return {"format": "tflite", **read_model(path).to_dict()}

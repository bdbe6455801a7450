"""Any ``keras.applications`` model by name, with no download: random weights or a user weights file."""

import inspect
from pathlib import Path

import keras

from tfscissor.errors import ModelError


def is_application(name):
    fn = getattr(keras.applications, name, None)
    return inspect.isfunction(fn) and "include_top" in inspect.signature(fn).parameters


def build_application(name, input_shape, num_classes, weights=None):
    """Build ``keras.applications.<name>`` for ``input_shape`` and ``num_classes``.

    Pretrained weights are never downloaded (the machines this runs on may have no network); ``weights`` is
    None for random initialisation or the path of a weights file saved by ``model.save_weights``.
    """
    fn = getattr(keras.applications, name)
    model = fn(weights=None, input_shape=input_shape, classes=num_classes, include_top=True)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ModelError(f"weights file {path} not found: give the path of a file saved by model.save_weights")
        try:
            model.load_weights(path)
        except (ValueError, OSError) as err:
            raise ModelError(f"cannot load weights {path} into {name}: {str(err).splitlines()[0]}") from err
    return model

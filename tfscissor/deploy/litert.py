"""Running a ``.tflite`` classifier with LiteRT, without importing TensorFlow.

Both host evaluation of an int8 model and the CPU benchmark go through :class:`TFLiteModel`, so accuracy
and latency are measured on the same interpreter configuration.
"""

import os
from pathlib import Path

import numpy as np

from tfscissor.errors import ModelError, UsageError


def check_tflite_path(model):
    """Refuse a path that is not a ``.tflite`` file (bytes pass): a ``.keras`` model needs quantising first."""
    if isinstance(model, (str, os.PathLike)) and Path(model).suffix != ".tflite":
        raise UsageError(f"model file {model} is not a .tflite file: quantize a .keras model with `tfscissor quantize`")


def read_tflite(model, name=None):
    """``(bytes, name)`` of a model given as ``.tflite`` bytes or a path; ``name`` defaults to the path."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), name or "model"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"model file {path} not found: check the path, or make one with `tfscissor quantize`")
        return path.read_bytes(), name or str(path)
    raise UsageError(f"a model must be .tflite bytes or a path to a .tflite file, got {type(model).__name__}")


def quantize_image(image, scale, zero_point, dtype=np.int8):
    """Float pixels in [0, 255] to an integer tensor: ``round(pixel / scale) + zero_point``, saturated."""
    limits = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(image, np.float32) / scale) + zero_point, limits.min, limits.max).astype(dtype)


def dequantize(raw, scale, zero_point):
    """float32 values of an integer tensor: ``(raw - zero_point) * scale``, in float32 as the firmware does it."""
    return (np.asarray(raw).astype(np.float32) - zero_point) * np.float32(scale)


def seeded_input(shape, dtype, seed=0):
    """A reproducible random tensor of ``shape`` and ``dtype``: the full integer range, or pixels in [0, 255]."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        limits = np.iinfo(dtype)
        return rng.integers(limits.min, limits.max, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(0, 255, size=shape).astype(dtype)


def is_tflite(model):
    """True for a :class:`TFLiteModel` (as opposed to a Keras model), where code serves both."""
    return isinstance(model, TFLiteModel)


class TFLiteModel:
    """A ``.tflite`` flatbuffer loaded in ``ai_edge_litert``'s interpreter, one image at a time.

    ``delegates`` are LiteRT delegates (for example the Edge TPU's); ``num_threads`` is the CPU thread count.
    """

    def __init__(self, model_bytes, *, num_threads=None, delegates=None, name="model"):
        from ai_edge_litert.interpreter import Interpreter

        self.name = name
        self.model_bytes = bytes(model_bytes)
        try:
            self.interpreter = Interpreter(
                model_content=self.model_bytes, num_threads=num_threads, experimental_delegates=delegates
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            if "edgetpu-custom-op" in str(err):
                # Only the Edge TPU's delegate runs the op that edgetpu_compiler folds the mapped operators into.
                raise ModelError(
                    f"{name} is compiled for the Edge TPU: bench it with --device usb or --device pci, or bench "
                    "the CPU .tflite it was compiled from"
                ) from err
            raise ModelError(
                f"{name} is not a valid .tflite model ({str(err).splitlines()[0]}): convert it again"
            ) from err
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{name} has {len(inputs)} inputs and {len(outputs)} outputs: tfscissor runs single-input, single-output classifiers"
            )
        self.input, self.output = inputs[0], outputs[0]

    @classmethod
    def load(cls, model, **kwargs):
        """From ``.tflite`` bytes or a path to a ``.tflite`` file."""
        check_tflite_path(model)
        data, name = read_tflite(model)
        return cls(data, name=name, **kwargs)

    @property
    def input_shape(self):
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self.input["shape"][1:])

    @property
    def input_quantization(self):
        """(scale, zero_point) of the input tensor; (0.0, 0) for a float input."""
        scale, zero_point = self.input["quantization"]
        return float(scale), int(zero_point)

    @property
    def output_quantization(self):
        scale, zero_point = self.output["quantization"]
        return float(scale), int(zero_point)

    def quantize_input(self, image):
        """Map one float image (pixels in [0, 255]) to the input tensor's dtype and quantisation."""
        dtype = self.input["dtype"]
        scale, zero_point = self.input_quantization
        if scale == 0.0:
            return np.asarray(image, dtype=dtype)
        return quantize_image(image, scale, zero_point, dtype)

    def invoke(self, input_tensor):
        """Run one already-quantised input (with batch dim) and return the raw output tensor."""
        self.interpreter.set_tensor(self.input["index"], input_tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def predict(self, images):
        """Float scores, dequantised, for a batch of float images of shape (N, H, W, C)."""
        images = np.asarray(images)
        if images.shape[1:] != self.input_shape:
            raise ModelError(
                f"{self.name} takes images of {self.input_shape}, the data has {images.shape[1:]}: resize the data or rebuild the model"
            )
        scale, zero_point = self.output_quantization
        rows = []
        for image in images:
            raw = self.invoke(self.quantize_input(image)[None])[0]
            rows.append(dequantize(raw, scale, zero_point) if scale else raw.astype(np.float32))
        return np.stack(rows)

    def accuracy(self, images, labels):
        return float(np.mean(np.argmax(self.predict(images), axis=-1) == np.asarray(labels)))

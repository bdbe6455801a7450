"""Loading and saving ``.keras`` files: safe mode on load, atomic on save."""

import re
import zipfile
from pathlib import Path

from tfscissor.errors import ModelError, UsageError
from tfscissor.io import atomic_path


def load_model(path):
    """Load a Keras 3 ``.keras`` file in safe mode (no arbitrary code from lambdas), without its optimizer.

    Raises ModelError naming the file for a missing, truncated or unsafe file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found: check the path, or train one with `tfscissor train`")
    if path.suffix != ".keras":
        raise UsageError(f"model file {path} is not a .keras file: save it with model.save('NAME.keras') in Keras 3")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"model file {path} is corrupt or truncated (not a .keras archive): save it again")
    _check_sizes(path)
    import keras  # after the checks: a wrong path is reported without loading TensorFlow

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged archive; all mean the same to a user.
        custom = _unknown_object(err)
        if custom:
            raise ModelError(
                f"cannot load model {path}: it uses {custom!r}, which Keras does not define, and tfscissor's commands "
                f"run no code of yours: load it in Python where {custom} is defined (and registered with "
                "keras.saving.register_keras_serializable) and call the library (tfscissor.trim.run_trim, ...)"
            ) from err
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"cannot load model {path}: {first}") from err


def _unknown_object(err):
    """The class or function a failed load could not find (Keras says so only in the error it wraps)."""
    while err is not None:
        found = re.search(r"Could not locate (?:class|function) '([^']+)'", str(err))
        if found:
            return found.group(1)
        err = err.__cause__ or err.__context__
    return None


# The JSON parts of a .keras archive describe layers, not weights: ResNet-50's config.json is about 100 KB. A
# few MB of compressed JSON can expand to hundreds of MB in memory before Keras looks at it, so the sizes the
# archive declares are checked first.
MAX_JSON_BYTES = 32 * 2**20


def _check_sizes(path):
    with zipfile.ZipFile(path) as archive:
        for name in ("config.json", "metadata.json"):
            try:
                size = archive.getinfo(name).file_size
            except KeyError:
                continue  # Keras names what is missing
            if size > MAX_JSON_BYTES:
                raise ModelError(
                    f"model file {path} declares a {name} of {size:,} bytes (at most {MAX_JSON_BYTES:,} are read): "
                    "it is not a model description tfscissor will load; save the model again with Keras"
                )


def save_model(model, path):
    """Save ``model``'s graph and weights to ``path`` atomically (a reader never sees a half-written archive);
    refuse weights that are NaN or infinite, which only a diverged training makes.

    The file leaves out how the model was last compiled and its optimizer's state: a training setup of
    tfscissor's (the distillation or box losses) would make the file load only where tfscissor is imported,
    Adam's state would double its size, and no stage or device reads either.
    """
    import numpy as np

    path = Path(path)
    if path.suffix != ".keras":
        raise UsageError(f"output {path} must end in .keras")
    for weight in model.weights:
        if not np.all(np.isfinite(np.asarray(weight))):
            raise ModelError(
                f"model {model.name} has non-finite values in {weight.path}: training diverged; lower the learning "
                f"rate and train again (nothing was written to {path})"
            )
    with atomic_path(path) as tmp:
        _uncompiled(model).save(tmp)


def _uncompiled(model):
    """``model``, or if it was compiled, a copy of its graph and weights that was not.

    A model its config alone cannot rebuild (a custom layer registered nowhere, a Lambda, a subclassed model)
    is saved as it is: it needs its own code to load anyway.
    """
    if not getattr(model, "compiled", False):
        return model
    try:
        copy = type(model).from_config(model.get_config())
        copy.set_weights(model.get_weights())
    except (TypeError, ValueError, NotImplementedError):
        return model
    return copy

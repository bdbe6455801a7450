"""Loading and saving ``.keras`` files: safe mode on load, atomic on save."""

import zipfile
from pathlib import Path

from tfscissor.errors import ModelError, UsageError
from tfscissor.io import atomic_path


def load_model(path):
    """Load a Keras 3 ``.keras`` file in safe mode (no arbitrary code from lambdas), without its optimizer.

    Raises ModelError naming the file for a missing, truncated or unsafe file.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found: check the path, or train one with `tfscissor train`")
    if path.suffix != ".keras":
        raise UsageError(f"model file {path} is not a .keras file: save it with model.save('NAME.keras') in Keras 3")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"model file {path} is corrupt or truncated (not a .keras archive): save it again")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged archive; all mean the same to a user.
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"cannot load model {path}: {first}") from err


def save_model(model, path):
    """Save ``model`` to ``path`` atomically (a reader never sees a half-written archive)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise UsageError(f"output {path} must end in .keras")
    with atomic_path(path) as tmp:
        model.save(tmp)

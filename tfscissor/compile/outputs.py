"""What every compile target shares: the output directory it may replace, the labels, and how its manifest
describes a model."""

import hashlib
import json
import math
import os
from pathlib import Path

from tfscissor.errors import ModelError, UsageError

# Each target's manifest names its format; a directory whose manifest names one of these is tfscissor's to
# replace, anything else is the user's.
FORMATS = {"tflm": "tfscissor.tflm/1", "tflite": "tfscissor.tflite/1", "edgetpu": "tfscissor.edgetpu/1"}


def check_out_dir(out_dir, *models):
    """``out_dir`` as a Path, refused when it is a file, holds an input model (replacing it would delete the
    model), or is a non-empty directory tfscissor did not write."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output {out_dir} exists and is not a directory: choose a directory path for the output")
    for model in models:
        if isinstance(model, (str, os.PathLike)) and out_dir.resolve() in Path(model).resolve().parents:
            raise UsageError(
                f"output {out_dir} holds the input model {model}, and would be replaced: choose another directory"
            )
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not is_tfscissor_output(out_dir):
            raise UsageError(f"output {out_dir} exists and is not a tfscissor output: choose a new or empty directory")
        _check_untouched(out_dir)
    return out_dir


def with_file_hashes(files):
    """``files`` ({relative path: text or bytes}, with ``manifest.json``) with each other file's SHA-256 added
    to the manifest, so that a later compile into the same directory can tell what the user changed there."""
    manifest = json.loads(files["manifest.json"])
    manifest["file_sha256"] = {
        name: _sha256(content) for name, content in sorted(files.items()) if name != "manifest.json"
    }
    return {**files, "manifest.json": json.dumps(manifest, indent=2) + "\n"}


def _sha256(content):
    return hashlib.sha256(content if isinstance(content, bytes) else content.encode("utf-8")).hexdigest()


def _check_untouched(out_dir):
    """Refuse to replace a tfscissor output where the user added files or edited tfscissor's (a build folder,
    a changed main.cc): replacing the directory would delete them without a word."""
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    written = set(manifest.get("files", [])) | {"manifest.json"}
    present = {path.relative_to(out_dir).as_posix() for path in out_dir.rglob("*") if not path.is_dir()}
    added = sorted(present - written)
    edited = sorted(
        name
        for name, digest in manifest.get("file_sha256", {}).items()
        if name in present and _sha256((out_dir / name).read_bytes()) != digest
    )
    if added or edited:
        said = [f"added {_first(added)}" if added else "", f"edited {_first(edited)}" if edited else ""]
        raise UsageError(
            f"output {out_dir} is a tfscissor output, but files there were {' and '.join(filter(None, said))} since: "
            "replacing it would lose them; move them out, or write to another directory"
        )


def _first(names, count=3):
    return ", ".join(names[:count]) + (f" and {len(names) - count} more" if len(names) > count else "")


def is_tfscissor_output(path):
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
        return manifest.get("format") in FORMATS.values()
    except (OSError, ValueError, AttributeError):
        return False


def check_labels(labels, num_classes):
    """One string per class (default: the class indices)."""
    if labels is None:
        return tuple(str(i) for i in range(num_classes))
    try:
        labels = None if isinstance(labels, (str, bytes)) else tuple(labels)
    except TypeError:
        labels = None
    if labels is None or not all(isinstance(label, str) for label in labels):
        raise UsageError("labels must be a list of strings, one per class (--labels a,b,c)")
    if len(labels) != num_classes:
        raise UsageError(f"{len(labels)} labels given for a model with {num_classes} outputs: give one label per class")
    return labels


def tensor_entry(tensor):
    """A model input or output for a manifest: shape, type and the int8 encoding ``q = round(x / scale) + zero``."""
    scale, zero_point = tensor.quantization
    return {"shape": list(tensor.shape), "dtype": tensor.dtype, "scale": scale, "zero_point": zero_point}


def model_entry(data, info, file):
    """A ``.tflite`` model for a manifest: its file, size, hash, ops and tensors."""
    return {
        "file": file,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "schema_version": info.version,
        "fully_int8": info.fully_int8,
        "ops": dict(info.op_counts),
        "input": tensor_entry(info.input),
        "output": tensor_entry(info.output),
    }


def check_deployable(info, runner, dtypes=("int8",)):
    """Refuse what ``runner`` (the firmware, the Edge TPU) cannot take: anything but one image in and one vector
    out, of one of ``dtypes`` (the Edge TPU also takes uint8, the legacy quantisation of Coral's own models)."""
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise ModelError(
            f"{info.name} has {len(info.inputs)} inputs and {len(info.outputs)} outputs: {runner} runs "
            "single-input, single-output models"
        )
    if info.input.dtype not in dtypes or info.output.dtype not in dtypes or info.float_activations:
        shown = ", ".join(info.float_activations[:3]) or f"input {info.input.dtype}, output {info.output.dtype}"
        raise ModelError(
            f"{info.name} is not an {' or '.join(dtypes)} model ({shown}): quantise it with `tfscissor quantize` "
            "(full-int8 PTQ)"
        )
    if len(info.input.shape) != 4 or info.input.shape[0] != 1:
        raise ModelError(f"{info.name} takes input of shape {info.input.shape}: {runner} feeds one image (1, H, W, C)")
    if not info.output.shape or math.prod(info.output.shape[:-1]) != 1:
        raise ModelError(f"{info.name} gives output of shape {info.output.shape}: {runner} reads one vector (1, N)")

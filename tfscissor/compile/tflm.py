"""TensorFlow Lite Micro: a firmware project around a model, with the arena :mod:`tfscissor.deploy.arena` measures.

The project follows TFLM's person_detection example (``main_functions``, ``model_settings``, an image
provider and a responder behind small headers with host reference implementations, a resolver listing only
the ops used, a static ``alignas(16)`` arena). TFLM's C++ sources are not needed to write it; TFLM's Python
interpreter (``tflite-micro``) runs the exact model bytes to measure the arena and record known-good outputs.
With a cropper, one project runs the two-stage pipeline: the files of ``firmware/tflm/two_stage/`` replace or
join the single-model ones, and the crop policy runs in plain C that equals :mod:`tfscissor.deploy.crop_policy`.
"""

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tfscissor import __version__
from tfscissor.compile import csource
from tfscissor.compile.boards import BoardFit, check_fit
from tfscissor.compile.outputs import (
    FORMATS,
    check_deployable,
    check_labels,
    check_out_dir,
    tensor_entry,
    with_file_hashes,
)
from tfscissor.compile.ports import add_board_port
from tfscissor.compile.tflm_ops import resolver_methods
from tfscissor.deploy.arena import (
    ARENA_GRANULARITY,
    DEFAULT_ARENA_MARGIN,
    DEFAULT_MAX_ARENA,
    SAMPLE_SEED,
    configured_arena,
    measure,
    sample_input,
    two_stage_buffers,
)
from tfscissor.deploy.boxes import BOX_FIELDS, check_box_outputs
from tfscissor.deploy.crop_policy import CropPolicy
from tfscissor.deploy.flatbuffer import read_model
from tfscissor.deploy.litert import dequantize, quantize_image, read_tflite
from tfscissor.errors import ModelError, UsageError
from tfscissor.io import atomic_dir

_TEMPLATES = (
    "model_data.h",
    "model_settings.h",
    "op_resolver.h",
    "main_functions.h",
    "main_functions.cc",
    "image_provider.h",
    "image_provider.cc",
    "classification_responder.h",
    "classification_responder.cc",
    "sample_data.h",
    "model_test.cc",
    "debug_log_output.h",
    "main.cc",
    "Makefile",
    "README.md",
)

# With a cropper, these replace the single-model files (or join them: the cropper's array, the crop policy).
_TWO_STAGE_TEMPLATES = (
    "model_settings.h",
    "model_settings.cc",
    "cropper_data.h",
    "cropper_data.cc",
    "crop_policy.h",
    "crop_policy.c",
    "main_functions.cc",
    "image_provider.h",
    "image_provider.cc",
    "sample_data.h",
    "sample_data.cc",
    "model_test.cc",
    "README.md",
)


@dataclass(frozen=True)
class TFLMProject:
    """A written firmware project. ``model_bytes`` is the model's size in bytes (what it costs in flash);
    ``arena_bytes`` the configured ``kTensorArenaSize``, ``measured_arena_bytes`` the measured minimum.
    ``cropper``: in a two-stage project, the cropper's part of it (its array, ops and arena)."""

    path: Path
    files: tuple
    name: str
    ops: tuple
    op_counts: dict
    arena_bytes: int
    measured_arena_bytes: int
    model_bytes: int
    labels: tuple
    cropper: "TFLMProject | None" = None
    fit: "BoardFit | None" = None  # with a board: what the project needs of it
    buffer_bytes: int = 0  # RAM the runner keeps besides the arenas: the two-stage whole image and crop line

    def file(self, name):
        return self.path / name


def _render_files(
    data,
    info,
    *,
    name,
    labels,
    methods,
    arena,
    measured,
    margin,
    sample_in,
    sample_out,
    sample_source,
    op_counts,
    two_stage=None,
):
    """Every file of the project as {filename: str or bytes}. ``op_counts``: how often each op is used (by both
    models of a two-stage project). ``two_stage``: a :class:`_TwoStage`, whose files replace or join the
    single-model ones."""
    rows, cols, channels = info.input.shape[1:]
    in_scale, in_zero = info.input.quantization
    out_scale, out_zero = info.output.quantization
    sha256 = hashlib.sha256(data).hexdigest()
    best = int(np.argmax(sample_out))
    values = {
        "name": name,
        "guard": name.upper(),
        "version": __version__,
        "sha256": sha256,
        "model_size": len(data),
        "rows": rows,
        "cols": cols,
        "channels": channels,
        "input_scale": csource.c_float(in_scale),
        "input_zero_point": in_zero,
        "output_scale": csource.c_float(out_scale),
        "output_zero_point": out_zero,
        "input_scale_text": f"{in_scale:.6g}",
        "output_scale_text": f"{out_scale:.6g}",
        "num_classes": len(labels),
        "labels": ", ".join(label.replace("|", "\\|") for label in labels),  # a Markdown table cell
        "arena": arena,
        "measured_arena": measured,
        "margin_percent": f"{100 * margin:g}",
        "op_count": len(methods),
        "op_list": ", ".join(f"{op} x{op_counts[op]}" for op, _ in methods),
        "registrations": "\n".join(
            f"  if (resolver.{method}() != kTfLiteOk) return kTfLiteError;  // {op} x{op_counts[op]}"
            for op, method in methods
        ),
        "bytes": csource.c_byte_rows(data),
        "sample_source": sample_source,
        "sample_input": csource.c_int_rows(sample_in.ravel()),
        "sample_output": csource.c_int_rows(sample_out.ravel()),
        "sample_class": best,
        "sample_label": "".join(c if c.isprintable() else "?" for c in labels[best]),  # it goes in a // comment
        "labels_array": "\n".join(f"    {csource.c_string(label)}," for label in labels),
        "input_table": csource.c_int_rows(quantization_table(info.input.quantization)),
    }
    groups = {fname: "tflm" for fname in (*_TEMPLATES, "model_data.cc", "model_settings.cc", "sample_data.cc")}
    if two_stage is not None:
        values.update(two_stage.values)
        groups.update({fname: "tflm/two_stage" for fname in _TWO_STAGE_TEMPLATES})
    files = {fname: csource.render(csource.template(group, fname), **values) for fname, group in groups.items()}
    files["model.tflite"] = data
    manifest = {
        "format": FORMATS["tflm"],
        "name": name,
        "tfscissor_version": __version__,
        "model": {
            "file": "model.tflite",
            "bytes": len(data),
            "sha256": sha256,
            "schema_version": info.version,
            "fully_int8": info.fully_int8,
        },
        "ops": [op for op, _ in methods],
        "op_counts": dict(op_counts),
        "arena": {"bytes": arena, "measured_bytes": measured, "margin": margin, "granularity": ARENA_GRANULARITY},
        "input": tensor_entry(info.input),
        "output": tensor_entry(info.output),
        "labels": list(labels),
        "sample": {"source": sample_source, "output": [int(v) for v in sample_out.ravel()], "class": best},
    }
    if two_stage is not None:
        files["cropper.tflite"] = two_stage.data
        manifest.update(two_stage.manifest)
        manifest["sample"].update(two_stage.sample)
    files["manifest.json"] = json.dumps(manifest, indent=2) + "\n"
    manifest["files"] = sorted(files)
    files["manifest.json"] = json.dumps(manifest, indent=2) + "\n"
    return files


def _write_file(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def write_tflm_project(
    model_bytes,
    out_dir,
    *,
    labels=None,
    name="model",
    arena_margin=DEFAULT_ARENA_MARGIN,
    sample_image=None,
    max_arena=DEFAULT_MAX_ARENA,
    cropper=None,
    policy=None,
    board=None,
):
    """Write a TFLM firmware project for an int8 classifier into ``out_dir`` (replaced whole, atomically).

    ``model_bytes``: the full-int8 ``.tflite`` (bytes or a path). ``labels``: one string per output class
    (default: the class indices). An existing ``out_dir`` is replaced only if tfscissor wrote it.
    ``name``: a C identifier naming the model array (``g_<name>``) and the host executable.
    ``arena_margin``: fraction added to the measured arena. The measurement runs TFLM's reference kernels on
    the host; a device's optimised kernels (CMSIS-NN, ESP-NN) ask for their own scratch buffers and TFLM
    versions keep different bookkeeping in the arena, so 10% is a cushion, and ``setup()`` prints the real use.
    ``sample_image``: an (H, W, C) image of pixels in [0, 255] for the known-good test (default: seeded noise).
    ``cropper``: the int8 cropper of a two-stage pipeline (bytes or a path). The project then runs both models
    (an arena each, one resolver for the ops of both) joined by ``policy`` (a
    :class:`~tfscissor.deploy.crop_policy.CropPolicy`, default ``CropPolicy()``) in plain C, which gives the Python
    pipeline's crops bit for bit; ``sample_image`` is then a whole image, and the known-good test checks the
    box, the window and the scores. The returned project's ``cropper`` describes the cropper's part.
    ``board``: a preset of :data:`tfscissor.compile.boards.BOARDS`; a project that does not fit its flash and
    RAM (both models, both arenas) is refused before anything is written, and the returned ``fit`` says what it
    needs and warns when it is nearly full. The board's port (:mod:`tfscissor.compile.ports`: ESP-IDF, Arduino,
    Zephyr, plain CMake for a Cortex-M) goes in ``out_dir/<port>/``, its commands in the manifest's ``board``.
    """
    data, model_name = read_tflite(model_bytes)
    csource.c_identifier(name, "project name")
    if isinstance(arena_margin, bool) or not isinstance(arena_margin, (int, float)) or not 0 <= arena_margin <= 10:
        raise UsageError(f"arena_margin must be a fraction between 0 and 10 (0.1 = 10%), got {arena_margin!r}")
    out_dir = check_out_dir(out_dir, model_bytes, cropper)
    if policy is not None and cropper is None:
        raise UsageError("a crop policy needs a cropper: give --cropper too")
    if policy is not None and not isinstance(policy, CropPolicy):
        raise UsageError(f"policy must be a tfscissor.deploy.CropPolicy, got {type(policy).__name__}")
    settings = dict(labels=labels, name=name, margin=arena_margin, sample=sample_image, limit=max_arena)
    if cropper is None:
        files, project = _project_files(data, model_name, out_dir, **settings)
    else:
        files, project = _two_stage_files(data, model_name, cropper, out_dir, policy=policy or CropPolicy(), **settings)
    if board is not None:
        parts = [project, project.cropper] if project.cropper else [project]
        flash = sum(p.model_bytes for p in parts)
        ram = sum(p.arena_bytes for p in parts) + project.buffer_bytes
        project = replace(project, fit=check_fit(board, flash, ram))
        files = add_board_port(files, project.fit, name)
        project = replace(project, files=tuple(sorted(files)))
    with atomic_dir(out_dir) as tmp:
        for fname, content in with_file_hashes(files).items():
            (tmp / fname).parent.mkdir(parents=True, exist_ok=True)
            _write_file(tmp / fname, content)
    return project


def _project_files(data, model_name, out_dir, *, labels, name, margin, sample, limit):
    """Every file of one model's project, and the :class:`TFLMProject` describing it once written."""
    info = read_model(data, name=model_name)
    check_deployable(info, "the firmware")
    labels = check_labels(labels, info.output.shape[-1])
    methods = resolver_methods(info.ops, model_name)
    sample_in = sample_input(info, sample)
    measured, raw_output = measure(data, info, sample_in, limit)
    sample_out = np.frombuffer(raw_output, dtype=np.int8).reshape(info.output.shape)
    source = (
        "the sample image given to tfscissor" if sample is not None else f"seeded random input (seed {SAMPLE_SEED})"
    )
    return _finish(
        data, info, out_dir, name=name, labels=labels, methods=methods, measured=measured, margin=margin,
        sample_in=sample_in, sample_out=sample_out, sample_source=source,
    )  # fmt: skip


def _finish(data, info, out_dir, *, measured, margin, op_counts=None, two_stage=None, cropper=None, **render):
    """The rendered files and the :class:`TFLMProject` describing them, for one model or (with ``two_stage``
    and ``cropper``, the cropper's part) the two-stage pipeline."""
    op_counts = op_counts or info.op_counts
    arena = configured_arena(measured, margin)
    files = _render_files(
        data, info, arena=arena, measured=measured, margin=float(margin), op_counts=op_counts, two_stage=two_stage,
        **render,
    )  # fmt: skip
    buffers = two_stage.values["image_bytes"] + two_stage.values["line_bytes"] if two_stage else 0
    project = TFLMProject(
        path=out_dir,
        files=tuple(sorted(files)),
        name=render["name"],
        ops=tuple(op for op, _ in render["methods"]),
        op_counts=dict(op_counts),
        arena_bytes=arena,
        measured_arena_bytes=measured,
        model_bytes=len(data),
        labels=render["labels"],
        cropper=cropper,
        buffer_bytes=buffers,
    )
    return files, project


def quantization_table(quantization):
    """The int8 input value of each pixel value 0..255 for a model input quantised as ``(scale, zero_point)``:
    the Python pipeline's own rounding (:func:`~tfscissor.deploy.litert.quantize_image`), tabulated for the firmware."""
    return quantize_image(np.arange(256), *quantization)


def _whole_image(shape, image):
    """The two-stage sample: ``image`` as uint8 pixels, or seeded random pixels."""
    if image is None:
        return np.random.default_rng(SAMPLE_SEED).integers(0, 256, size=shape, dtype=np.uint8)
    image = np.asarray(image)
    if image.shape != tuple(shape):
        raise UsageError(
            f"sample_image has shape {image.shape}, the cropper takes {tuple(shape)}: pass one whole image"
        )
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _TwoStage:
    """What a cropper adds to the classifier's project: its bytes, template values and manifest entries."""

    data: bytes
    values: dict
    manifest: dict
    sample: dict


def _two_stage_files(data, model_name, cropper, out_dir, *, policy, labels, name, margin, sample, limit):
    """The two-stage project's files and its :class:`TFLMProject`, whose ``cropper`` describes the cropper.

    The sample runs as the firmware runs it: the whole image through the cropper (TFLM), the box through the
    crop policy, the crop through the classifier (TFLM); both arenas are measured on those inputs."""
    cropper_data, cropper_name = read_tflite(cropper)
    cropper_info, info = read_model(cropper_data, name=cropper_name), read_model(data, name=model_name)
    check_deployable(cropper_info, "the firmware")
    check_deployable(info, "the firmware")
    check_box_outputs(cropper_info.output.shape[-1], cropper_name)
    image_shape, crop_shape = tuple(cropper_info.input.shape[1:]), tuple(info.input.shape[1:])
    if crop_shape[0] != crop_shape[1] or crop_shape[2] != image_shape[2]:
        raise ModelError(
            f"classifier {model_name} takes {crop_shape} images and cropper {cropper_name} takes {image_shape}: "
            f"the classifier needs square crops with the cropper's {image_shape[2]} channels"
        )
    labels = check_labels(labels, info.output.shape[-1])
    op_counts = dict(cropper_info.op_counts)
    for op, count in info.op_counts.items():
        op_counts[op] = op_counts.get(op, 0) + count
    methods = resolver_methods(op_counts, f"{cropper_name} or {model_name}")

    image = _whole_image(image_shape, sample)
    cropper_table, table = (
        quantization_table(cropper_info.input.quantization),
        quantization_table(info.input.quantization),
    )
    cropper_measured, raw_box = measure(cropper_data, cropper_info, cropper_table[image][None], limit)
    box = np.frombuffer(raw_box, dtype=np.int8)
    crop = policy.crop(image[None], dequantize(box, *cropper_info.output.quantization)[None], crop_shape[0])
    sample_in = table[crop.images]
    measured, raw_output = measure(data, info, sample_in, limit)
    sample_out = np.frombuffer(raw_output, dtype=np.int8).reshape(info.output.shape)
    cropper_arena = configured_arena(cropper_measured, margin)
    window = [int(v) for v in crop.windows[0]]
    image_bytes, line_bytes = two_stage_buffers(image_shape)

    (in_scale, in_zero), (out_scale, out_zero) = cropper_info.input.quantization, cropper_info.output.quantization
    scales = policy.scales or ()
    cropper_sha256 = hashlib.sha256(cropper_data).hexdigest()
    values = {
        "cropper_sha256": cropper_sha256,
        "cropper_size": len(cropper_data),
        "cropper_bytes": csource.c_byte_rows(cropper_data),
        "image_rows": image_shape[0],
        "image_cols": image_shape[1],
        "cropper_input_scale": csource.c_float(in_scale),
        "cropper_input_zero_point": in_zero,
        "cropper_output_scale": csource.c_float(out_scale),
        "cropper_output_zero_point": out_zero,
        "cropper_input_scale_text": f"{in_scale:.6g}",
        "cropper_output_scale_text": f"{out_scale:.6g}",
        "cropper_arena": cropper_arena,
        "cropper_measured_arena": cropper_measured,
        "scale_count": len(scales),
        # C++ has no empty arrays: with no scales the one 0.0 is never read (kCropScaleCount is 0).
        "scales": ", ".join(repr(float(v)) for v in scales) or "0.0",
        "margin": repr(float(policy.margin)),
        "policy_text": (
            f"sides {', '.join(f'{v:g}' for v in scales)} of the short side" if scales else "the squared box"
        )
        + f", margin {policy.margin:g}",
        "cropper_input_table": csource.c_int_rows(cropper_table),
        "sample_image": csource.c_int_rows(image.ravel()),
        "sample_box": ", ".join(str(int(v)) for v in box),
        "sample_window": ", ".join(map(str, window)),
        "sample_fallback": "true" if crop.fallbacks[0] else "false",
        "image_bytes": image_bytes,
        "line_bytes": line_bytes,
    }
    manifest = {
        "pipeline": "cropper on the whole image -> box -> crop policy -> classifier on the crop",
        "crop_policy": policy.to_dict(),
        "cropper": {
            "model": {
                "file": "cropper.tflite",
                "bytes": len(cropper_data),
                "sha256": cropper_sha256,
                "schema_version": cropper_info.version,
                "fully_int8": cropper_info.fully_int8,
            },
            "arena": {"bytes": cropper_arena, "measured_bytes": cropper_measured},
            "input": tensor_entry(cropper_info.input),
            "output": tensor_entry(cropper_info.output),
        },
        "buffers": {"image_bytes": values["image_bytes"], "crop_line_bytes": values["line_bytes"]},
    }
    two_stage = _TwoStage(
        cropper_data,
        values,
        manifest,
        {"box": [int(v) for v in box], "window": window, "fallback": bool(crop.fallbacks[0])},
    )
    source = (
        "the sample image given to tfscissor" if sample is not None else f"seeded random image (seed {SAMPLE_SEED})"
    )
    cropper_project = TFLMProject(
        path=out_dir,
        files=("cropper.tflite", "cropper_data.cc", "cropper_data.h"),
        name=f"{name}_cropper",
        ops=tuple(sorted(cropper_info.op_counts)),
        op_counts=dict(cropper_info.op_counts),
        arena_bytes=cropper_arena,
        measured_arena_bytes=cropper_measured,
        model_bytes=len(cropper_data),
        labels=BOX_FIELDS,
    )
    return _finish(
        data, info, out_dir, name=name, labels=labels, methods=methods, measured=measured, margin=margin,
        sample_in=sample_in, sample_out=sample_out, sample_source=source, op_counts=op_counts, two_stage=two_stage,
        cropper=cropper_project,
    )  # fmt: skip

"""The ``tflite`` and ``edgetpu`` targets: a directory with the int8 model(s) and a manifest an application
reads (input shape and int8 encoding, labels, crop policy, hashes); for the Edge TPU also the predicted
operator mapping and, when Coral's compiler is installed, the compiled ``_edgetpu.tflite`` files and their logs.

Every directory is written whole and atomically: a reader sees the old complete one or the new complete one,
never a half-written ``_edgetpu.tflite``.
"""

import json
from dataclasses import dataclass

from tfscissor import __version__
from tfscissor.compile.edgetpu import analyse_edgetpu
from tfscissor.compile.edgetpu_compiler import CompilerMissing, compile_models, find_compiler, parse_compiler_output
from tfscissor.compile.outputs import (
    FORMATS,
    check_deployable,
    check_labels,
    check_out_dir,
    model_entry,
    with_file_hashes,
)
from tfscissor.deploy.boxes import check_box_outputs
from tfscissor.deploy.flatbuffer import read_model
from tfscissor.deploy.litert import read_tflite
from tfscissor.errors import UsageError
from tfscissor.io import atomic_dir

__all__ = ["Bundle", "write_edgetpu_bundle", "write_tflite_bundle"]


@dataclass(frozen=True)
class Bundle:
    """A written directory: its manifest, the Edge TPU analyses and compiled models (``edgetpu`` only; the
    compiled ones are empty when the compiler is missing, and ``missing`` then says so)."""

    path: object
    manifest: dict
    analyses: dict
    compiled: dict
    missing: str = ""


def _models(model, cropper, runner, dtypes=("int8",)):
    """{role: (bytes, info)}: the classifier, then the cropper (the order they are co-compiled in, so the
    classifier's parameters get the on-chip cache first), each checked to be a model of ``dtypes`` that
    ``runner`` takes."""
    models = {}
    for role, given in (("classifier", model), ("cropper", cropper)):
        if given is not None:
            data, name = read_tflite(given)
            info = read_model(data, name=name)
            check_deployable(info, runner, dtypes)
            if role == "cropper":
                check_box_outputs(info.output.shape[-1], name)
            models[role] = (data, info)
    return models


def _bundle(models, target, labels, policy):
    classifier = models["classifier"][1]
    manifest = {
        "format": FORMATS[target],
        "tfscissor_version": __version__,
        "models": {role: model_entry(data, info, f"{role}.tflite") for role, (data, info) in models.items()},
        "labels": list(check_labels(labels, classifier.output.shape[-1])),
    }
    if "cropper" in models:
        manifest["crop_policy"] = policy.to_dict()
        manifest["pipeline"] = "cropper on the whole image -> box -> crop policy -> classifier on the crop"
    files = {f"{role}.tflite": data for role, (data, _) in models.items()}
    return manifest, files


def _policy(policy, cropper):
    if policy is not None and cropper is None:
        raise UsageError("a crop policy needs a cropper: give --cropper too")
    from tfscissor.deploy.crop_policy import CropPolicy

    return policy or CropPolicy()


def _write(out_dir, files, manifest):
    manifest = {**manifest, "files": sorted([*files, "manifest.json"])}
    files = with_file_hashes({**files, "manifest.json": json.dumps(manifest)})
    with atomic_dir(out_dir) as tmp:
        for name, content in files.items():
            (tmp / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return json.loads(files["manifest.json"])


def write_tflite_bundle(model, out_dir, *, labels=None, cropper=None, policy=None):
    """Write ``out_dir``: ``classifier.tflite`` (and ``cropper.tflite``) and ``manifest.json``."""
    out_dir = check_out_dir(out_dir, model, cropper)
    models = _models(model, cropper, "a LiteRT application")
    manifest, files = _bundle(models, "tflite", labels, _policy(policy, cropper))
    return Bundle(out_dir, _write(out_dir, files, manifest), {}, {})


def analysis_markdown(analyses):
    """The predicted mapping as Markdown: a table per model, in the compiler log's columns plus the reason."""
    lines = ["# Edge TPU mapping (predicted from the .tflite, before compiling)", ""]
    for role, analysis in analyses.items():
        lines += [f"## {role}: {analysis.mapped} of {len(analysis.verdicts)} operations on the Edge TPU", ""]
        lines += [f"- Problem: {problem}" for problem in analysis.problems]
        lines += ["", "| Operator | Count | Status | Reason |", "|---|---|---|---|"]
        lines += [f"| {r['operator']} | {r['count']} | {r['status']} | {r['reason']} |" for r in analysis.table()]
        lines.append("")
    return "\n".join(lines)


def write_edgetpu_bundle(model, out_dir, *, labels=None, cropper=None, policy=None, compiler=None, timeout=180):
    """Write ``out_dir`` for the Edge TPU: the ``tflite`` bundle, ``edgetpu_analysis.md`` / ``.json`` (the
    predicted mapping), and, when the compiler runs, ``<role>_edgetpu.tflite``, ``<role>_edgetpu.log`` and
    ``edgetpu_compiler.txt`` (what it printed). Cropper and classifier are compiled in one call, so they share
    the on-chip cache.

    Without the compiler the rest is still written and the returned bundle's ``missing`` says how to install it
    (the command line then exits 1); a compiler that fails raises ModelError and writes nothing.
    """
    out_dir = check_out_dir(out_dir, model, cropper)
    if compiler is not None:
        find_compiler(compiler)  # a wrong path is the user's mistake: refuse it before writing anything
    models = _models(model, cropper, "the Edge TPU", ("int8", "uint8"))
    manifest, files = _bundle(models, "edgetpu", labels, _policy(policy, cropper))
    analyses = {role: analyse_edgetpu(data, name=info.name) for role, (data, info) in models.items()}
    files["edgetpu_analysis.md"] = analysis_markdown(analyses)
    files["edgetpu_analysis.json"] = json.dumps({r: a.to_dict() for r, a in analyses.items()}, indent=2) + "\n"
    manifest["edgetpu"] = {"predicted": {r: a.to_dict() for r, a in analyses.items()}, "compiler": None}
    compiled, missing = {}, ""
    try:
        console, compiled = compile_models(
            {role: data for role, (data, _) in models.items()}, compiler=compiler, timeout=timeout
        )
    except CompilerMissing as err:
        missing = str(err)
    else:
        files["edgetpu_compiler.txt"] = console
        for role, result in compiled.items():
            files[f"{role}_edgetpu.tflite"] = result.tflite
            files[f"{role}_edgetpu.log"] = result.log
        manifest["edgetpu"]["compiler"] = {
            "version": parse_compiler_output(console)["version"],
            "models": {role: result.to_dict() for role, result in compiled.items()},
        }
    return Bundle(out_dir, _write(out_dir, files, manifest), analyses, compiled, missing)

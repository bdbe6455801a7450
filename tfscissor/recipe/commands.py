"""The "by hand" command of each artifact of a run: the ``tfscissor`` command line that rebuilds it, with every
recipe value that decides the artifact spelled out (tests parse each one with the CLI itself, so an option
renamed there cannot drift here)."""

import json
import shlex

from tfscissor.recipe.records import stem


def _data(recipe):
    return shlex.quote(recipe["data"])


def train(recipe):
    model, train = recipe["model"], recipe["train"]
    if model["path"]:
        return f"cp {shlex.quote(model['path'])} baseline.keras"
    args = "".join(f" --arg {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in (model["args"] or {}).items())
    size = f" --image-size {recipe['image_size']}" if recipe["image_size"] else ""
    return (
        f"tfscissor train --data {_data(recipe)} --model {shlex.quote(model['name'])}{args}{size} "
        f"--epochs {train['epochs']} --batch-size {train['batch_size']} --lr {train['lr']} --seed {recipe['seed']} "
        "-o baseline.keras"
    )


def trim(recipe, source):
    flags = {"protect_stem": "--no-protect-stem", "distill": "--no-distill"}  # on by default: a flag turns each off
    trim = recipe["trim"]
    options = "".join(
        f" --{key.replace('_', '-')} {shlex.quote(str(value))}"
        for key, value in trim.items()
        if key not in ("exclude", "reconstruct", *flags) and value is not None
    )
    options += "".join(f" {flag}" for key, flag in flags.items() if not trim[key])
    if trim["reconstruct"] is not None:  # None leaves it to the stage: a refit only where nothing fine-tunes
        options += " --reconstruct" if trim["reconstruct"] else " --no-reconstruct"
    options += "".join(f" --exclude {shlex.quote(layer)}" for layer in trim["exclude"])
    options += f" --batch-size {recipe['train']['batch_size']} --seed {recipe['seed']}"
    return (
        f"tfscissor trim {stem(source)}.keras --data {_data(recipe)}{options} "
        "--save-stats statistics.npz -o trimmed.keras"
    )


def shrink(recipe, source, teacher=None):
    shrink = recipe["shrink"]
    resolutions = f" --resolutions {','.join(map(str, shrink['resolutions']))}" if shrink["resolutions"] else ""
    cropper = " --cropper cropper.keras" if recipe["cropper"]["enabled"] else ""
    distill = " --no-distill" if not shrink["distill"] else f" --teacher {stem(teacher)}.keras" if teacher else ""
    return (
        f"tfscissor shrink {stem(source)}.keras{cropper} --data {_data(recipe)} --budget {shlex.quote(shrink['budget'])} "
        f"--search {shrink['search']} --depths {','.join(map(str, shrink['depths']))} "
        f"--widths {','.join(f'{w:g}' for w in shrink['widths'])}{resolutions} --score {shrink['score']} "
        f"--calibration {shrink['calibration']} --top {shrink['top']} "
        f"--fine-tune-epochs {shrink['fine_tune_epochs']} --lr {shrink['lr']:g}{distill} --seed {recipe['seed']} "
        "-o shrunk.keras"
    )


def crop_train(recipe, source):
    crop, train = recipe["cropper"], recipe["train"]
    architecture = "".join(f" --{key} {crop[key]}" for key in ("view", "width") if crop[key] is not None)
    return (
        f"tfscissor crop train --data {_data(recipe)} --classifier {stem(source)}.keras "
        f"--labels {crop['labels']}{architecture} --epochs {crop['epochs']} --lr {crop['lr']:g} "
        f"--batch-size {train['batch_size']} --seed {recipe['seed']} -o cropper.keras"
    )


def crop_finetune(recipe, source, resolution):
    crop, train = recipe["cropper"], recipe["train"]
    return (
        f"tfscissor crop finetune --cropper cropper.keras --classifier {stem(source)}.keras "
        f"--data {_data(recipe)} --resolution {resolution} --labels {crop['labels']} "
        f"--mix {crop['mix']:g} --epochs {crop['finetune_epochs']} --lr {crop['finetune_lr']:g} "
        f"--batch-size {train['batch_size']} --seed {recipe['seed']}{'' if crop['distill'] else ' --no-distill'} "
        "-o cropped.keras"
    )


def quantize(recipe, source, output, cropper_output=None):
    quantize = recipe["quantize"]
    command = f"tfscissor quantize {stem(source)}.keras --data {_data(recipe)} --samples {quantize['samples']}"
    if cropper_output is not None:
        command += f" --cropper cropper.keras --cropper-output {cropper_output}"
    elif quantize["method"] == "qat":
        command += f" --qat --epochs {quantize['epochs']} --lr {quantize['lr']:g}"
    return f"{command} --seed {recipe['seed']} -o {output}"


def compile_for(recipe, model, target, output, *, labels, cropper=None, name=None):
    """``tfscissor compile`` of the int8 ``model`` (and ``cropper``) for ``target`` into ``output``."""
    command = f"tfscissor compile {model} --target {target} --labels {shlex.quote(','.join(labels))}"
    if cropper is not None:
        command += f" --cropper {cropper}"
    if target == "tflm":
        board = recipe["compile"]["board"]
        command += f" --name {name}" + (f" --board {board}" if board else "")
    return f"{command} -o {output}"

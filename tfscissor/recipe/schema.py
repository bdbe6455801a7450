"""The recipe format: every section, key, type, default and allowed value, and :func:`load_recipe`.

A recipe may leave out any key (its default applies); it may not add one. Errors name the recipe, the line,
the key and what is allowed there, so the user can fix the YAML without reading this module.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from tfscissor.bench.devices import DEVICES
from tfscissor.compile.boards import BOARDS
from tfscissor.compile.outputs import FORMATS
from tfscissor.crop.stage import LABEL_SOURCES
from tfscissor.crop.training import CROPPER_EPOCHS, CROPPER_LEARNING_RATE
from tfscissor.errors import UsageError
from tfscissor.models.distribute import STRATEGIES
from tfscissor.quantize.stage import METHODS, QAT_EPOCHS, QAT_LEARNING_RATE
from tfscissor.trim.criteria import DEFAULT_CRITERION, criterion_names
from tfscissor.trim.defaults import ALLOCATIONS, FINE_TUNE_LR, MAX_LAYER_RATIO, POLICIES, STEPS


@dataclass(frozen=True)
class Key:
    """One leaf of the schema: its default, the YAML types it accepts (None is accepted only where the default
    is None) and, where the values are a closed set, ``choices`` (for a list: each item's). A number (for a
    list: each item) must be at least ``minimum``, above ``above``, at most ``maximum``; a list's items must be
    of ``items`` types."""

    default: object
    types: tuple
    choices: tuple = ()
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    items: tuple = ()


INT, FLOAT, TEXT, LIST, BOOL = (int,), (float, int), (str,), (list,), (bool,)

SCHEMA = {
    "name": Key(None, TEXT),
    "seed": Key(0, INT, minimum=0),
    # A data spec string (see README, Data); its splits come with it: cluttered's val=, a folder's train/ and
    # val/ (or val=), IDX train and t10k files, a tfds set's train and validation splits.
    "data": Key("cluttered", TEXT),
    "image_size": Key(None, INT, minimum=8, maximum=1024),
    "model": {
        "name": Key("plain", TEXT),  # a builder (plain, resnet, mobilenetv2) or a keras.applications name
        "args": Key({}, (dict,)),
        "path": Key(None, TEXT),  # a trained .keras model to start from instead of training one
    },
    "train": {
        "epochs": Key(10, INT, minimum=1, maximum=10_000),
        "batch_size": Key(64, INT, minimum=1),
        "lr": Key(1e-3, FLOAT, above=0),
        # What tfscissor.models.training.train_classifier does; other values need it to support them.
        "optimizer": Key("adam", TEXT, ("adam",)),
        "schedule": Key("cosine", TEXT, ("cosine",)),
        "augmentation": Key("none", TEXT, ("none",)),
    },
    "trim": {
        "criterion": Key(DEFAULT_CRITERION, TEXT),
        "allocation": Key("global", TEXT, ALLOCATIONS),
        "max_layer_ratio": Key(MAX_LAYER_RATIO, FLOAT, above=0, maximum=1),
        "protect_stem": Key(True, BOOL),
        "steps": Key(STEPS, INT, minimum=1),
        "distill": Key(True, BOOL),
        "reconstruct": Key(None, BOOL),  # None: only when there is no fine-tuning
        "ratio": Key(None, FLOAT, above=0, maximum=0.99),  # the share of channels removed
        "min_relevance": Key(None, FLOAT, minimum=0),
        "target_macs": Key(None, FLOAT, above=0, maximum=1),  # fractions of the model's
        "target_params": Key(None, FLOAT, above=0, maximum=1),
        "rounds": Key(1, INT, minimum=1),
        "round_to": Key(1, INT, minimum=1),
        "min_channels": Key(1, INT, minimum=1),
        "exclude": Key([], LIST, items=TEXT),
        "samples": Key(512, INT, minimum=1),
        "fine_tune_epochs": Key(0, INT, minimum=0),
        "lr": Key(FINE_TUNE_LR, FLOAT, above=0),
    },
    "shrink": {
        "budget": Key(None, TEXT),  # e.g. "macs=0.5,arena=64KiB"; none: no shrink stage
        "depths": Key([0, 1, 2], LIST, minimum=0, items=INT),
        "widths": Key([1.0, 0.75, 0.5], LIST, above=0, maximum=1, items=FLOAT),
        "resolutions": Key(None, LIST, minimum=8, items=INT),
        "search": Key("refine", TEXT, ("refine", "grid")),
        "score": Key("bn", TEXT, ("bn", "tune")),
        "calibration": Key(256, INT, minimum=1),
        "top": Key(2, INT, minimum=1),
        "fine_tune_epochs": Key(1, INT, minimum=0),
        "lr": Key(1e-3, FLOAT, above=0),
        # The final fine-tunes learn from the classifier before the search too (with a cropper: the whole-image
        # classifier the crop stage started from, on whole images)
        "distill": Key(True, BOOL),
    },
    "cropper": {
        "enabled": Key(False, (bool,)),
        "labels": Key("auto", TEXT, LABEL_SOURCES),
        "resolution": Key(None, INT, minimum=8),  # the classifier's input side on crops (default: its own)
        # The cropper's architecture (tfscissor.models.cropper.build_cropper); unset, the default cropper is made
        # smaller until it fits tfscissor.crop.sizing's shares of the classifier at `resolution`.
        "view": Key(None, INT, minimum=8),
        "width": Key(None, FLOAT, above=0),
        "epochs": Key(CROPPER_EPOCHS, INT, minimum=1),
        "lr": Key(CROPPER_LEARNING_RATE, FLOAT, above=0),
        "finetune_epochs": Key(5, INT, minimum=0),
        "finetune_lr": Key(1e-3, FLOAT, above=0),
        "distill": Key(True, BOOL),  # the whole-image classifier teaches its copy on crops
        "mix": Key(0.5, FLOAT, minimum=0, maximum=1),
    },
    "quantize": {
        "method": Key("ptq", TEXT, METHODS),
        "samples": Key(200, INT, minimum=1),
        "epochs": Key(QAT_EPOCHS, INT, minimum=1),  # qat only
        "lr": Key(QAT_LEARNING_RATE, FLOAT, above=0),  # qat only
    },
    "compile": {"targets": Key(["tflm"], LIST, tuple(FORMATS)), "board": Key(None, TEXT, tuple(BOARDS))},
    "bench": {
        "devices": Key(["cpu"], LIST, tuple(DEVICES)),  # usb and pci also as usb:N, pci:N
        "runs": Key(100, INT, minimum=1),
        "warmup": Key(10, INT, minimum=0),
        "threads": Key(None, INT, minimum=1),
    },
    "distribute": {"strategy": Key("none", TEXT, STRATEGIES)},
}
_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
    bool: "true or false",
}


def load_recipe(path):
    """Read and validate a recipe file; return it with every default filled in."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"recipe {path} not found: give the path of a YAML recipe such as recipes/demo.yaml")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"recipe {path} is not UTF-8 text (byte {err.start}): save it as UTF-8") from None
    try:
        _refuse_aliases(text, path)
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UsageError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]} ({_mark(err)})") from err
    if not isinstance(data, dict):
        raise UsageError(f"recipe {path} must be a mapping of sections ({', '.join(SCHEMA)})")
    lines = _lines(root, path)
    recipe = _merge(SCHEMA, data, lines, path, ())
    _check_finite(recipe, path, lines, ())
    _check_together(recipe, path, lines)
    return recipe


def _refuse_aliases(text, path):
    """Refuse anchors and aliases before the document is built: a few hundred bytes of nested aliases expand
    to gigabytes ("billion laughs"), and a recipe has no need of them."""
    for event in yaml.parse(text):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise UsageError(
                f"recipe {path}, line {event.start_mark.line + 1}: YAML anchors and aliases (&name, *name) are not "
                "supported: write the value out"
            )


def _check_finite(node, path, lines, keypath):
    """Refuse .nan and .inf anywhere, free-form mappings (model.args) included: no setting means infinity."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, path, lines, (*keypath, key))
    elif isinstance(node, list):
        for item in node:
            _check_finite(item, path, lines, keypath)
    elif isinstance(node, float) and not math.isfinite(node):
        where = next((lines[k] for k in (keypath[:n] for n in range(len(keypath), 0, -1)) if k in lines), "?")
        raise UsageError(
            f"recipe {path}, line {where}: {'.'.join(map(str, keypath))} must be a finite number, got {node}"
        )


def _mark(err):
    mark = getattr(err, "problem_mark", None)
    return f"line {mark.line + 1}" if mark else "unknown line"


def _lines(node, path, prefix=()):
    """Key path -> 1-based line, so errors point at the line the user wrote."""
    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            keypath = (*prefix, key.value)
            if keypath in lines:
                # YAML would keep the last silently; one of the two is a mistake.
                raise UsageError(
                    f"recipe {path}, line {key.start_mark.line + 1}: {'.'.join(map(str, keypath))} is given twice "
                    f"(also line {lines[keypath]}): keep one"
                )
            lines[keypath] = key.start_mark.line + 1
            lines.update(_lines(value, path, keypath))
    return lines


def _where(path, lines, keypath):
    return f"recipe {path}, line {lines.get(tuple(keypath), '?')}"


def _merge(schema, data, lines, path, prefix):
    merged = {}
    for key, value in data.items():
        keypath = (*prefix, key)
        dotted = ".".join(map(str, keypath))
        if key not in schema:
            raise UsageError(
                f"{_where(path, lines, keypath)}: unknown key {dotted!r}; allowed here: {', '.join(schema)}"
            )
        spec = schema[key]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise UsageError(
                    f"{_where(path, lines, keypath)}: {dotted} must be a mapping with keys {', '.join(spec)}"
                )
            merged[key] = _merge(spec, value, lines, path, keypath)
        else:
            merged[key] = _check_value(spec, value, dotted, _where(path, lines, keypath))
    for key, spec in schema.items():
        if key not in merged:
            merged[key] = (
                _merge(spec, {}, lines, path, (*prefix, key)) if isinstance(spec, dict) else _copy(spec.default)
            )
    return merged


def _copy(value):
    return json.loads(json.dumps(value))


def _check_value(spec, value, dotted, where):
    if value is None and spec.default is None:
        return None
    # YAML's true/false are ints to Python; a count or a size must not accept them.
    if not isinstance(value, spec.types) or (isinstance(value, bool) and bool not in spec.types):
        wanted = " or ".join(_TYPE_NAMES[t] for t in spec.types if t is not int or float not in spec.types)
        example = f", for example [{spec.choices[0]}]" if spec.types == LIST and spec.choices else ""
        raise UsageError(f"{where}: {dotted} must be {wanted}{example}, got {value!r}")
    values = value if isinstance(value, list) else [value]
    for item in values if spec.items else []:
        if not isinstance(item, spec.items) or isinstance(item, bool):
            wanted = "numbers" if float in spec.items else "integers" if int in spec.items else "strings"
            raise UsageError(f"{where}: {dotted} must be a list of {wanted}, got {item!r} in it")
    for item in values:
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(f"{where}: {dotted} must be a finite number, got {item}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            _check_range(spec, item, dotted, where)
    for item in value if isinstance(value, list) and spec.choices else [value] if spec.choices else []:
        name, colon, index = str(item).partition(":")
        indexed = name in ("usb", "pci") and colon and index.isdigit()
        if item not in spec.choices and not indexed:
            has = f"has {item!r}" if isinstance(value, list) else f"is {item!r}"
            raise UsageError(f"{where}: {dotted} {has}; allowed: {', '.join(spec.choices)}")
    return _copy(value)


def _check_range(spec, number, dotted, where):
    bounds = (
        ("at least", spec.minimum, lambda bound: number < bound),
        ("above", spec.above, lambda bound: number <= bound),
        ("at most", spec.maximum, lambda bound: number > bound),
    )
    for wanted, bound, broken in bounds:
        if bound is not None and broken(bound):
            raise UsageError(f"{where}: {dotted} must be {wanted} {bound:g}, got {number!r}")


def _check_together(recipe, path, lines):
    """Rules across keys: one trim policy, a given model is not trained, QAT quantises one model."""
    trim = recipe["trim"]
    if sum(trim[key] is not None for key in POLICIES) != 1:
        raise UsageError(
            f"{_where(path, lines, ('trim',))}: give exactly one of " + ", ".join(f"trim.{key}" for key in POLICIES)
        )
    if recipe["model"]["path"] is not None:
        # train.batch_size still applies: trimming, cropping and shrinking fine-tune with it.
        trained = [f"train.{key}" for key in SCHEMA["train"] if key != "batch_size" and ("train", key) in lines]
        given = [f"model.{key}" for key in ("name", "args") if ("model", key) in lines] + trained
        if given:
            raise UsageError(
                f"{_where(path, lines, ('model', 'path'))}: model.path is a trained model, so {', '.join(given)} "
                "cannot apply: remove them, or remove model.path to build and train model.name"
            )
    if recipe["distribute"]["strategy"] == "multi_worker":
        raise UsageError(
            f"{_where(path, lines, ('distribute', 'strategy'))}: distribute.strategy multi_worker cannot train in "
            "Keras 3.15 (model.fit fails across workers: keras-team/keras#20585) and every recipe trains: use "
            "mirrored for the GPUs of one machine (tfscissor.models.distribute.strategy_for('multi_worker') still "
            "collects relevance statistics across workers)"
        )

    if recipe["trim"]["criterion"] not in criterion_names():
        raise UsageError(
            f"{_where(path, lines, ('trim', 'criterion'))}: trim.criterion is {recipe['trim']['criterion']!r}; "
            f"allowed: {', '.join(criterion_names())}"
        )
    if recipe["shrink"]["budget"] is not None:
        from tfscissor.shrink.budget import parse_budget

        try:
            parse_budget(recipe["shrink"]["budget"])
        except UsageError as err:
            raise UsageError(f"{_where(path, lines, ('shrink', 'budget'))}: shrink.budget: {err}") from None
    if recipe["quantize"]["method"] == "qat" and recipe["cropper"]["enabled"]:
        raise UsageError(
            f"{_where(path, lines, ('quantize', 'method'))}: quantize.method qat quantises one classifier, not a "
            "two-stage pipeline: use ptq, or set cropper.enabled to false"
        )
    if recipe["compile"]["board"] is not None and "tflm" not in recipe["compile"]["targets"]:
        raise UsageError(f"{_where(path, lines, ('compile', 'board'))}: compile.board needs tflm in compile.targets")
    coral = [d for d in recipe["bench"]["devices"] if d.partition(":")[0] in ("usb", "pci")]
    if coral and "edgetpu" not in recipe["compile"]["targets"]:
        raise UsageError(
            f"{_where(path, lines, ('bench', 'devices'))}: bench.devices {coral[0]} runs the Edge TPU model: "
            "add edgetpu to compile.targets"
        )

"""Recipes: a YAML pipeline from data to a compiled, benchmarked, summarised result.

A recipe names the data, the model, and the settings of each stage; unknown keys are errors that name the
key and its line. :func:`run_recipe` runs train -> trim (+ fine-tune) -> int8 -> TFLM project -> CPU bench
and writes every artifact atomically into the run directory, ending with ``summary.md``/``summary.json`` and
the report (``report.md``, ``report.html``, ``report/*.png``; see :mod:`tfscissor.report`).
"""

import json
import shlex
from pathlib import Path

import yaml

from tfscissor.errors import UsageError
from tfscissor.io import write_text
from tfscissor.report import SUMMARY_FORMAT, Stage, write_report

# Section -> allowed keys and their defaults. A recipe may leave out any key; it may not add one.
SCHEMA = {
    "name": None,
    "seed": 0,
    "data": "cluttered",
    "image_size": None,
    "model": {"name": "plain", "args": {}},
    "train": {"epochs": 10, "batch_size": 64, "lr": 1e-3},
    "trim": {
        "criterion": "relevance",
        "ratio": None,
        "min_relevance": None,
        "target_macs": None,
        "target_params": None,
        "rounds": 1,
        "round_to": 1,
        "min_channels": 1,
        "exclude": [],
        "samples": 512,
        "fine_tune_epochs": 0,
        "lr": 5e-4,
    },
    "quantize": {"samples": 200},
    "compile": {"targets": ["tflm"]},
    "bench": {"devices": ["cpu"], "runs": 100, "warmup": 10, "threads": None},
}
TRIM_POLICIES = ("ratio", "min_relevance", "target_macs", "target_params")
KNOWN_TARGETS = ("tflm",)
KNOWN_DEVICES = ("cpu",)


def load_recipe(path):
    """Read and validate a recipe file; return it with every default filled in."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"recipe {path} not found: give the path of a YAML recipe such as recipes/demo.yaml")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UsageError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0]} ({_mark(err)})") from err
    if not isinstance(data, dict):
        raise UsageError(f"recipe {path} must be a mapping of sections (data, model, train, ...)")
    return _merge(SCHEMA, data, _lines(root), path, ())


def _mark(err):
    mark = getattr(err, "problem_mark", None)
    return f"line {mark.line + 1}" if mark else "unknown line"


def _lines(node, prefix=()):
    """Key path -> 1-based line, so errors point at the line the user wrote."""
    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            keypath = (*prefix, key.value)
            lines[keypath] = key.start_mark.line + 1
            lines.update(_lines(value, keypath))
    return lines


def _merge(schema, data, lines, path, prefix):
    merged = {}
    for key, value in data.items():
        keypath = (*prefix, key)
        if key not in schema:
            raise UsageError(
                f"recipe {path}, line {lines.get(keypath, '?')}: unknown key {'.'.join(map(str, keypath))!r}; "
                f"allowed here: {', '.join(schema)}"
            )
        default = schema[key]
        if isinstance(default, dict) and default and not isinstance(value, dict):
            raise UsageError(
                f"recipe {path}, line {lines.get(keypath, '?')}: {'.'.join(keypath)} must be a mapping with keys {', '.join(default)}"
            )
        merged[key] = _merge(default, value, lines, path, keypath) if isinstance(default, dict) and default else value
    for key, default in schema.items():
        merged.setdefault(key, json.loads(json.dumps(default)))
    if not prefix:
        _check_choices(merged, path, lines)
    return merged


def _check_choices(recipe, path, lines):
    trim = recipe["trim"]
    if sum(trim[key] is not None for key in TRIM_POLICIES) != 1:
        raise UsageError(
            f"recipe {path}, line {lines.get(('trim',), '?')}: give exactly one of "
            + ", ".join(f"trim.{key}" for key in TRIM_POLICIES)
        )
    for section, key, known in (("compile", "targets", KNOWN_TARGETS), ("bench", "devices", KNOWN_DEVICES)):
        if not isinstance(recipe[section][key], list):
            raise UsageError(
                f"recipe {path}, line {lines.get((section, key), '?')}: {section}.{key} must be a list, "
                f"for example [{known[0]}]"
            )
        for value in recipe[section][key]:
            if value not in known:
                raise UsageError(
                    f"recipe {path}, line {lines.get((section, key), '?')}: {section}.{key} has {value!r}; "
                    f"allowed: {', '.join(known)}"
                )


COLUMNS = ["stage", "accuracy", "MACs", "params", "model bytes", "arena bytes", "latency ms"]


def run_recipe(recipe, run_dir, *, progress=False, callbacks=None):
    """Run ``recipe`` (as returned by :func:`load_recipe`) into ``run_dir``; return the summary dict.

    ``callbacks(desc)`` returns Keras callbacks to show training progress (the CLI's bars), or None.
    Each row of the summary is measured: accuracy on the validation split (int8 rows run in LiteRT), MACs
    and params from the Keras graph, model bytes of the ``.tflite``, arena bytes from the TFLM interpreter,
    and median LiteRT latency on this host's CPU.
    """
    from tfscissor.compile import write_tflm_project
    from tfscissor.data import load_data
    from tfscissor.io import write_bytes
    from tfscissor.models import build_model, save_model
    from tfscissor.models.training import train_classifier
    from tfscissor.progress import note
    from tfscissor.quantize import quantize_model
    from tfscissor.trim.stage import trim_and_fine_tune

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    make_callbacks = callbacks or (lambda desc: [])
    seed = recipe["seed"]
    image_size = recipe["image_size"]

    note(f"[1/5] data {recipe['data']}", progress)
    dataset = load_data(recipe["data"], image_size=image_size)
    note(f"[2/5] train {recipe['model']['name']} on {len(dataset.train)} images of {dataset.image_shape}", progress)
    try:
        model = build_model(
            recipe["model"]["name"],
            dataset.image_shape,
            dataset.num_classes,
            seed=seed,
            **_tuples(recipe["model"]["args"]),
        )
    except TypeError as err:
        raise UsageError(f"recipe model.args do not fit {recipe['model']['name']!r}: {err}") from err
    train = recipe["train"]
    train_classifier(
        model,
        dataset,
        epochs=train["epochs"],
        batch_size=train["batch_size"],
        learning_rate=train["lr"],
        seed=seed,
        callbacks=make_callbacks("train"),
    )
    save_model(model, run_dir / "baseline.keras")

    note("[3/5] trim", progress)
    trim = dict(recipe["trim"])
    trimmed = trim_and_fine_tune(
        model,
        dataset,
        samples=trim.pop("samples"),
        fine_tune_epochs=trim.pop("fine_tune_epochs"),
        learning_rate=trim.pop("lr"),
        batch_size=train["batch_size"],
        seed=seed,
        callbacks=make_callbacks("fine-tune"),
        progress=progress,
        **trim,
    )
    save_model(trimmed.model, run_dir / "trimmed.keras")
    trimmed.statistics.save(run_dir / "statistics.npz")
    write_text(run_dir / "trim.json", json.dumps(trimmed.report, indent=2))

    note("[4/5] quantize to int8", progress)
    quantized = quantize_model(trimmed.model, dataset, num_samples=recipe["quantize"]["samples"], seed=seed)
    write_bytes(run_dir / "trimmed_int8.tflite", quantized.tflite)
    project = None
    if "tflm" in recipe["compile"]["targets"]:
        project = write_tflm_project(
            quantized.tflite, run_dir / "firmware", labels=list(dataset.class_names), name="trimmed_int8"
        )

    note("[5/5] measure every stage", progress)
    rows = [
        _float_row("baseline (float)", model, trimmed.report["accuracy_before"], recipe),
        _float_row("trimmed (float)", trimmed.model, trimmed.report["accuracy_after"], recipe),
        _tflite_row("trimmed int8", trimmed.model, quantized.tflite, quantized.int8_accuracy, recipe, project),
    ]
    stages = _stages(recipe, dataset.class_names, rows, quantized.tflite, project)
    summary = {
        "format": SUMMARY_FORMAT,
        "recipe": recipe,
        "columns": COLUMNS,
        "rows": rows,
        "stages": [stage.to_dict() for stage in stages],
    }
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    write_text(run_dir / "summary.md", _markdown(recipe, rows))
    write_report(run_dir)
    return summary


def _stages(recipe, labels, rows, tflite, project):
    """What the report reads of each artifact (tfscissor.report.record): its row's numbers, the command that
    makes it by hand and, for the int8 model, its predicted Edge TPU mapping."""
    from tfscissor.compile import analyse_edgetpu

    commands = _commands(recipe, labels)
    analysis = analyse_edgetpu(tflite)
    edgetpu = {"mapped": analysis.mapped, "operations": len(analysis.verdicts), "source": "predicted"}
    baseline, trimmed, int8 = rows
    side_files = {"trim": "trim.json", "statistics": "statistics.npz"}
    stages = [
        Stage("baseline", baseline["stage"], "baseline.keras", command=commands["baseline"], **_measured(baseline)),
        Stage(
            "trimmed",
            trimmed["stage"],
            "trimmed.keras",
            command=commands["trimmed"],
            files=side_files,
            **_measured(trimmed),
        ),
        Stage(
            "int8", int8["stage"], "trimmed_int8.tflite", edgetpu=edgetpu, command=commands["int8"], **_measured(int8)
        ),
    ]
    if project is not None:
        # The same graph as the int8 model; accuracy and latency are not measured in TFLM.
        metrics = {"macs": int8["MACs"], "params": int8["params"], "model_bytes": project.model_bytes}
        stages.append(
            Stage(
                "compiled",
                "TFLM project",
                "firmware/",
                metrics={**metrics, "arena_bytes": project.arena_bytes},
                command=commands["compiled"],
            )
        )
    return stages


def _measured(row):
    latency = row["latency ms"]
    return {
        "metrics": {
            "accuracy": row["accuracy"],
            "macs": row["MACs"],
            "params": row["params"],
            "model_bytes": row["model bytes"],
            "arena_bytes": row["arena bytes"],
        },
        "latency_ms": {} if latency is None else {"cpu": latency},
    }


def _commands(recipe, labels):
    """The tfscissor command that makes each artifact by hand with the recipe's settings."""
    data, seed = shlex.quote(recipe["data"]), recipe["seed"]
    model, train, trim = recipe["model"], recipe["train"], recipe["trim"]
    args = "".join(f" --arg {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in (model["args"] or {}).items())
    size = f" --image-size {recipe['image_size']}" if recipe["image_size"] else ""
    options = "".join(
        f" --{key.replace('_', '-')} {shlex.quote(str(value))}"
        for key, value in trim.items()
        if key != "exclude" and value is not None
    )
    options += "".join(f" --exclude {shlex.quote(layer)}" for layer in trim["exclude"])
    # trim and quantize take no --seed, nor trim a --batch-size: they use 0 and 64, the runner the recipe's.
    trim_note = quantize_note = ""
    if seed != 0 or train["batch_size"] != 64:
        trim_note = f"  # the run fine-tuned with seed {seed}, batch size {train['batch_size']}; this uses 0, 64"
    if seed != 0:
        quantize_note = f"  # the run drew calibration images with seed {seed}; this uses 0"
    return {
        "baseline": f"tfscissor train --data {data} --model {shlex.quote(model['name'])}{args}{size} "
        f"--epochs {train['epochs']} --batch-size {train['batch_size']} --lr {train['lr']} --seed {seed} "
        "-o baseline.keras",
        "trimmed": f"tfscissor trim baseline.keras --data {data}{options} --save-stats statistics.npz "
        f"-o trimmed.keras{trim_note}",
        "int8": f"tfscissor quantize trimmed.keras --data {data} --samples {recipe['quantize']['samples']} "
        f"-o trimmed_int8.tflite{quantize_note}",
        "compiled": f"tfscissor compile trimmed_int8.tflite --target tflm --labels {shlex.quote(','.join(labels))} "
        "--name trimmed_int8 -o firmware",
    }


def _tuples(args):
    # YAML lists become tuples: builders take immutable sequences.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (args or {}).items()}


def _float_row(stage, model, accuracy, recipe):
    from tfscissor.quantize import to_tflite

    return _tflite_row(stage, model, to_tflite(model), accuracy, recipe, None)


def _tflite_row(stage, model, tflite, accuracy, recipe, project):
    from tfscissor.analysis import profile_model
    from tfscissor.bench import bench_cpu
    from tfscissor.compile import measure_arena

    profile = profile_model(model)
    bench = recipe["bench"]
    latency = None
    if "cpu" in bench["devices"]:
        latency = bench_cpu(tflite, runs=bench["runs"], warmup=bench["warmup"], num_threads=bench["threads"])[
            "median_ms"
        ]
    return {
        "stage": stage,
        "accuracy": round(accuracy, 4),
        "MACs": profile.macs,
        "params": profile.params,
        "model bytes": len(tflite),
        "arena bytes": project.measured_arena_bytes if project is not None else measure_arena(tflite),
        "latency ms": None if latency is None else round(latency, 3),
    }


def _markdown(recipe, rows):
    header = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = [
        "| "
        + " | ".join(
            "-" if row[c] is None else f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in COLUMNS
        )
        + " |"
        for row in rows
    ]
    return "\n".join(
        [
            f"# {recipe['name'] or 'tfscissor run'}",
            "",
            f"Data `{recipe['data']}`, model `{recipe['model']['name']}`. Accuracy on the validation split; latency is the",
            "median of LiteRT on this host's CPU; arena bytes are measured with the TFLM interpreter (no margin).",
            "",
            header,
            rule,
            *body,
            "",
        ]
    )

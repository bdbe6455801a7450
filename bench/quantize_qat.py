"""Benchmark of quantisation-aware training (issue 6) on cluttered Fashion-MNIST: float vs post-training int8
(PTQ) vs QAT int8 accuracy, for a MobileNetV2-style model (depthwise convolutions and ReLU6, the kind PTQ is
known to hurt) and a ResNet-style one.

Each model is trained from scratch (``epochs`` at ``lr``, cosine, batch 64), then:

* PTQ: :func:`tfscissor.quantize.quantize_model` on the trained model (``calibration`` images);
* control: the trained model fine-tuned in float for the QAT budget (``qat_epochs`` at ``qat_lr``), then PTQ,
  since QAT adds training and the extra training alone might explain a gain;
* QAT: :func:`tfscissor.quantize.quantize_model_qat` on the trained model with the same budget.

Every accuracy is on the val split (objects from Fashion-MNIST's test set); int8 models run in LiteRT, one
image at a time, as deployed. Writes ``bench/runs/quantize_qat.json`` and ``bench/runs/quantize_qat.md`` (also
its section of ``bench/RESULTS.md``, and printed). ``--quick`` is a smoke run (tiny data, 1 epoch) that writes
``bench/runs/quantize_qat_quick.*`` and leaves ``bench/RESULTS.md`` alone. Progress goes to stderr.

    .venv/bin/python bench/quantize_qat.py           # about 12 minutes on 2 CPU cores
    .venv/bin/python bench/quantize_qat.py --report  # render the saved run again
    .venv/bin/python bench/quantize_qat.py --quick   # about 2 minutes
"""

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As the tfscissor command does (tfscissor/cli/app.py, ONEDNN_DEFAULT): oneDNN crashes training some trimmed models.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfscissor.io import write_text  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from crop_pipeline import FASHION, EpochLine  # noqa: E402
from results import join_datasets, log, machine, update_section  # noqa: E402

RUNS = ROOT / "bench" / "runs"
MODELS = {
    "mobilenetv2": {"alpha": 0.5, "head_width": 128},
    "resnet": {"blocks": (1, 1, 1), "widths": (16, 32, 64)},
}
FULL = {
    "size": 32,
    "n": 5000,
    "data_seeds": 2,
    "epochs": 12,
    "lr": 2e-3,
    "batch": 64,
    "qat_epochs": 2,
    "qat_lr": 1e-4,
    "qat_batch": 32,
    "calibration": 256,
    "seed": 0,
}
QUICK = {**FULL, "n": 600, "data_seeds": 1, "epochs": 1, "qat_epochs": 1, "calibration": 64}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on tiny data")
    parser.add_argument("--report", action="store_true", help="render the saved run again")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None)
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in FULL and v is not None})
    return args, settings


def load(settings):
    from tfscissor.data import load_data

    specs = [
        f"cluttered:source=idx:{FASHION},size={settings['size']},n={settings['n']},classes=10,seed={seed}"
        for seed in range(settings["data_seeds"])
    ]
    return specs, join_datasets([load_data(spec) for spec in specs])


def run_model(name, dataset, settings):
    from tfscissor.models import build_model
    from tfscissor.models.graph import inline_nested
    from tfscissor.models.training import evaluate_classifier, train_classifier
    from tfscissor.quantize import quantize_model, quantize_model_qat

    def timed(fn):
        start = time.perf_counter()
        return fn(), time.perf_counter() - start

    model = build_model(name, dataset.image_shape, dataset.num_classes, seed=settings["seed"], **MODELS[name])
    log(f"{name}: train {settings['epochs']} epochs")
    _, train_s = timed(
        lambda: train_classifier(
            model,
            dataset,
            epochs=settings["epochs"],
            batch_size=settings["batch"],
            learning_rate=settings["lr"],
            seed=settings["seed"],
            callbacks=[EpochLine(name)],
        )
    )
    log(f"{name}: PTQ")
    ptq, ptq_s = timed(
        lambda: quantize_model(model, dataset, num_samples=settings["calibration"], seed=settings["seed"])
    )
    log(f"{name}: control, float fine-tune {settings['qat_epochs']} epochs then PTQ")
    control = inline_nested(model)  # a copy with the weights: the QAT row starts from the same trained model

    def fine_tune_then_ptq():
        train_classifier(
            control,
            dataset,
            epochs=settings["qat_epochs"],
            batch_size=settings["qat_batch"],
            learning_rate=settings["qat_lr"],
            seed=settings["seed"],
            callbacks=[EpochLine(f"{name} control")],
        )
        return quantize_model(control, dataset, num_samples=settings["calibration"], seed=settings["seed"])

    tuned, control_s = timed(fine_tune_then_ptq)
    log(f"{name}: QAT {settings['qat_epochs']} epochs")
    qat, qat_s = timed(
        lambda: quantize_model_qat(
            model,
            dataset,
            settings["qat_epochs"],
            learning_rate=settings["qat_lr"],
            batch_size=settings["qat_batch"],
            num_samples=settings["calibration"],
            seed=settings["seed"],
            compare_ptq=False,
            callbacks=[EpochLine(f"{name} QAT")],
        )
    )
    row = {
        "model": name,
        "args": {k: list(v) if isinstance(v, tuple) else v for k, v in MODELS[name].items()},
        "params": int(model.count_params()),
        "float": ptq.float_accuracy,
        "ptq": ptq.int8_accuracy,
        "control_float": evaluate_classifier(control, dataset.val),
        "control_ptq": tuned.int8_accuracy,
        "qat_fake_quant": qat.fake_quant_accuracy,
        "qat": qat.int8_accuracy,
        "ptq_bytes": len(ptq.tflite),
        "qat_bytes": len(qat.tflite),
        "qat_input": list(qat.input_quantization),
        "qat_output": list(qat.output_quantization),
        "ptq_input": list(ptq.input_quantization),
        "seconds": {"train": train_s, "ptq": ptq_s, "control": control_s, "qat": qat_s},
    }
    log(
        f"{name}: float {row['float']:.4f}, PTQ {row['ptq']:.4f}, control PTQ {row['control_ptq']:.4f}, "
        f"QAT {row['qat']:.4f}"
    )
    return row


def points(a, b):
    return f"{100 * (a - b):+.2f}"


def report(result):
    s = result["settings"]
    lines = [
        "## Quantisation-aware training (issue 6): float vs PTQ vs QAT int8 on cluttered Fashion-MNIST",
        "",
        f"- Command: `{result['command']}` (whole run {result['minutes']:.1f} min)",
        f"- Machine: {result['machine']}",
        f"- Date: {result['date']}",
        f"- Data: `{result['specs'][0]}`"
        + (f" joined with the same at seed=1..{len(result['specs']) - 1}" if len(result["specs"]) > 1 else "")
        + f": {result['train_images']} train / {result['val_images']} val images of {s['size']}x{s['size']}x3, "
        "10 classes (val objects from Fashion-MNIST's test set)",
        f"- Each model: trained {s['epochs']} epochs (lr {s['lr']:g}, cosine, batch {s['batch']}, seed {s['seed']}); "
        f"PTQ calibrated on {s['calibration']} train images; the control and QAT both get {s['qat_epochs']} more "
        f"epochs at lr {s['qat_lr']:g} (cosine, batch {s['qat_batch']}) from the trained model, the control in "
        f"float then PTQ, QAT with tfmot's default 8-bit scheme on the tf-keras mirror",
        f"- Accuracy: top-1 on the val split ({result['val_images']} images: one image is "
        f"{100 / result['val_images']:.3f} points); int8 models in LiteRT, one image at a time; points are vs float",
        "",
        "| model | params | float | PTQ int8 | control: float fine-tuned | control PTQ int8 | QAT fake-quant "
        "| QAT int8 | QAT vs PTQ (points) | QAT input scale, zero point | QAT output scale, zero point "
        "| s train / PTQ / control / QAT |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        t = r["seconds"]
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['float']:.4f} | {r['ptq']:.4f} ({points(r['ptq'], r['float'])}) "
            f"| {r['control_float']:.4f} | {r['control_ptq']:.4f} ({points(r['control_ptq'], r['float'])}) "
            f"| {r['qat_fake_quant']:.4f} | **{r['qat']:.4f}** ({points(r['qat'], r['float'])}) "
            f"| {points(r['qat'], r['ptq'])} | {r['qat_input'][0]:.6g}, {r['qat_input'][1]} "
            f"| {r['qat_output'][0]:.6g}, {r['qat_output'][1]} "
            f"| {t['train']:.0f} / {t['ptq']:.0f} / {t['control']:.0f} / {t['qat']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    args, settings = parse_args(argv)
    name = "quantize_qat_quick" if args.quick else "quantize_qat"
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.report:
        return publish(json.loads((RUNS / f"{name}.json").read_text()), name, args.quick)
    started = time.perf_counter()
    command = " ".join(["python bench/quantize_qat.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    specs, dataset = load(settings)
    log(f"data {specs[0]} (+{len(specs) - 1} seeds): {len(dataset.train)} train / {len(dataset.val)} val")
    result = {
        "command": command,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "settings": settings,
        "specs": specs,
        "train_images": len(dataset.train),
        "val_images": len(dataset.val),
        "rows": [],
    }
    for model in args.models.split(","):
        if model not in MODELS:
            raise SystemExit(f"unknown model {model!r}: use {', '.join(MODELS)}")
        result["rows"].append(run_model(model, dataset, settings))
        result["minutes"] = (time.perf_counter() - started) / 60
        write_text(RUNS / f"{name}.json", json.dumps(result, indent=1))
    publish(result, name, args.quick)


def publish(result, name, quick):
    markdown = report(result)
    write_text(RUNS / f"{name}.md", markdown)
    if not quick:
        update_section("quantize_qat", markdown)
    print(markdown)


if __name__ == "__main__":
    main()

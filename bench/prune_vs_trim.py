"""Channel trimming against tensorflow-model-optimization's ``prune_low_magnitude`` at equal sparsity (issue 7),
on cluttered Fashion-MNIST: accuracy, ``.tflite`` bytes (raw and gzip-compressed) and measured LiteRT latency.

One ResNet-style baseline is trained and saved under ``bench/runs/``. At each sparsity level (a fraction of the
baseline's parameters removed) two models start from it and get the same fine-tune (epochs, learning rate,
cosine decay, batch, seed, validation each epoch):

* trim: :func:`tfscissor.trim.stage.run_trim` with ``target_params`` at the stage's defaults (taylor
  saliency, 5 surgery steps, layer limit, protected stem, batch norms re-estimated, then the fine-tune distilled
  from the baseline): whole channels are removed, so the result is a smaller dense model;
* tfmot: the baseline's tf-keras mirror (:func:`tfscissor.quantize.build_mirror`), every Conv2D and Dense
  wrapped in ``prune_low_magnitude`` with a ``PolynomialDecay`` schedule from 0 to the sparsity over the first
  two thirds of the fine-tune (``UpdatePruningStep``), then ``strip_pruning`` and the weights copied back into a
  Keras 3 copy of the baseline. Its kernel sparsity is set so that its count of non-zero parameters equals the
  trimmed model's: both remove the same number of parameters.

A control row fine-tunes the unpruned baseline with the same budget (the fine-tune alone adds training). Every
model is converted the same way (:func:`tfscissor.quantize.to_tflite`: float32, and full int8 calibrated on
``calibration`` train images); the tfmot models also with the converter's ``EXPERIMENTAL_SPARSITY``, which
stores sparse float32 weights in a compressed format. All ``.tflite`` files are timed in one process with
:func:`tfscissor.bench.bench_cpu` at the same thread count, in ``rounds`` interleaved rounds (the order rotates
each round) so that a slow spell of the shared machine falls on all of them.

Writes ``bench/runs/prune_vs_trim.json``, the ``.tflite`` files under ``bench/runs/prune_vs_trim/``,
``bench/runs/prune_vs_trim.md`` (also its section of ``bench/RESULTS.md``, and printed) and the plot
``bench/prune_vs_trim.png``. ``--quick`` is a smoke run that writes ``bench/runs/prune_vs_trim_quick.*`` and leaves
``bench/RESULTS.md`` alone. Progress goes to stderr.

    .venv/bin/python bench/prune_vs_trim.py            # about 15 minutes on 2 CPU cores (make bench-prune)
    .venv/bin/python bench/prune_vs_trim.py --report   # render the saved run again
    .venv/bin/python bench/prune_vs_trim.py --quick    # about 2 minutes
"""

import argparse
import datetime
import gzip
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As the tfscissor command does (tfscissor/cli/app.py, ONEDNN_DEFAULT): oneDNN crashes training some trimmed models.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tfscissor.io import write_text  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from crop_pipeline import FASHION, EpochLine  # noqa: E402
from results import join_datasets, log, machine, update_section  # noqa: E402

RUNS = ROOT / "bench" / "runs"
ARCH = {"widths": (16, 32, 64), "blocks": (1, 1, 1)}
PRUNED_LAYERS = ("Conv2D", "Dense")  # what prune_low_magnitude prunes in this model (kernels, not biases)

# Sized so that the whole benchmark runs in about 15 minutes on 2 shared CPU cores.
FULL = {
    "size": 32,
    "n": 5000,
    "data_seeds": 2,
    "min_scale": 0.6,
    "max_scale": 0.95,
    "clutter": 1,
    "epochs": 10,
    "lr": 2e-3,
    "batch": 64,
    "fine_tune_epochs": 3,
    "fine_tune_lr": 2e-3,
    "samples": 512,
    "sparsities": "0.5,0.75",
    "calibration": 256,
    "threads": 1,
    "rounds": 9,
    "runs": 500,
    "seed": 0,
}
QUICK = {**FULL, "n": 800, "data_seeds": 1, "epochs": 2, "fine_tune_epochs": 1, "calibration": 64, "rounds": 2}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on tiny data (about 2 minutes)")
    parser.add_argument("--report", action="store_true", help="render the saved run again")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=f"({value})")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in FULL and v is not None})
    settings["sparsities"] = [float(s) for s in str(settings["sparsities"]).split(",")]
    return args, settings


def load(settings):
    from tfscissor.data import load_data

    specs = [
        f"cluttered:source=idx:{FASHION},size={settings['size']},n={settings['n']},classes=10,seed={seed},"
        f"min_scale={settings['min_scale']},max_scale={settings['max_scale']},clutter={settings['clutter']}"
        for seed in range(settings["data_seeds"])
    ]
    return specs, join_datasets([load_data(spec) for spec in specs])


# --- the models ---------------------------------------------------------------------------------------------


def timed(fn):
    start = time.perf_counter()
    return fn(), time.perf_counter() - start


def train_baseline(dataset, settings, path):
    from tfscissor.models import build_model, save_model
    from tfscissor.models.training import train_classifier

    model = build_model("resnet", dataset.image_shape, dataset.num_classes, seed=settings["seed"], **ARCH)
    _, seconds = timed(
        lambda: train_classifier(
            model,
            dataset,
            epochs=settings["epochs"],
            batch_size=settings["batch"],
            learning_rate=settings["lr"],
            seed=settings["seed"],
            callbacks=[EpochLine("baseline")],
        )
    )
    save_model(model, path)
    return model, seconds


def control(baseline_path, dataset, settings):
    """The baseline fine-tuned again with the budget every pruned model gets."""
    from tfscissor.models import load_model
    from tfscissor.models.training import train_classifier

    model = load_model(baseline_path)
    _, seconds = timed(
        lambda: train_classifier(
            model,
            dataset,
            epochs=settings["fine_tune_epochs"],
            batch_size=settings["batch"],
            learning_rate=settings["fine_tune_lr"],
            seed=settings["seed"],
            callbacks=[EpochLine("control")],
        )
    )
    return model, {"seconds": seconds}


def trim(baseline_path, dataset, settings, sparsity):
    from tfscissor.models import load_model
    from tfscissor.trim.stage import run_trim

    result, seconds = timed(
        lambda: run_trim(
            load_model(baseline_path),
            dataset,
            samples=settings["samples"],
            fine_tune_epochs=settings["fine_tune_epochs"],
            learning_rate=settings["fine_tune_lr"],
            batch_size=settings["batch"],
            seed=settings["seed"],
            target_params=1.0 - sparsity,
            callbacks=[EpochLine(f"trim {sparsity:.0%}")],
        )
    )
    report = result.report
    return result.model, {"seconds": seconds, "accuracy_trimmed": report["accuracy_trimmed"]}


def prunable_params(model):
    """Parameters in the kernels ``prune_low_magnitude`` prunes (Conv2D and Dense kernels)."""
    return sum(int(np.prod(layer.kernel.shape)) for layer in model.layers if type(layer).__name__ in PRUNED_LAYERS)


def tf_keras_epoch_line(tf_keras, desc):
    """EpochLine for a tf-keras fit."""

    class Line(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{k} {float(v):.3f}" for k, v in (logs or {}).items() if k != "lr")
            log(
                f"  {desc} epoch {epoch + 1}/{self.params['epochs']}: {time.perf_counter() - self.start:.1f} s, {shown}"
            )

    return Line()


def prune(baseline_path, dataset, settings, kernel_sparsity, desc):
    """``prune_low_magnitude`` on the tf-keras mirror of the baseline, fine-tuned like the trimmed model, stripped
    and copied back into a Keras 3 copy of the baseline (so it converts exactly as the others do)."""
    from tfscissor.models import load_model
    from tfscissor.quantize import build_mirror, check_mirror
    from tfscissor.quantize.qat import _import_tfmot

    tf_keras, tfmot = _import_tfmot()
    sparsity_api = tfmot.sparsity.keras
    model = load_model(baseline_path)
    probe = dataset.val.images[:32].astype(np.float32)
    mirror = build_mirror(model)
    check_mirror(model, mirror, probe)

    batches = -(-len(dataset.train) // settings["batch"])
    steps = settings["fine_tune_epochs"] * batches
    end_step = max(1, (2 * steps) // 3)
    schedule = sparsity_api.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=kernel_sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=max(1, end_step // 10),
    )

    def wrap(layer):
        # prune_low_magnitude refuses the whole model (its Rescaling layer is not in tfmot's registry), so
        # every prunable layer is wrapped on its own, as tfmot's guide does for a partial model.
        if type(layer).__name__ in PRUNED_LAYERS:
            return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = tf_keras.models.clone_model(mirror, clone_function=wrap)  # the layers, weights and all, are reused
    check_mirror(model, wrapped, probe)
    start = time.perf_counter()
    tf_keras.utils.set_random_seed(settings["seed"])
    wrapped.compile(
        optimizer=tf_keras.optimizers.Adam(tf_keras.optimizers.schedules.CosineDecay(settings["fine_tune_lr"], steps)),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    wrapped.fit(
        dataset.train.images.astype(np.float32),
        dataset.train.labels,
        validation_data=(dataset.val.images.astype(np.float32), dataset.val.labels),
        epochs=settings["fine_tune_epochs"],
        batch_size=settings["batch"],
        shuffle=True,
        verbose=0,
        callbacks=[sparsity_api.UpdatePruningStep(), tf_keras_epoch_line(tf_keras, desc)],
    )
    seconds = time.perf_counter() - start
    stripped = sparsity_api.strip_pruning(wrapped)
    for layer in stripped.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    check_mirror(model, stripped, probe)  # the Keras 3 copy computes what the pruned tf-keras model does
    zeros = {
        layer.name: 1.0 - np.count_nonzero(layer.kernel.numpy()) / int(np.prod(layer.kernel.shape))
        for layer in model.layers
        if type(layer).__name__ in PRUNED_LAYERS
    }
    return model, {"seconds": seconds, "kernel_sparsity": kernel_sparsity, "layer_sparsity": zeros}


# --- measurements -------------------------------------------------------------------------------------------


def nonzero_params(model):
    return int(sum(np.count_nonzero(w) for w in model.get_weights()))


def sparse_macs(model, profile):
    """MACs with every multiplication by a zero weight skipped: a count, not what a dense kernel runs."""
    rows = {row.name: row.macs for row in profile.layers}
    total = profile.macs
    for layer in model.layers:
        if type(layer).__name__ in PRUNED_LAYERS:
            kernel = layer.kernel.numpy()
            total -= round(rows[layer.name] * (1.0 - np.count_nonzero(kernel) / kernel.size))
    return int(total)


def to_sparse_tflite(model, images=None, settings=None):
    """``.tflite`` converted with the converter's EXPERIMENTAL_SPARSITY (sparse weights stored compressed): float32,
    or with ``images`` full int8 calibrated as :func:`tfscissor.quantize.quantize_int8` calibrates."""
    import tensorflow as tf

    signature = [tf.TensorSpec((1, *tensor.shape[1:]), tensor.dtype) for tensor in model.inputs]
    with tempfile.TemporaryDirectory() as export_dir:
        model.export(export_dir, verbose=False, input_signature=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(export_dir)
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        if images is not None:
            rng = np.random.default_rng(settings["seed"])
            chosen = np.asarray(images, np.float32)[rng.permutation(len(images))[: settings["calibration"]]]
            converter.optimizations.insert(0, tf.lite.Optimize.DEFAULT)
            converter.representative_dataset = lambda: ([image[None]] for image in chosen)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return converter.convert()


def describe(name, model, dataset, settings, record, out_dir, sparse=False):
    """Counts, accuracies and ``.tflite`` files of one model; the files are written to ``out_dir``."""
    from tfscissor.analysis import profile_model
    from tfscissor.deploy.litert import TFLiteModel
    from tfscissor.errors import ModelError
    from tfscissor.models.training import evaluate_classifier
    from tfscissor.quantize import quantize_int8, to_tflite

    profile = profile_model(model)
    files = {
        "float32": to_tflite(model),
        "int8": quantize_int8(model, dataset.train.images, num_samples=settings["calibration"], seed=settings["seed"]),
    }
    if sparse:
        files["float32 sparse"] = to_sparse_tflite(model)
        files["int8 sparse"] = to_sparse_tflite(model, dataset.train.images, settings)
    formats, failed = {}, {}
    for fmt, data in files.items():
        try:
            runner = TFLiteModel(data, name=f"{name} {fmt}")
        except ModelError as err:  # LiteRT refuses some sparse encodings; say so rather than stop
            failed[fmt] = str(err)
            log(f"{name} {fmt}: {err}")
            continue
        path = out_dir / f"{name.replace(' ', '_').replace('%', '')}_{fmt.replace(' ', '_')}.tflite"
        path.write_bytes(data)
        formats[fmt] = {
            "file": str(path.relative_to(ROOT)),
            "bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, 9)),
            "accuracy": runner.accuracy(dataset.val.images, dataset.val.labels),
        }
    return {
        "name": name,
        **record,
        "params": profile.params,
        "nonzero_params": nonzero_params(model),
        "prunable_params": prunable_params(model),
        "macs": profile.macs,
        "sparse_macs": sparse_macs(model, profile),
        "accuracy": evaluate_classifier(model, dataset.val),
        "formats": formats,
        "failed": failed,
    }


def measure_latency(rows, settings):
    """Every ``.tflite`` of ``rows`` timed with bench_cpu in interleaved rounds; adds medians to the rows."""
    from tfscissor.bench import bench_cpu

    jobs = [(row, fmt) for row in rows for fmt in row["formats"]]
    medians = {(row["name"], fmt): [] for row, fmt in jobs}
    for index in range(settings["rounds"]):
        shift = index % len(jobs)
        for row, fmt in jobs[shift:] + jobs[:shift]:
            result = bench_cpu(
                ROOT / row["formats"][fmt]["file"],
                runs=settings["runs"],
                warmup=settings["runs"] // 10,
                num_threads=settings["threads"],
            )
            medians[(row["name"], fmt)].append(result["median_ms"])
        log(f"latency round {index + 1}/{settings['rounds']} done")
    for row, fmt in jobs:
        values = medians[(row["name"], fmt)]
        row["formats"][fmt].update(
            {"median_ms": statistics.median(values), "low_ms": min(values), "high_ms": max(values), "rounds": values}
        )


# --- report -------------------------------------------------------------------------------------------------


def kind_of(row):
    return row["name"].split(" ", 1)[0]


def markdown(result):
    s, rows = result["settings"], result["rows"]
    base = rows[0]
    by_name = {row["name"]: row for row in rows}
    cpu = result["cpu"]
    lines = [
        "## Channel trimming vs tfmot `prune_low_magnitude` at equal sparsity (issue 7), cluttered Fashion-MNIST",
        "",
        f"- Command: `{result['command']}` (`make bench-prune`; whole run {result['minutes']:.1f} min)",
        f"- Machine: {result['machine']}, tensorflow-model-optimization {result['versions']['tfmot']}, ai-edge-litert "
        f"{result['versions']['litert']}; load average {result['load_start']:.2f} at the start, "
        f"{result['load_end']:.2f} at the end (other work on the machine slows the timings, not the accuracies)",
        f"- Date: {result['date']}",
        f"- Data: `{result['specs'][0]}`"
        + (
            f" joined with the same at seed={', '.join(str(i) for i in range(1, len(result['specs'])))}"
            * (len(result["specs"]) > 1)
        )
        + f": {result['train_images']} train / {result['val_images']} val images of {s['size']}x{s['size']}x3, "
        f"10 classes; val objects come from Fashion-MNIST's test set and are used for nothing but these figures "
        f"(one val image is {100 / result['val_images']:.3f} points)",
        f"- Baseline: `resnet` widths {list(ARCH['widths'])}, blocks {list(ARCH['blocks'])}, {s['epochs']} epochs at "
        f"lr {s['lr']:g} (cosine), batch {s['batch']}, seed {s['seed']} ({result['baseline_seconds']:.0f} s)",
        f"- Every other row starts from the saved baseline and gets the same fine-tune: {s['fine_tune_epochs']} "
        f"epochs at lr {s['fine_tune_lr']:g} (Adam, cosine to 0), batch {s['batch']}, seed {s['seed']}. **trim**: "
        f"`run_trim(target_params=1 - sparsity, samples={s['samples']})` at the stage's defaults (taylor, "
        "5 steps, then the fine-tune distilled from the baseline; tfmot's fine-tune has the labels alone). **tfmot**: every Conv2D and Dense of the tf-keras mirror wrapped in `prune_low_magnitude` "
        "(`PolynomialDecay` from 0 to the kernel sparsity over the first two thirds of the fine-tune, "
        "`UpdatePruningStep`), `strip_pruning`, weights copied back into the Keras 3 model. Its kernel sparsity "
        "is chosen so that it keeps as many non-zero parameters as the trimmed model (equal sparsity in "
        "parameters removed; tfmot cannot prune batch-norm parameters, trimming removes them with their channels). "
        "**control**: the baseline fine-tuned again (no pruning), since the fine-tune itself adds training.",
        f"- Conversion: `to_tflite` for every model (float32; full int8 calibrated on {s['calibration']} train images, "
        "batch norm folded into the convolutions, zeros stay zeros); `float32 sparse` is the tfmot model converted "
        "with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY` (sparse weights stored compressed, densified by the "
        "runtime). Accuracy: top-1 on the val split; int8 in LiteRT one image at a time, as deployed.",
        f"- Latency: `tfscissor.bench.bench_cpu` (LiteRT, XNNPACK, {cpu['threads']} thread"
        f"{'s' * (cpu['threads'] > 1)}, batch 1), {cpu['runs']} timed runs after {cpu['runs'] // 10} warm-up per "
        f"file and round, {cpu['rounds']} rounds; every file runs once per round and the order rotates each round. "
        "Figure: median over rounds of each round's median, with the lowest and highest round median.",
        "- MACs are counted on the Keras graph (a model figure, not a measurement); 'MACs, zeros skipped' is the "
        "count if every multiplication by a zero weight were skipped, which LiteRT's dense kernels do not do.",
        "",
        "| model | params | non-zero params (of baseline) | MACs | MACs, zeros skipped | val accuracy (float) "
        "| vs baseline (points) | int8 accuracy (LiteRT) | fine-tune s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        tune = f"{row['seconds']:.0f}" if row["name"] != "baseline" else ""
        trimmed = f" (before fine-tune {row['accuracy_trimmed']:.4f})" if "accuracy_trimmed" in row else ""
        lines.append(
            f"| {row['name']} | {row['params']:,} | {row['nonzero_params']:,} "
            f"({row['nonzero_params'] / base['nonzero_params']:.1%}) | {row['macs']:,} | {row['sparse_macs']:,} | "
            f"{row['accuracy']:.4f}{trimmed} | {100 * (row['accuracy'] - base['accuracy']):+.2f} | "
            f"{row['formats']['int8']['accuracy']:.4f} | {tune} |"
        )
    lines += [
        "",
        "| model | format | .tflite bytes | gzip -9 bytes | median ms | range ms | bytes vs baseline | gzip vs baseline "
        "| latency vs baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for fmt, f in row["formats"].items():
            ref = base["formats"]["int8" if fmt == "int8" else "float32"]
            lines.append(
                f"| {row['name']} | {fmt} | {f['bytes']:,} | {f['gzip_bytes']:,} | {f['median_ms']:.3f} | "
                f"{f['low_ms']:.3f}-{f['high_ms']:.3f} | {f['bytes'] / ref['bytes']:.2f}x | "
                f"{f['gzip_bytes'] / ref['gzip_bytes']:.2f}x | {f['median_ms'] / ref['median_ms']:.2f}x |"
            )
    lines += ["", *findings(result, by_name), ""]
    if result.get("plot"):
        lines += [f"![trim vs prune_low_magnitude]({result['plot']})", ""]
    return "\n".join(lines)


def findings(result, by_name):
    """What the table shows, in words computed from it."""
    base = by_name["baseline"]
    lines = []
    for sparsity in result["settings"]["sparsities"]:
        t, p = by_name.get(f"trim {sparsity:.0%}"), by_name.get(f"tfmot {sparsity:.0%}")
        if not (t and p):
            continue
        ti, pi = t["formats"]["int8"], p["formats"]["int8"]
        lines.append(
            f"- At {sparsity:.0%} of the parameters removed ({t['nonzero_params']:,} vs {p['nonzero_params']:,} "
            f"non-zero): accuracy trim {t['accuracy']:.4f} vs tfmot {p['accuracy']:.4f} "
            f"({100 * (t['accuracy'] - p['accuracy']):+.2f} points for trim; int8 "
            f"{100 * (ti['accuracy'] - pi['accuracy']):+.2f}); int8 file {ti['bytes']:,} vs {pi['bytes']:,} bytes "
            f"({ti['bytes'] / pi['bytes']:.2f}x), gzip -9 {ti['gzip_bytes']:,} vs {pi['gzip_bytes']:,} "
            f"({ti['gzip_bytes'] / pi['gzip_bytes']:.2f}x); int8 latency {ti['median_ms']:.3f} vs "
            f"{pi['median_ms']:.3f} ms ({ti['median_ms'] / pi['median_ms']:.2f}x; baseline "
            f"{base['formats']['int8']['median_ms']:.3f} ms)."
        )
    pairs = [
        (sparsity, by_name[f"trim {sparsity:.0%}"], by_name[f"tfmot {sparsity:.0%}"])
        for sparsity in result["settings"]["sparsities"]
        if f"trim {sparsity:.0%}" in by_name and f"tfmot {sparsity:.0%}" in by_name
    ]
    if pairs:
        gaps = ", ".join(f"{100 * (p['accuracy'] - t['accuracy']):+.2f} points at {s:.0%}" for s, t, p in pairs)
        control = by_name.get("control")
        lines.append(
            f"- Accuracy at equal non-zero parameters, tfmot minus trim: {gaps}. Removing single weights is "
            "finer-grained than removing whole channels (which also takes their batch-norm parameters and leaves "
            "a thinner network), so at the same parameter count masks can keep more accuracy; trimming's gain is "
            "in what runs. One seed per row: gaps of about a point are within the spread between seeds (see the "
            "seed ranges of the trimming criteria section)"
            + (
                f"; the control shows what the fine-tune alone does "
                f"({100 * (control['accuracy'] - base['accuracy']):+.2f} points)."
                if control
                else "."
            )
        )
    lines += [
        f"- At this size (a {result['settings']['size']}-px input, {base['macs'] / 1e6:.1f} M MACs, "
        f"{base['formats']['int8']['median_ms']:.3f} ms in int8) fixed per-inference and per-op costs weigh, so "
        "the trimmed models' latency falls less than their MACs. Fine-tune seconds are "
        "wall-clock on a shared machine and include, for trim, the statistics and the surgery.",
        "- Masks leave the tensors dense: the tfmot models have the baseline's shapes, so their raw `.tflite` bytes "
        "and their latency stay the baseline's (the dense kernels multiply the zeros too). Their zeros pay off "
        "only under compression (gzip, a compressed download or a compressed flash image, which a device must "
        "decompress before the interpreter reads the flatbuffer) or with the converter's sparse storage, which "
        "shrinks the float32 file but is densified at run time (same latency). Trimming removes whole channels: "
        "the raw bytes, the MACs and the measured latency all fall, with no runtime support needed.",
    ]
    failed = [(row["name"], fmt, message) for row in result["rows"] for fmt, message in row.get("failed", {}).items()]
    if failed:
        lines.append(
            f"- Converted but refused by LiteRT {result['versions']['litert']}, so not in the table: "
            f"{', '.join(f'{name} {fmt}' for name, fmt, _ in failed)} (full int8 with `EXPERIMENTAL_SPARSITY` as "
            f"well). LiteRT's error, for the first: {failed[0][2]}"
        )
    return lines


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    rows, base = result["rows"], result["rows"][0]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    panels = [
        ("val accuracy, int8 in LiteRT (%)", lambda r: 100 * r["formats"]["int8"]["accuracy"]),
        ("int8 .tflite kB (solid) and gzip -9 kB (dashed)", lambda r: r["formats"]["int8"]["bytes"] / 1000),
        ("int8 LiteRT latency, median ms", lambda r: r["formats"]["int8"]["median_ms"]),
    ]
    styles = {"trim": ("tab:blue", "o"), "tfmot": ("tab:orange", "s")}
    for ax, (label, value) in zip(axes, panels, strict=True):
        for kind, (color, marker) in styles.items():
            chosen = sorted((r for r in rows if kind_of(r) == kind), key=lambda r: r["nonzero_params"])
            if not chosen:
                continue
            x = [1.0] + [r["nonzero_params"] / base["nonzero_params"] for r in reversed(chosen)]
            y = [value(base)] + [value(r) for r in reversed(chosen)]
            ax.plot(x, y, color=color, marker=marker, label=kind)
            if label.startswith("int8 .tflite"):
                gz = [base["formats"]["int8"]["gzip_bytes"] / 1000]
                gz += [r["formats"]["int8"]["gzip_bytes"] / 1000 for r in reversed(chosen)]
                ax.plot(x, gz, color=color, marker=marker, linestyle="--", label=f"{kind}, gzip")
        ax.plot([1.0], [value(base)], marker="*", markersize=12, color="black", linestyle="none", label="baseline")
        if label.startswith("val accuracy"):
            for r in rows:
                if r["name"] == "control":
                    ax.plot([1.0], [value(r)], marker="D", color="gray", linestyle="none", label="control")
        ax.set_xlim(1.05, 0.0)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("non-zero parameters kept (of the baseline's)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if label.startswith("int8 LiteRT") or label.startswith("int8 .tflite"):
            ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("Channel trimming vs tfmot prune_low_magnitude, cluttered Fashion-MNIST", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def publish(result, name, quick):
    plot_path = RUNS / f"{name}.png" if quick else ROOT / "bench" / f"{name}.png"
    plot(result, plot_path)
    result["plot"] = os.path.relpath(plot_path, ROOT / "bench")
    write_text(RUNS / f"{name}.json", json.dumps(result, indent=1))
    text = markdown(result)
    write_text(RUNS / f"{name}.md", text + "\n")
    if not quick:
        update_section("prune_vs_trim", text)
    print(text)


def main(argv=None):
    args, settings = parse_args(argv)
    name = "prune_vs_trim_quick" if args.quick else "prune_vs_trim"
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.report:
        return publish(json.loads((RUNS / f"{name}.json").read_text()), name, args.quick)
    started = time.perf_counter()
    command = shlex.join(["python", "bench/prune_vs_trim.py", *(argv if argv is not None else sys.argv[1:])])
    out_dir = RUNS / name
    out_dir.mkdir(exist_ok=True)
    specs, dataset = load(settings)
    log(f"data {specs[0]} (+{len(specs) - 1} seeds): {len(dataset.train)} train / {len(dataset.val)} val")
    result = {
        "command": command,
        "machine": machine(),
        "versions": {"tfmot": version("tensorflow-model-optimization"), "litert": version("ai-edge-litert")},
        "date": datetime.date.today().isoformat(),
        "load_start": os.getloadavg()[0],
        "settings": settings,
        "specs": specs,
        "train_images": len(dataset.train),
        "val_images": len(dataset.val),
        "cpu": {"threads": settings["threads"], "runs": settings["runs"], "rounds": settings["rounds"]},
        "rows": [],
    }

    def add(row):
        result["rows"].append(row)
        result["minutes"] = (time.perf_counter() - started) / 60
        write_text(RUNS / f"{name}.json", json.dumps(result, indent=1))
        log(
            f"{row['name']}: {row['nonzero_params']:,} non-zero params, accuracy {row['accuracy']:.4f}, int8 "
            f"{row['formats']['int8']['accuracy']:.4f}; {result['minutes']:.1f} min so far"
        )

    baseline_path = RUNS / f"{name}_baseline.keras"
    log(f"baseline: resnet {ARCH}, {settings['epochs']} epochs")
    baseline, result["baseline_seconds"] = train_baseline(dataset, settings, baseline_path)
    add(describe("baseline", baseline, dataset, settings, {}, out_dir))
    base = result["rows"][0]
    model, record = control(baseline_path, dataset, settings)
    add(describe("control", model, dataset, settings, record, out_dir))
    for sparsity in settings["sparsities"]:
        model, record = trim(baseline_path, dataset, settings, sparsity)
        trimmed = describe(f"trim {sparsity:.0%}", model, dataset, settings, record, out_dir)
        add(trimmed)
        removed = base["nonzero_params"] - trimmed["nonzero_params"]
        kernel_sparsity = removed / base["prunable_params"]
        if not 0 < kernel_sparsity < 1:
            raise SystemExit(f"cannot match {removed:,} removed parameters by pruning {base['prunable_params']:,}")
        model, record = prune(baseline_path, dataset, settings, kernel_sparsity, f"tfmot {sparsity:.0%}")
        add(describe(f"tfmot {sparsity:.0%}", model, dataset, settings, record, out_dir, sparse=True))
    measure_latency(result["rows"], settings)
    result["load_end"] = os.getloadavg()[0]
    result["minutes"] = (time.perf_counter() - started) / 60
    publish(result, name, args.quick)
    log(f"whole run {result['minutes']:.1f} min")


if __name__ == "__main__":
    main()

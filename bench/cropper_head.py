"""Benchmark of the cropper's head and training (issue 19): box quality against int8 bytes and MACs.

The cropper's body (stem, four stages of two bottleneck blocks) is fixed at one width; its head varies:

* ``fc``: Smart Scissor's, global average pooling then a hidden dense layer of 64 units (at width 1) and the box;
* ``gap``: global average pooling straight to the box (``build_cropper(hidden=0)``);
* ``conv``: a 1x1 convolution to 16 channels (at width 1), flattened so the box layer sees where features
  are, then the box;
* ``sized``: the library's default cropper (any width and depth) as ``crop train --resolution 32`` sizes it
  against issue 19's classifier, the prune_vs_trim benchmark's ResNet (widths 16-32-64, one block per stage;
  95,736 int8 bytes) built for the data's 64-px images and run at 32 px on crops. Sized the old way (5% of
  that classifier's MACs at 64 px) the default was the ``fc`` row's cropper, so the two rows compare the old
  and the new default;
* ``1x4``: width 0.25 and four stages of one block, the ``gap`` head: within the same budget as ``sized``
  (35 kB, 0.39 M MACs), what the sizing gives when it drops each stage's second block before the last stage.

The old and the new default for that classifier are compared in a third table: ``fc`` with the MSE (old), and
``sized`` and ``1x4`` with each loss (``--defaults``).

Each head is trained with the default training as first compared (weighted MSE, 20 epochs, cosine decay, flips)
on the true boxes of two data sets the project generates, for several seeds, and scored by the mean IoU of its
val boxes against the true boxes. Then the training is varied for one head (``--head``): GIoU (plus the
weighted MSE) instead of the MSE alone, and more epochs on the same schedule. Every row's val IoU per epoch is
kept, to see whether the box is still improving when training ends. int8 bytes are measured by full-int8
conversion of the seed-0 model of the first data set, calibrated on 200 of its train images.

Rows are cached in ``bench/runs/cropper_head.json`` after each one, and a run skips the rows it finds there,
so a stopped run resumes. Two runs can share the CPUs: one with ``--name other`` (its own cache), the main
one then given ``--merge other`` to take the other's rows. Writes ``bench/runs/cropper_head.md`` (also its section of ``bench/RESULTS.md``, and
printed). ``--quick`` is a smoke run (small data, 2 epochs, one seed) into ``bench/runs/cropper_head_quick.*``
that leaves ``bench/RESULTS.md`` alone. Progress goes to stderr.

    .venv/bin/python bench/cropper_head.py            # about 60 minutes on 2 busy CPU cores
    .venv/bin/python bench/cropper_head.py --quick    # about 2 minutes
"""

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfscissor.io import write_text  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from results import log, machine, update_section  # noqa: E402

RUNS = ROOT / "bench" / "runs"
HEADS = {
    "fc": "GAP -> dense 64 (relu) -> box (Smart Scissor's)",
    "gap": "GAP -> box",
    "conv": "1x1 conv 16 -> flatten -> box",
    "sized": "the library's default, sized against issue 19's classifier at 32 px",
    "1x4": "GAP -> box, width 0.25, 1 x 4 blocks: what a sizing that drops blocks before stages gives there",
}
# Issue 19's classifier: the prune_vs_trim benchmark's ResNet (95,736 int8 bytes), built for the data's images
# and run at 32 px on crops. Sized against it at its input size and 5% of its MACs, the old default was the
# `fc` row at width 0.5 on 64-px images (128,720 int8 bytes).
CLASSIFIER = {"widths": (16, 32, 64), "blocks": (1, 1, 1)}
RESOLUTION = 32
FULL = {
    "data": "cluttered;cluttered:source=digits",
    "seeds": "0,1,2",
    "width": 0.5,
    "heads": "fc,gap,sized,conv",
    "head": "gap",
    "training": "giou:20,mse:30",
    "defaults": "1x4:mse,sized:mse,sized:giou",
    "lr": 5e-3,
    # The heads' (and the old and new defaults') training length: the library's default when they were first
    # compared, kept so that the cached rows stay comparable when the default moves.
    "epochs": 20,
}
QUICK = {
    **FULL,
    "data": "cluttered:n=400",
    "seeds": "0",
    "training": "giou:2,mse:3",
    "defaults": "sized:giou",
    "epochs": 2,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, 2 epochs, one seed")
    parser.add_argument("--data", help=f"data specs with true boxes, separated by ';' ({FULL['data']})")
    parser.add_argument("--seeds", help=f"weight and training seeds ({FULL['seeds']})")
    parser.add_argument("--width", type=float, help=f"the cropper's channel multiplier ({FULL['width']})")
    parser.add_argument("--heads", help=f"heads to compare at the default training ({FULL['heads']})")
    parser.add_argument("--head", help=f"the head the training variants use ({FULL['head']})")
    parser.add_argument(
        "--training", help=f"training variants as loss:epochs, beside the default ({FULL['training']}); '' for none"
    )
    parser.add_argument(
        "--defaults",
        help=f"head:loss[:epochs] rows compared with the old default, `fc` ({FULL['defaults']}); '' for none",
    )
    parser.add_argument("--lr", type=float, help=f"peak learning rate, cosine-decayed ({FULL['lr']})")
    parser.add_argument("--epochs", type=int, help=f"epochs of the heads' and defaults' rows ({FULL['epochs']})")
    parser.add_argument(
        "--name",
        default="cropper_head",
        help="bench/runs/NAME.json caches the rows: runs of other variants under other names share the CPUs, and "
        "their rows merged into one cache make the section",
    )
    parser.add_argument("--merge", default="", help="names of other runs whose cached rows join this one's")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    for key in FULL:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    settings["data"] = [s for s in settings["data"].split(";") if s]
    settings["seeds"] = [int(s) for s in str(settings["seeds"]).split(",")]
    settings["heads"] = [h for h in settings["heads"].split(",") if h]
    settings["training"] = [(t.split(":")[0], int(t.split(":")[1])) for t in settings["training"].split(",") if t]
    settings["defaults"] = [_default_row(d, settings["epochs"]) for d in settings["defaults"].split(",") if d]
    unknown = sorted({*settings["heads"], settings["head"], *(h for h, _, _ in settings["defaults"])} - set(HEADS))
    if unknown:
        parser.error(f"unknown head(s) {', '.join(unknown)}: use {', '.join(HEADS)}")
    return args, settings


def _default_row(text, epochs):
    """``head:loss`` or ``head:loss:epochs`` as (head, loss, epochs)."""
    head, loss, *rest = text.split(":")
    return head, loss, int(rest[0]) if rest else epochs


def build(head, shape, width, seed):
    """A cropper of ``width`` with ``head``: the library's builder, or for ``conv`` its body and a new head."""
    import keras

    from tfscissor.models.cropper import build_cropper
    from tfscissor.models.layers import conv_bn_act

    if head == "sized":
        return sized_cropper(shape, seed)
    if head == "1x4":
        return build_cropper(shape, width=0.25, blocks=1, seed=seed)
    if head != "conv":
        return build_cropper(shape, width=width, hidden=64 if head == "fc" else 0, seed=seed)
    body = build_cropper(shape, width=width, hidden=0, seed=seed)
    x = conv_bn_act(body.get_layer("pool").input, max(4, round(16 * width)), 1, "head")
    x = keras.layers.Flatten(name="flat")(x)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(x)
    return keras.Model(body.input, box, name="cropper")


def sized_cropper(shape, seed):
    """The library's default cropper sized against :data:`CLASSIFIER` at :data:`RESOLUTION`, as ``crop train
    --resolution 32`` sizes it."""
    from tfscissor.analysis import profile_model
    from tfscissor.crop.sizing import BYTES_SHARE, MACS_SHARE, estimated_int8_bytes, fitted_cropper
    from tfscissor.models import build_model
    from tfscissor.models.graph import with_input_size

    classifier = build_model("resnet", shape, 10, seed=0, **CLASSIFIER)
    macs = profile_model(with_input_size(classifier, RESOLUTION)).macs
    return fitted_cropper(shape, MACS_SHARE * macs, seed=seed, max_bytes=BYTES_SHARE * estimated_int8_bytes(classifier))


def run_row(dataset, head, loss, epochs, seed, settings):
    """Train one cropper and score its val boxes against the true boxes."""
    from tfscissor.crop.training import box_report, predict_boxes, train_cropper

    model = build(head, dataset.image_shape, settings["width"], seed)
    start = time.perf_counter()
    history = train_cropper(
        model,
        dataset.train.images,
        dataset.train.boxes,
        dataset.val.images,
        dataset.val.boxes,
        epochs=epochs,
        learning_rate=settings["lr"],
        loss=loss,
        seed=seed,
    )
    seconds = time.perf_counter() - start
    report = box_report(predict_boxes(model, dataset.val.images), dataset.val.boxes)
    row = {
        "mean_iou": report["mean_iou"],
        "iou_above_0_5": report["iou_above_0_5"],
        "degenerate": report["degenerate"],
        "val_iou_per_epoch": history["val_mean_iou"],
        "train_iou_last": history["mean_iou"][-1],
        "seconds": seconds,
    }
    return model, row


def head_costs(model, dataset):
    from tfscissor.analysis import profile_model
    from tfscissor.quantize import quantize_int8

    profile = profile_model(model)
    return {
        "params": profile.params,
        "macs": profile.macs,
        "int8_bytes": len(quantize_int8(model, dataset.train.images)),
    }


def run(settings, cache):
    from tfscissor.data import load_data

    rows, costs = cache.setdefault("rows", {}), cache.setdefault("costs", {})
    datasets = {spec: load_data(spec) for spec in settings["data"]}
    missing = [spec for spec, dataset in datasets.items() if not dataset.has_boxes]
    if missing:
        raise SystemExit(f"{', '.join(missing)} has no boxes: cropper_head needs true boxes")
    plan = [(head, "mse", settings["epochs"]) for head in settings["heads"]]
    plan += [(settings["head"], loss, epochs) for loss, epochs in settings["training"]]
    plan += settings["defaults"]
    plan = list(dict.fromkeys(plan))
    for head, loss, epochs in plan:
        for seed in settings["seeds"]:
            for spec, dataset in datasets.items():
                key = f"{spec}|{head}|{loss}|{epochs}|{seed}"
                if key in rows:
                    continue
                log(f"{key}: training")
                model, rows[key] = run_row(dataset, head, loss, epochs, seed, settings)
                log(f"{key}: mean IoU {rows[key]['mean_iou']:.4f} in {rows[key]['seconds']:.0f} s")
                if head not in costs:
                    costs[head] = head_costs(model, dataset)
                yield


def spread(values):
    """Median and range over seeds, as text."""
    return f"{statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def iou_table(settings, rows, variants, baseline):
    """Rows of one table, and a verdict line per variant: how often it beat the first row, seed by seed."""
    from tfscissor.crop.training import late_gain

    lines, verdicts = [], {}
    for spec in settings["data"]:
        if any(f"{spec}|{baseline}|{s}" not in rows for s in settings["seeds"]):
            continue  # a stopped run: no complete first row to compare with
        base = [rows[f"{spec}|{baseline}|{s}"]["mean_iou"] for s in settings["seeds"]]
        for name, variant in variants:
            found = [rows.get(f"{spec}|{variant}|{s}") for s in settings["seeds"]]
            if None in found:
                continue
            ious = [r["mean_iou"] for r in found]
            deltas = [a - b for a, b in zip(ious, base, strict=True)]
            history = [r["val_iou_per_epoch"] for r in found]
            lines.append(
                f"| `{spec}` | {name} | {spread(ious)} | {statistics.median(deltas):+.4f} "
                f"({min(deltas):+.4f} to {max(deltas):+.4f}) | "
                f"{statistics.median(r['iou_above_0_5'] for r in found):.1%} | "
                f"{statistics.median(late_gain(h, len(h) // 2) for h in history):+.4f} | "
                f"{statistics.median(late_gain(h) for h in history):+.4f} | "
                f"{statistics.median(r['train_iou_last'] for r in found):.4f} | "
                f"{statistics.median(r['seconds'] for r in found):.0f} |"
            )
            verdicts.setdefault(name, []).append((spec, deltas))
    first = variants[0][0]
    summary = []
    for name, found in list(verdicts.items())[1:]:
        ahead = sum(d > 0 for _, deltas in found for d in deltas)
        total = sum(len(deltas) for _, deltas in found)
        medians = "; ".join(f"`{spec}` {statistics.median(deltas):+.4f}" for spec, deltas in found)
        summary.append(f"- {name} against {first}: ahead in {ahead} of {total} (data, seed) pairs; median {medians}")
    return lines, summary


def architecture(model):
    """The cropper's width, depth, view and head, read from its layers."""
    names = [layer.name for layer in model.layers]
    adds = [n for n in names if n.endswith("_add")]
    stages = len({n.split("_")[0] for n in adds})
    view = model.input_shape[1] // (model.get_layer("view").pool_size[0] if "view" in names else 1)
    head = "fc" if "fc" in names else "conv" if "flat" in names else "gap"
    width = model.get_layer("stem_conv").filters / 16
    return f"width {width:g}, {len(adds) // stages} x {stages} blocks, view {view}, head `{head}`"


def markdown(settings, cache, command, minutes):
    import inspect

    from tfscissor.crop.sizing import estimated_int8_bytes
    from tfscissor.crop.training import CROPPER_EPOCHS, train_cropper
    from tfscissor.models.cropper import build_cropper

    rows, costs, epochs = cache["rows"], cache["costs"], settings["epochs"]
    head_variants = [(f"`{h}`", f"{h}|mse|{epochs}") for h in settings["heads"]]
    default = f"{settings['head']}|mse|{epochs}"
    training_variants = [(f"`{settings['head']}`, mse, {epochs} epochs", default)]
    training_variants += [
        (f"`{settings['head']}`, {loss}, {n} epochs", f"{settings['head']}|{loss}|{n}")
        for loss, n in settings["training"]
    ]
    columns = (
        "| data | variant | val mean IoU: median (range) | vs first row, paired by seed | IoU > 0.5 | "
        "val IoU gain, 2nd half | gain, last 5 epochs | train IoU (last epoch) | train s |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    # Architecture and estimate depend on the code alone: made here, they follow the library as it is now.
    models = {h: build(h, (64, 64, 3), settings["width"], 0) for h in costs}
    cost_lines = [
        f"| `{h}` | {HEADS[h]} | {architecture(models[h])} | {c['params']:,} | {c['macs']:,} | {c['int8_bytes']:,} | "
        f"{estimated_int8_bytes(models[h]):,} |"
        for h, c in costs.items()
    ]
    head_rows, head_summary = iou_table(settings, rows, head_variants, head_variants[0][1])
    training_rows, training_summary = iou_table(settings, rows, training_variants, default)
    old_default = f"fc|mse|{epochs}"
    default_variants = [("`fc`, mse (the old default)", old_default)]
    default_variants += [
        (f"`{h}`, {loss}" + ("" if n == epochs else f", {n} epochs"), f"{h}|{loss}|{n}")
        for h, loss, n in settings["defaults"]
    ]
    default_rows, default_summary = iou_table(settings, rows, default_variants, old_default)
    hidden = inspect.signature(build_cropper).parameters["hidden"].default
    loss = inspect.signature(train_cropper).parameters["loss"].default
    return "\n".join(
        [
            "## The cropper's head and training (issue 19): box quality against int8 bytes and MACs",
            "",
            f"- Command: `{command}` (its runs, merged ones included, took {minutes:.1f} min in all, some of "
            "them side by side)",
            f"- Machine: {machine()}; 2-core VM shared with other work (it slows the timings, not the IoUs)",
            f"- Date: {datetime.date.today().isoformat()}",
            f"- Cropper: `build_cropper(shape, width={settings['width']})` body unless stated (64-px images: a 64-px "
            f"view, stem {max(4, round(16 * settings['width']))} channels), trained on the true boxes, batch 64, "
            f"Adam at lr {settings['lr']} with cosine decay to 0, flips; seeds {', '.join(map(str, settings['seeds']))} "
            "(weights and training); data as generated by each spec (train 80%, val 20%).",
            "- Scores: mean IoU of the val boxes against the true boxes after the last epoch; 'vs first row': the "
            "median (and range) over seeds of the difference to the table's first row with the same seed; 'val IoU "
            "gain': the val IoU after the last epoch minus after the middle one, or the fifth-last (near 0: the "
            "box stopped improving before training ended).",
            f"- The library's defaults as this section was written: `build_cropper(hidden={hidden})`, "
            f"`train_cropper(loss={loss!r})`, `CROPPER_EPOCHS = {CROPPER_EPOCHS}`.",
            "",
            "Costs (the same on both data sets: 64x64x3 images); int8 bytes measured by full-int8 conversion of the "
            "trained seed-0 model, 'estimated' by `tfscissor.crop.sizing.estimated_int8_bytes`:",
            "",
            "| variant | head | architecture | params | MACs | int8 bytes | estimated bytes |",
            "|---|---|---|---|---|---|---|",
            *cost_lines,
            "",
            f"Heads, default training (weighted MSE, {epochs} epochs):",
            "",
            columns,
            *head_rows,
            "",
            *head_summary,
            "",
            f"Training, head `{settings['head']}`:",
            "",
            columns,
            *training_rows,
            "",
            *training_summary,
            "",
            f"Old and new default for issue 19's classifier at {RESOLUTION} px ({epochs} epochs):",
            "",
            columns,
            *default_rows,
            "",
            *default_summary,
        ]
    )


def main(argv=None):
    args, settings = parse_args(argv)
    name = f"{args.name}_quick" if args.quick else args.name
    RUNS.mkdir(parents=True, exist_ok=True)
    cache_path = RUNS / f"{name}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    trained_with = {"width": settings["width"], "lr": settings["lr"]}
    if cache.get("settings", trained_with) != trained_with:
        cache = {}  # rows trained otherwise are not comparable
    cache["settings"] = trained_with
    for other in filter(None, args.merge.split(",")):
        merged = json.loads((RUNS / f"{other}.json").read_text())
        if merged.get("settings") != trained_with:
            raise SystemExit(f"bench/runs/{other}.json was trained with {merged.get('settings')}, not {trained_with}")
        for key in ("rows", "costs"):
            cache.setdefault(key, {}).update(merged.get(key, {}))
        cache["other_seconds"] = {**cache.get("other_seconds", {}), other: merged.get("seconds", 0.0)}
    start, before = time.perf_counter(), cache.get("seconds", 0.0)
    for _ in run(settings, cache):
        cache["seconds"] = before + time.perf_counter() - start  # resumed runs add up
        write_text(cache_path, json.dumps(cache, indent=1))
    command = shlex.join(["python", "bench/cropper_head.py", *(argv if argv is not None else sys.argv[1:])])
    seconds = cache.get("seconds", 0.0) + sum(cache.get("other_seconds", {}).values())
    text = markdown(settings, cache, command, seconds / 60)
    write_text(RUNS / f"{name}.md", text + "\n")
    if not args.quick and args.name == "cropper_head":
        update_section("cropper_head", text)
    print(text)


if __name__ == "__main__":
    main()

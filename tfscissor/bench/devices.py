"""Every benchmark device behind one name, and the two-stage pipeline timed on any of them.

``--device`` names a :data:`DEVICES` entry, with an index for the Edge TPUs (``usb:1``, ``pci:0``). Each entry
times one model and returns its statistics (:mod:`tfscissor.bench.timing`) and its own facts; :func:`bench`
runs the classifier, or the cropper, the crop and the classifier, and adds the stages up.
"""

from dataclasses import dataclass

import numpy as np

from tfscissor.bench.coral import bench_coral
from tfscissor.bench.cpu import INPUT_SEED, bench_cpu
from tfscissor.bench.tflm import HOST_TIME, bench_tflm, board_fit
from tfscissor.bench.timing import check_schedule, time_invocations
from tfscissor.compile.boards import board as board_preset
from tfscissor.deploy.boxes import check_box_outputs
from tfscissor.deploy.crop_policy import CropPolicy
from tfscissor.deploy.crop_policy import crop_backend as checked_backend
from tfscissor.deploy.flatbuffer import read_model
from tfscissor.deploy.litert import check_tflite_path, read_tflite, seeded_input
from tfscissor.errors import UsageError

CROP_BOX = (0.25, 0.25, 0.75, 0.75)  # half the image's side: a typical crop, resized like any other
_FLAGS = {"num_threads": "num_threads (--threads)"}  # so the message names the option the CLI user typed


@dataclass(frozen=True)
class Device:
    """A benchmark target. ``run(model, index, runs, warmup, progress, **options)`` times one model;
    ``options`` are the keyword options only it takes; ``indexed``: it is picked as ``name:N``; ``host_crop``:
    the crop between the stages runs on this host's CPU (so it is timed here) rather than on the device."""

    name: str
    title: str
    timing: str
    run: object
    options: tuple = ()
    indexed: bool = False
    host_crop: bool = True


def _cpu(model, index, runs, warmup, progress, num_threads=None):
    return bench_cpu(model, runs=runs, warmup=warmup, num_threads=num_threads, progress=progress)


def _tflm(model, index, runs, warmup, progress):
    return bench_tflm(model, runs=runs, warmup=warmup, progress=progress)


def _coral(kind):
    def run(model, index, runs, warmup, progress, runtime=None):
        return bench_coral(model, kind, index, runs=runs, warmup=warmup, progress=progress, runtime=runtime)

    return run


_CORAL_TIMING = "measured on the Edge TPU; the first inference includes uploading the model's parameters"

DEVICES = {
    device.name: device
    for device in (
        Device("cpu", "LiteRT on this host's CPU", "measured on this host's CPU", _cpu, options=("num_threads",)),
        Device("tflm", "TFLite Micro's interpreter on this host", HOST_TIME, _tflm, host_crop=False),
        Device("usb", "Coral USB Edge TPU", _CORAL_TIMING, _coral("usb"), options=("runtime",), indexed=True),
        Device("pci", "Coral PCIe Edge TPU", _CORAL_TIMING, _coral("pci"), options=("runtime",), indexed=True),
    )
}


def parse_device(text):
    """``"cpu"``, ``"tflm"``, ``"usb"``, ``"usb:1"``, ``"pci:0"`` -> ``(name, index)``: index None for a device
    that has none, 0 for a bare ``usb`` or ``pci`` (the first one found)."""
    name, sep, index = str(text).partition(":")
    if name not in DEVICES:
        raise UsageError(f"unknown device {text!r}: use one of cpu, tflm, usb[:N], pci[:N]")
    if not DEVICES[name].indexed:
        if sep:
            raise UsageError(f"device {text!r}: {name} takes no index, write --device {name}")
        return name, None
    if not sep:
        return name, 0
    if not index.isdigit():
        raise UsageError(f"device {text!r}: the index after ':' must be a number, as in {name}:0 or {name}:1")
    return name, int(index)


def _read(model):
    check_tflite_path(model)
    data, name = read_tflite(model)
    return read_model(data, name=name)


def _time_crop(image_shape, resolution, policy, backend, runs, warmup):
    """The host's crop policy on a seeded whole image, cut at :data:`CROP_BOX` and resized to ``resolution``."""

    policy = policy or CropPolicy()
    image = seeded_input((1, *image_shape), np.uint8, seed=INPUT_SEED)
    box = np.array([CROP_BOX], dtype=np.float32)
    stats = time_invocations(lambda: policy.crop(image, box, resolution, backend=backend), runs, warmup)
    return {
        "backend": f"{backend} (host)",
        "input_shape": [1, *image_shape],
        "output_shape": [1, resolution, resolution, image_shape[-1]],
        "runs": runs,
        "warmup": warmup,
        **stats,
    }


def _total(stages):
    models = [stage for name, stage in stages.items() if name != "crop"]
    median = sum(stage["median_ms"] for stage in stages.values())
    total = {
        "first_inference_ms": sum(stage["first_inference_ms"] for stage in stages.values()),
        "median_ms": median,
        "mean_ms": sum(stage["mean_ms"] for stage in stages.values()),
        "throughput_per_s": 1000.0 / median if median > 0 else float("inf"),
        "model_bytes": sum(stage["model_bytes"] for stage in models),
    }
    if all("arena_bytes" in stage for stage in models):
        total["arena_bytes"] = sum(stage["arena_bytes"] for stage in models)
    return total


def bench(
    model,
    *,
    device="cpu",
    cropper=None,
    runs=100,
    warmup=10,
    policy=None,
    crop_backend=None,
    board=None,
    progress=None,
    **options,
):
    """Benchmark a classifier (``.tflite`` bytes or a path), or crop-then-classify with a ``cropper``, on a device.

    ``device``: a name of :data:`DEVICES` as :func:`parse_device` reads it. Each model is timed alone on the
    device: a first inference, ``warmup`` untimed runs, ``runs`` timed ones (``progress`` called with 1 after each,
    so ``runs`` times the number of models in all). With a cropper the stages are ``cropper``, ``crop`` (the crop
    policy on the host; ``policy`` defaults to ``CropPolicy()``; not on tflm, where the firmware crops in C) and
    ``classifier``, and ``total`` adds them up (the sum of the medians, not a median of whole runs);
    ``crop_backend``: ``"c"`` or ``"numpy"`` for the host's crop (default: C where it was built, see
    :func:`tfscissor.deploy.crop_policy.crop_backend`). ``board`` (tflm only): check the models and arenas
    against a board preset (``board`` in the result; ModelError when they do not fit). ``options``: a device's own, such as ``num_threads`` for cpu or ``runtime`` for usb and pci.
    Returns one JSON-ready dict.
    """
    name, index = parse_device(device)
    target = DEVICES[name]
    check_schedule(runs, warmup, progress)
    options = {key: value for key, value in options.items() if value is not None}
    foreign = sorted(set(options) - set(target.options))
    if foreign:
        takers = "/".join(device.name for device in DEVICES.values() if foreign[0] in device.options)
        raise UsageError(f"{_FLAGS.get(foreign[0], foreign[0])} is for --device {takers}, not {name}")
    if board is not None:
        if name != "tflm":
            raise UsageError(
                f"--board checks a microcontroller's flash and RAM: it goes with --device tflm, not {name}"
            )
        board_preset(board)  # an unknown name fails before anything is timed
    if policy is not None and cropper is None:
        raise UsageError("a crop policy needs a cropper: give --cropper too")
    if crop_backend is not None and cropper is None:
        raise UsageError("a crop backend needs a cropper: give a cropper too")
    if policy is not None and not isinstance(policy, CropPolicy):
        raise UsageError(f"policy must be a tfscissor.deploy.CropPolicy, got {type(policy).__name__}")
    if cropper is not None:
        crop_backend = checked_backend(crop_backend)  # an unknown or unbuilt one fails before anything is timed
    classifier_info = _read(model)
    models = {"classifier": model}
    image_shape = None
    if cropper is not None:
        cropper_info = _read(cropper)
        check_box_outputs(cropper_info.output.shape[-1], cropper_info.name)
        image_shape = tuple(int(d) for d in cropper_info.input.shape[1:])
        models = {"cropper": cropper, "classifier": model}

    stages = {}
    for stage, stage_model in models.items():
        stages[stage] = target.run(stage_model, index, runs, warmup, progress, **options)
        if stage == "cropper" and target.host_crop:
            resolution = int(classifier_info.input.shape[1])
            stages["crop"] = _time_crop(image_shape, resolution, policy, crop_backend, runs, warmup)
    result = {
        "device": name if index is None else f"{name}:{index}",
        "title": target.title,
        "backend": stages["classifier"]["backend"],
        "timing": target.timing,
        "runs": runs,
        "warmup": warmup,
        "stages": stages,
        "total": _total(stages),
    }
    if board is not None:
        result["board"] = board_fit(board, [stages[stage] for stage in models], image_shape)
    return result

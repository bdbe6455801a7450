"""The distributed checks of test_distribute.py, run in a child process: logical devices and a multi-worker
cluster must be set up before TensorFlow starts, and the test session has started it already.

``python distribute_child.py mirrored`` splits the CPU into two logical devices and compares single-device
runs with runs under the mirrored strategy; ``python distribute_child.py worker INDEX PORT,PORT`` is one
worker of a local two-worker cluster. Each prints one JSON line of measurements for the test to judge.
"""

import json
import os
import sys

import numpy as np


def _relative(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))


def _compare_statistics(single, distributed):
    return {
        name: {
            "counts": [single[name].count, distributed[name].count],
            "total": _relative(single[name].total, distributed[name].total),
            "magnitude": _relative(single[name].magnitude, distributed[name].magnitude),
            "zeros_equal": bool(np.array_equal(single[name].zeros, distributed[name].zeros)),
        }
        for name in single
    }


def _weight_gap(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def _relative_gap(a, b, start):
    """Per weight tensor, how far two trainings from ``start`` ended apart, as a fraction of how far training
    moved it; the largest over the model."""
    return max(
        float(np.max(np.abs(x - y)) / np.max(np.abs(x - s)))
        for x, y, s in zip(a.get_weights(), b.get_weights(), start, strict=True)
    )


def _error(call):
    try:
        call()
    except Exception as err:  # noqa: BLE001 - the test judges the type and message
        return f"{type(err).__name__}: {err}"
    return None


def mirrored():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from tfscissor.crop import train_on_crops
    from tfscissor.data import load_data
    from tfscissor.models import build_model
    from tfscissor.models.distribute import strategy_for
    from tfscissor.models.training import train_classifier
    from tfscissor.trim import collect_statistics, tap_names, trim_classifier
    from tfscissor.trim.stage import run_trim

    strategy = strategy_for("mirrored")
    explicit = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {
        "replicas": strategy.num_replicas_in_sync,
        "same_devices": strategy.extended.worker_devices == explicit.extended.worker_devices,
    }
    data = load_data("cluttered:size=16,n=160,classes=3,seed=1")  # 128 train, 32 val images
    images = data.train.images.astype(np.float32)

    # 37 = 2 x 16 + 5 images: the last batch splits 3 + 2 across the replicas.
    for builder, shape in (("plain", {}), ("resnet", {"blocks": (1, 1)})):
        model = build_model(builder, data.image_shape, 3, widths=(8, 16), seed=0, **shape)
        single = trim_classifier(model, images[:37], batch_size=16, ratio=0.4)
        distributed = trim_classifier(model, images[:37], batch_size=16, ratio=0.4, strategy=strategy)
        out[builder] = {
            "statistics": _compare_statistics(single.statistics, distributed.statistics),
            "kept_equal": {g: single.kept[g].tolist() == distributed.kept[g].tolist() for g in single.kept},
            "removed": sum(single.channels[g] - len(single.kept[g]) for g in single.kept),
            "weight_gap": _weight_gap(single.model, distributed.model),
        }
    # 33 images (on the ResNet) leave a last batch of 1, which would leave a replica empty: it runs on one device.
    taps = tap_names(model)
    out["statistics_tail"] = _compare_statistics(
        collect_statistics(model, images[:33], taps, batch_size=16),
        collect_statistics(model, images[:33], taps, batch_size=16, strategy=strategy),
    )

    models = [build_model("plain", data.image_shape, 3, widths=(8, 16), seed=0) for _ in range(2)]
    start = models[0].get_weights()
    histories = [
        train_classifier(model, data, epochs=2, batch_size=16, seed=0, strategy=chosen)
        for model, chosen in zip(models, (None, strategy), strict=True)
    ]
    out["train"] = {
        "loss": [h["loss"] for h in histories],
        "weight_gap": _weight_gap(*models),
        "relative_gap": _relative_gap(*models, start),
    }
    out["train_refused"] = _error(
        lambda: train_classifier(models[1], data, epochs=1, batch_size=127, strategy=strategy)
    )
    stage = run_trim(models[0], data, samples=48, ratio=0.3, fine_tune_epochs=1, batch_size=16, strategy=strategy)
    out["stage"] = {
        "params": [stage.report["params_before"], stage.report["params_after"]],
        "accuracy": stage.report["accuracy_after"],
    }

    classifier = models[1]
    cropped, history = train_on_crops(
        classifier, data, resolution=16, truth=data.train.boxes, epochs=1, batch_size=16, strategy=strategy
    )
    out["crops"] = {
        "loss": history["loss"],
        "changed": any(
            not np.array_equal(a, b) for a, b in zip(cropped.get_weights(), classifier.get_weights(), strict=True)
        ),
    }
    return out


def worker(index, ports):
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": [f"localhost:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
    )
    from tfscissor.data import load_data
    from tfscissor.models import build_model
    from tfscissor.models.distribute import strategy_for
    from tfscissor.models.training import train_classifier
    from tfscissor.trim import collect_statistics, tap_names

    strategy = strategy_for("multi_worker")
    model = build_model("plain", (16, 16, 3), 3, widths=(8,), seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (40, 16, 16, 3)).astype(np.float32)
    taps = tap_names(model)
    data = load_data("cluttered:size=16,n=80,classes=3,seed=1")
    return {
        "replicas": strategy.num_replicas_in_sync,
        "statistics": _compare_statistics(
            collect_statistics(model, images, taps, batch_size=16),
            collect_statistics(model, images, taps, batch_size=16, strategy=strategy),
        ),
        "train_refused": _error(lambda: train_classifier(model, data, epochs=1, batch_size=16, strategy=strategy)),
    }


if __name__ == "__main__":
    mode = sys.argv[1]
    print(json.dumps(mirrored() if mode == "mirrored" else worker(int(sys.argv[2]), sys.argv[3].split(","))))

import json

import pytest

from tfscissor.bench import DEVICES, bench, parse_device
from tfscissor.errors import ModelError, UsageError


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("cpu", ("cpu", None)),
        ("tflm", ("tflm", None)),
        ("usb", ("usb", 0)),
        ("usb:1", ("usb", 1)),
        ("pci:0", ("pci", 0)),
    ],
)
def test_parse_device(text, parsed):
    assert parse_device(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("usb:x", "the index after ':' must be a number, as in usb:0"),
        ("pci:", "the index after ':' must be a number"),
        ("usb:-1", "the index after ':' must be a number"),
        ("cpu:1", "cpu takes no index"),
        ("gpu", "unknown device 'gpu': use one of cpu, tflm, usb"),
    ],
)
def test_bad_device(text, message):
    with pytest.raises(UsageError, match=message):
        parse_device(text)


def test_every_device_is_registered():
    assert list(DEVICES) == ["cpu", "tflm", "usb", "pci"]


def test_one_model_on_cpu(tiny_model_bytes):
    result = bench(tiny_model_bytes, device="cpu", runs=5, warmup=1, num_threads=1)
    stage = result["stages"]["classifier"]
    assert (result["device"], result["backend"], list(result["stages"])) == ("cpu", "litert-cpu", ["classifier"])
    assert stage["num_threads"] == 1 and stage["runs"] == 5
    assert result["total"] == {key: stage[key] for key in result["total"]}
    json.dumps(result)


def test_crop_then_classify_on_cpu(tiny_model_bytes, whole_image_cropper):
    ticks = []
    result = bench(tiny_model_bytes, cropper=whole_image_cropper, runs=4, warmup=1, progress=ticks.append)
    stages, total = result["stages"], result["total"]
    assert list(stages) == ["cropper", "crop", "classifier"] and ticks == [1] * 8  # one per timed run of each model
    assert stages["crop"]["input_shape"] == [1, 24, 32, 3] and stages["crop"]["output_shape"] == [1, 16, 16, 3]
    for stage in stages.values():
        assert 0 < stage["median_ms"] <= stage["p90_ms"] <= stage["max_ms"] and stage["first_inference_ms"] > 0
    for key in ("median_ms", "mean_ms", "first_inference_ms"):
        assert total[key] == pytest.approx(sum(stage[key] for stage in stages.values()))
    assert total["model_bytes"] == len(tiny_model_bytes) + len(whole_image_cropper)
    assert total["throughput_per_s"] == pytest.approx(1000 / total["median_ms"])


def test_a_classifier_is_no_cropper(tiny_model_bytes):
    with pytest.raises(ModelError, match="has 3 outputs, not a box"):
        bench(tiny_model_bytes, cropper=tiny_model_bytes, runs=1, warmup=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "tflm", "num_threads": 2}, r"num_threads \(--threads\) is for --device cpu, not tflm"),
        ({"device": "usb", "num_threads": 2}, "is for --device cpu, not usb"),
        ({"device": "cpu", "runtime": object()}, "runtime is for --device usb/pci, not cpu"),
        ({"device": "cpu", "board": "nano33ble"}, "it goes with --device tflm, not cpu"),
        ({"policy": object()}, "a crop policy needs a cropper"),
        ({"policy": object(), "cropper": "cropper"}, "policy must be a tfscissor.deploy.CropPolicy"),
        ({"runs": 0}, "runs must be an integer of at least 1"),
    ],
)
def test_options_that_do_not_apply(tiny_model_bytes, kwargs, message):
    with pytest.raises(UsageError, match=message):
        bench(tiny_model_bytes, **kwargs)


@pytest.mark.parametrize("device", ["cpu", "tflm", "usb"])
def test_not_a_tflite_path(tmp_path, device):
    (tmp_path / "m.keras").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a .tflite file"):
        bench(tmp_path / "m.keras", device=device)

"""`tfscissor bench` on every device through click's CliRunner: the table, the JSON object and the one-line errors.

The Edge TPU runs up to the device: the runtime is a stand-in whose library is missing or whose device tree is
empty, as on a machine without Coral hardware (tests/bench/test_coral.py covers the rest)."""

import json
import re

import pytest
from click.testing import CliRunner

from tests.bench.conftest import as_edgetpu
from tfscissor.bench import coral
from tfscissor.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


@pytest.fixture
def models(tmp_path, tiny_model_bytes, whole_image_cropper):
    paths = {"model": tmp_path / "m.tflite", "cropper": tmp_path / "c.tflite", "tpu": tmp_path / "m_edgetpu.tflite"}
    paths["model"].write_bytes(tiny_model_bytes)
    paths["cropper"].write_bytes(whole_image_cropper)
    paths["tpu"].write_bytes(as_edgetpu(tiny_model_bytes))
    return paths


def _error(result, code):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_cpu_table_with_a_cropper(models):
    result = invoke("bench", models["model"], "--cropper", models["cropper"], "--runs", "3", "--threads", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "on cpu, LiteRT on this host's CPU" in lines[0] and "total: the sum of the stages" in lines[1]
    assert re.match(r"stage +first ms +median ms +p90 ms +max ms +mean ms +per s +model bytes$", lines[2])
    assert [line.split()[0] for line in lines[4:8]] == ["cropper", "crop", "classifier", "total"]
    assert re.search(r"^threads: 1; peak RSS of the process \d+ MiB$", result.output, re.M)


def test_tflm_json_is_one_object_labelled_host_time(models):
    result = invoke("bench", models["model"], "--device", "tflm", "--runs", "3", "--board", "rp2040", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    stage = payload["stages"]["classifier"]
    assert payload["device"] == "tflm" and payload["timing"].startswith("host time, not a device figure")
    assert stage["timing"] == payload["timing"] and stage["arena_bytes"] > 0 and stage["ops"]
    assert payload["board"]["board"] == "rp2040" and payload["board"]["warnings"] == []


def test_tflm_table_names_the_ops_and_the_board(models):
    result = invoke("bench", models["model"], "--device", "tflm", "--runs", "3", "--board", "nano33ble")
    assert result.exit_code == 0, result.output
    assert "host time, not a device figure" in result.output.splitlines()[0]
    assert re.search(r"^stage .* model bytes +arena bytes \(measured\)$", result.output, re.M)
    assert re.search(r"^classifier ops: CONV_2D x\d", result.output, re.M)
    assert re.search(r"^board Arduino Nano 33 BLE \(nRF52840\): flash [\d,]+ of 1,048,576 bytes", result.output, re.M)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--device", "usb:x"), "the index after ':' must be a number"),
        (("--device", "gpu"), "unknown device 'gpu'"),
        (("--device", "tflm", "--threads", "2"), "--threads"),
        (("--board", "nano33ble"), "goes with --device tflm"),
        (("--device", "usb"), "not compiled for the Edge TPU"),
    ],
)
def test_usage_errors(models, args, words):
    assert words in _error(invoke("bench", models["model"], "--runs", "2", *args), 2)


def _no_coral(monkeypatch, tmp_path, library):
    def open_library(name):
        if not library:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")

    runtime = coral.DelegateRuntime(open_library=open_library, sysfs_root=str(tmp_path), dev_root=str(tmp_path))
    monkeypatch.setattr(coral, "find_runtime", lambda: runtime)


def test_edge_tpu_without_the_runtime_library(models, monkeypatch, tmp_path):
    _no_coral(monkeypatch, tmp_path, library=False)
    message = _error(invoke("bench", models["tpu"], "--device", "usb:0"), 1)
    assert "libedgetpu.so.1 is not installed" in message and "libedgetpu1-std" in message
    assert "no Coral USB Edge TPU is attached" in message


def test_edge_tpu_without_a_device(models, monkeypatch, tmp_path):
    _no_coral(monkeypatch, tmp_path, library=True)
    message = _error(invoke("bench", models["tpu"], "--device", "pci"), 1)
    assert message.startswith("Error: no Coral PCIe Edge TPU found") and "not installed" not in message


def test_too_large_for_the_board(models, monkeypatch):
    from tfscissor.compile.boards import BOARDS, Board

    monkeypatch.setitem(BOARDS, "nano33ble", Board("nano33ble", "Tiny board", 64 << 10, 256 << 10))
    message = _error(invoke("bench", models["model"], "--device", "tflm", "--runs", "2", "--board", "nano33ble"), 1)
    assert re.search(r"does not fit the Tiny board: flash [\d,]+ bytes > 65,536", message)

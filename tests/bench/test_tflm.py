import json
import subprocess
import sys
from pathlib import Path

import pytest

import tfscissor
from tests.compile.conftest import MODEL_NAMES
from tfscissor.bench import bench, bench_tflm
from tfscissor.compile import write_tflm_project
from tfscissor.compile.boards import BOARDS, RUNTIME_FLASH, RUNTIME_RAM, Board
from tfscissor.deploy import measure_arena, read_model
from tfscissor.deploy.arena import configured_arena
from tfscissor.errors import ModelError, UsageError


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_arena_flash_ops_and_host_time(int8_model, name):
    model = int8_model(name)
    result = bench_tflm(model, runs=5, warmup=1)
    info = read_model(model)
    assert result["arena_bytes"] == measure_arena(model)
    assert result["configured_arena_bytes"] == configured_arena(result["arena_bytes"]) > result["arena_bytes"]
    assert result["model_bytes"] == len(model)
    assert result["ops"] == list(info.ops) and result["op_counts"] == dict(info.op_counts)
    assert result["input_shape"] == [1, 16, 16, 3] and result["input_dtype"] == "int8"
    assert 0 < result["min_ms"] <= result["median_ms"] <= result["p90_ms"] <= result["max_ms"]
    assert result["first_inference_ms"] > 0 and result["runs"] == 5 and result["warmup"] == 1
    assert result["timing"].startswith("host time, not a device figure")
    json.dumps(result)


def test_board_fit_is_what_compile_decides(int8_model, tmp_path):
    model = int8_model("plain")
    result = bench(model, device="tflm", runs=2, warmup=0, board="nano33ble")
    project = write_tflm_project(model, tmp_path / "fw", board="nano33ble")
    stage = result["stages"]["classifier"]
    fit = result["board"]
    assert (fit["flash_bytes"], fit["ram_bytes"]) == (project.fit.flash, project.fit.ram)
    assert fit["flash_bytes"] == stage["model_bytes"] + RUNTIME_FLASH
    assert fit["ram_bytes"] == stage["configured_arena_bytes"] + RUNTIME_RAM
    assert fit["warnings"] == [] and fit["estimated_runtime_bytes"] == {"flash": RUNTIME_FLASH, "ram": RUNTIME_RAM}
    assert result["total"]["arena_bytes"] == stage["arena_bytes"]


def test_two_stage_sums_and_board_fit_match_compile(int8_model, whole_image_cropper, tmp_path):
    model = int8_model("resnet")
    result = bench(model, device="tflm", cropper=whole_image_cropper, runs=3, warmup=1, board="stm32h7")
    project = write_tflm_project(model, tmp_path / "fw", cropper=whole_image_cropper, board="stm32h7")
    stages = result["stages"]
    assert list(stages) == ["cropper", "classifier"]  # the firmware crops in C: no host crop to time
    assert result["total"]["median_ms"] == pytest.approx(
        stages["cropper"]["median_ms"] + stages["classifier"]["median_ms"]
    )
    assert result["total"]["model_bytes"] == len(model) + len(whole_image_cropper)
    assert result["total"]["arena_bytes"] == stages["cropper"]["arena_bytes"] + stages["classifier"]["arena_bytes"]
    assert (result["board"]["flash_bytes"], result["board"]["ram_bytes"]) == (project.fit.flash, project.fit.ram)
    assert result["board"]["runner_buffer_bytes"] == project.buffer_bytes > 0


def _board_around(monkeypatch, stage, ram_share):
    """A board preset whose RAM is the stage's need divided by ``ram_share``: above 1 it does not fit."""
    ram = int((stage["configured_arena_bytes"] + RUNTIME_RAM) / ram_share)
    monkeypatch.setitem(BOARDS, "tiny", Board("tiny", "Tiny board", 4 << 20, ram))


def test_too_large_for_the_board(monkeypatch, tiny_model_bytes):
    stage = bench_tflm(tiny_model_bytes, runs=1, warmup=0)
    _board_around(monkeypatch, stage, 1.1)
    with pytest.raises(ModelError, match=r"does not fit the Tiny board: RAM [\d,]+ bytes > [\d,]+ .*arena"):
        bench(tiny_model_bytes, device="tflm", runs=1, warmup=0, board="tiny")


def test_nearly_full_board_warns(monkeypatch, tiny_model_bytes):
    stage = bench_tflm(tiny_model_bytes, runs=1, warmup=0)
    _board_around(monkeypatch, stage, 0.95)
    result = bench(tiny_model_bytes, device="tflm", runs=1, warmup=0, board="tiny")
    assert len(result["board"]["warnings"]) == 1 and "RAM is 95% full" in result["board"]["warnings"][0]


def test_unknown_board(tiny_model_bytes):
    with pytest.raises(UsageError, match="unknown board 'uno'"):
        bench(tiny_model_bytes, device="tflm", runs=1, warmup=0, board="uno")


def test_not_a_tflite_path(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a .tflite file"):
        bench_tflm(tmp_path / "m.keras")


def test_does_not_import_tensorflow(tiny_model_path, whole_image_cropper, tmp_path):
    cropper = tmp_path / "cropper.tflite"
    cropper.write_bytes(whole_image_cropper)
    code = (
        "import sys\n"
        "from tfscissor.bench import bench\n"
        f"result = bench({str(tiny_model_path)!r}, device='tflm', cropper={str(cropper)!r}, runs=2, warmup=1,"
        " board='rp2040')\n"
        "assert result['total']['arena_bytes'] > 0 and result['board']['board'] == 'rp2040'\n"
        "loaded = [m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')]\n"
        "assert not loaded, loaded\n"
    )
    root = Path(tfscissor.__file__).resolve().parents[1]  # so the child imports this checkout
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=root)

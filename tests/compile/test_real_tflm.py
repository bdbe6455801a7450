"""The generated projects, single-model and two-stage, built against a real TFLM tree and run.

test_build.py, test_two_stage_project.py and test_ports.py prove the glue against the stand-in of ``fake_tflm.py``;
this proves that TFLM itself, compiled from a tree by the generated Makefile and CMake port alone, gives the
known-good output: on the host with the reference kernels (``TFLM_DIR``: a tree made by TFLM's
create_tflm_tree.py), and as the Cortex-M4 firmware with the CMSIS-NN kernels at -Os under qemu
(``TFLM_CORTEX_M_DIR``: a tree made with ``--makefile_options="TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp
OPTIMIZED_KERNEL_DIR=cmsis_nn"``). Every build compiles the whole tree, which takes minutes.
"""

import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.compile.conftest import WHOLE_IMAGE_SHAPE
from tests.compile.helpers import build_cmake_port, square_image
from tfscissor.compile import write_tflm_project
from tfscissor.deploy import CropPolicy

TFLM_DIR = os.environ.get("TFLM_DIR")
CORTEX_M_DIR = os.environ.get("TFLM_CORTEX_M_DIR")
NO_HOST_TOOLS = shutil.which("make") is None or shutil.which("g++") is None or shutil.which("gcc") is None
NO_QEMU = any(shutil.which(tool) is None for tool in ("cmake", "arm-none-eabi-g++", "qemu-system-arm"))
BOARD_C = Path(__file__).with_name("c")
LABELS = ["a", "b", "c"]
LOOPS = 3  # as many loop()s as `make run` runs
# What RespondToClassification prints for each loop().
SCORES_LINE = re.compile(r"^class (\d+) \((\w+)\) score -?\d+\.\d{3} scores((?: -?\d+)+)\r?$", re.M)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["single", "two-stage"])
def project(request, int8_model, whole_image_cropper, tmp_path_factory):
    """The project for the Nano 33 BLE (a Cortex-M4F, so it has the cmake/ port), written once per module."""
    out = tmp_path_factory.mktemp(request.param) / "fw"
    if request.param == "single":
        return write_tflm_project(int8_model("mobilenetv2"), out, labels=LABELS, name="app", board="nano33ble")
    # A bright square, so that the cropper's box is whatever it makes of it, as in test_two_stage_project.py.
    image = square_image(WHOLE_IMAGE_SHAPE)
    return write_tflm_project(
        int8_model("mobilenetv2"),
        out,
        labels=LABELS,
        name="pipe",
        cropper=whole_image_cropper,
        policy=CropPolicy(scales=(0.5, 0.75), margin=1.25),
        sample_image=image,
        board="nano33ble",
    )


def _sample(project):
    return json.loads(project.file("manifest.json").read_text())["sample"]


def _assert_loops_print_the_known_output(project, output):
    """``output`` of ``LOOPS`` loop()s: the arena line of each model and, each loop, the known-good scores."""
    if project.cropper is None:
        arenas = {"Tensor": project.arena_bytes}
    else:
        arenas = {"Cropper": project.cropper.arena_bytes, "Classifier": project.arena_bytes}
    for what, size in arenas.items():
        used = re.search(rf"^{what} arena: (\d+) of {size} bytes used\.\r?$", output, re.M)
        assert used and 0 < int(used.group(1)) <= size, output
    sample = _sample(project)
    if project.cropper is not None:
        x0, y0, x1, y1 = sample["window"]
        crop = f"Crop: x {x0}..{x1}, y {y0}..{y1}{' (no box: the whole image)' if sample['fallback'] else ''}."
        assert output.count(crop) == LOOPS, output
    lines = SCORES_LINE.findall(output)
    assert len(lines) == LOOPS, output
    for category, label, scores in lines:
        scores = [int(v) for v in scores.split()]
        # Within one step, as model_test.cc allows: CMSIS-NN rounds differently from the reference kernels.
        assert np.abs(np.array(scores) - sample["output"]).max() <= 1, output
        assert int(category) == int(np.argmax(scores)) and label == LABELS[int(category)]


def _make(project, *args):
    command = ["make", "-C", str(project.path), f"-j{os.cpu_count()}", f"TFLM_DIR={TFLM_DIR}", *args]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.skipif(not TFLM_DIR, reason="TFLM_DIR is not set: give a tree made by TFLM's create_tflm_tree.py")
@pytest.mark.skipif(NO_HOST_TOOLS, reason="needs make and the host compilers gcc and g++")
def test_host_build_passes_the_known_good_test_and_runs(project):
    # The project's own test first; then the app, which builds on the same libtflm.a.
    result = _make(project, "test")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    passed = "PASS: 3 scores within 1" if project.cropper is None else "PASS: box, window and 3 scores as known"
    assert passed in result.stdout
    result = _make(project, "run")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # The reference tree's DebugLog prints MicroPrintf's messages itself, on stderr.
    _assert_loops_print_the_known_output(project, result.stdout + result.stderr)


def _run_until(command, pattern, count, timeout):
    """Run ``command``, which never ends by itself, until ``pattern`` has matched ``count`` lines of its output
    (or ``timeout`` seconds have passed); return the output."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # A hung firmware prints nothing more: the timer ends qemu, and with it the read.
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    lines, matched = [], 0
    try:
        for line in process.stdout:
            lines.append(line)
            matched += pattern.match(line) is not None
            if matched == count:
                break
    finally:
        timer.cancel()
        process.kill()
        process.wait()
    return "".join(lines)


@pytest.mark.skipif(not CORTEX_M_DIR, reason="TFLM_CORTEX_M_DIR is not set: give a cortex_m_generic cmsis_nn tree")
@pytest.mark.skipif(NO_QEMU, reason="needs cmake, arm-none-eabi-g++ and qemu-system-arm (Debian: see make system-deps)")
def test_cortex_m4_firmware_with_cmsis_nn_runs_under_qemu(project, tmp_path):
    # The cmake/ port as generated (its CPU flags, its -Os default), linked with what a board supplies (start-up
    # code, linker script, _write: tests/compile/c/), for qemu's Cortex-M4F board.
    build = tmp_path / "build"
    startup, linker_script = BOARD_C / "cortex_m4_board.c", BOARD_C / "mps2_an386.ld"
    build_cmake_port(project, build, CORTEX_M_DIR, startup, linker_script, jobs=os.cpu_count())
    commands = [entry["command"] for entry in json.loads((build / "compile_commands.json").read_text())]
    assert any("/kernels/cmsis_nn/conv.cc" in command for command in commands)
    for flag in ("-Os", "-DCMSIS_NN", "-mcpu=cortex-m4"):
        assert all(flag in command.split() for command in commands), flag
    # The port's main() loops for ever: qemu runs until the last loop has printed its scores.
    machine = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"]
    semihosting = ["-semihosting-config", "enable=on,target=native"]
    elf = build / f"{project.name}.elf"
    output = _run_until([*machine, *semihosting, "-kernel", str(elf)], SCORES_LINE, LOOPS, timeout=120)
    _assert_loops_print_the_known_output(project, output)

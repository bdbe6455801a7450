"""The generated Makefile and TFLM glue, built and run against the stand-in TFLM tree of ``fake_tflm.py``: a
Cortex-M tree (``MicroPrintf`` prints only through the callback ``main()`` registers) unless a test says otherwise."""

import shutil
import subprocess

import pytest

from tests.compile.fake_tflm import write_fake_tflm
from tfscissor.compile import write_tflm_project

NO_HOST_TOOLS = shutil.which("make") is None or shutil.which("g++") is None
pytestmark = pytest.mark.skipif(NO_HOST_TOOLS, reason="needs make and the host C++ compiler g++")
WARNINGS = "-O1 -Wall -Wextra -Werror"


@pytest.fixture(scope="module")
def fake_tflm(tmp_path_factory):
    return write_fake_tflm(tmp_path_factory.mktemp("tflm-tree"))


def _project(int8_model, tmp_path, model_name):
    return write_tflm_project(int8_model(model_name), tmp_path / "proj", labels=["a", "b", "c"], name="app")


def _fake_sizes(project):
    return f"-DFAKE_INPUT_BYTES={16 * 16 * 3}u -DFAKE_OUTPUT_BYTES={len(project.labels)}u"


def _make(project, *args):
    return subprocess.run(["make", "-C", str(project.path), *args], capture_output=True, text=True)


@pytest.mark.parametrize("model_name", ["resnet", "zoo"])
def test_host_build_runs_setup_and_loop(int8_model, tmp_path, fake_tflm, model_name):
    project = _project(int8_model, tmp_path, model_name)
    result = _make(project, f"TFLM_DIR={fake_tflm}", f"TARGET_FLAGS={_fake_sizes(project)}", f"OPT={WARNINGS}", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "libtflm.a" in result.stdout  # TFLM's sources were found under TFLM_DIR and archived
    # Through the debug log callback that main() registers: the tree drops messages while none is registered.
    assert f"Tensor arena: {16 * 16 * 3 + 3} of {project.arena_bytes} bytes used." in result.stdout
    # Three loops, each ending in the responder; the fake kernels score every class 127, so argmax is 0.
    assert result.stdout.count("class 0 (a) score ") == 3


def test_host_build_against_a_reference_tree_prints_through_its_debug_log(int8_model, tmp_path):
    # TFLM's reference tree has no RegisterDebugLogCallback: main() links without it and DebugLog prints itself.
    reference = write_fake_tflm(tmp_path / "reference-tree", target="reference")
    project = _project(int8_model, tmp_path, "plain")
    result = _make(project, f"TFLM_DIR={reference}", f"TARGET_FLAGS={_fake_sizes(project)}", f"OPT={WARNINGS}", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Tensor arena: {16 * 16 * 3 + 3} of {project.arena_bytes} bytes used." in result.stderr
    assert result.stdout.count("class 0 (a) score ") == 3
    assert "-DCMSIS_NN" not in result.stdout and "-DPROJECT_GENERATION" not in result.stdout


def test_makefile_defines_what_a_cmsis_nn_cortex_m_tree_needs(int8_model, tmp_path):
    # The stand-in's CMSIS-NN conv.cc redefines Register_CONV_2D_INT8() without CMSIS_NN, and its cortex_m_generic
    # micro_time.cc reads DWT, which no header declares, without PROJECT_GENERATION: as TFLM's own do.
    tree = write_fake_tflm(tmp_path / "cmsis-nn-tree", cmsis_nn=True)
    project = _project(int8_model, tmp_path, "plain")
    result = _make(project, f"TFLM_DIR={tree}", f"TARGET_FLAGS={_fake_sizes(project)}", f"OPT={WARNINGS}", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    compiles = [line for line in result.stdout.splitlines() if " -c " in line]
    assert any("kernels/cmsis_nn/conv.cc" in line for line in compiles)
    assert any("third_party/cmsis_nn/Source/arm_fake_s8.c" in line for line in compiles)
    for flag in ("-DCMSIS_NN", "-DPROJECT_GENERATION", "-DTF_LITE_MCU_DEBUG_LOG"):
        assert all(flag in line for line in compiles), flag


def test_model_test_stops_at_the_first_wrong_score(int8_model, tmp_path, fake_tflm):
    project = _project(int8_model, tmp_path, "plain")
    result = _make(project, f"TFLM_DIR={fake_tflm}", f"TARGET_FLAGS={_fake_sizes(project)}", f"OPT={WARNINGS}", "test")
    assert result.returncode != 0
    assert result.stdout.count("FAIL: score") == 1  # the fake kernels give 127, never the known-good scores


def test_resolver_size_is_exactly_enough(int8_model, tmp_path, fake_tflm):
    # The fake resolver rejects one op too many, like TFLM's: shrinking N by one must break setup().
    project = _project(int8_model, tmp_path, "mobilenetv2")
    header = project.file("op_resolver.h")
    text = header.read_text()
    count = len(project.ops)
    header.write_text(text.replace(f"kOpCount = {count};", f"kOpCount = {count - 1};"))
    result = _make(project, f"TFLM_DIR={fake_tflm}", f"TARGET_FLAGS={_fake_sizes(project)}", "run")
    assert result.returncode == 0 and "Registering the model's ops failed." in result.stdout


def test_missing_tflm_dir_is_explained(int8_model, tmp_path):
    project = _project(int8_model, tmp_path, "plain")
    result = _make(project, "all")
    assert result.returncode != 0 and "set TFLM_DIR to a tree made by TFLM's create_tflm_tree.py" in result.stdout


NO_ARM_GCC = shutil.which("arm-none-eabi-g++") is None


@pytest.mark.skipif(NO_ARM_GCC, reason="arm-none-eabi-g++ is not on PATH (Debian: gcc-arm-none-eabi)")
def test_glue_cross_compiles_for_cortex_m4(int8_model, tmp_path, fake_tflm):
    project = _project(int8_model, tmp_path, "mobilenetv2")
    flags = f"-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 {_fake_sizes(project)}"
    result = _make(
        project, f"TFLM_DIR={fake_tflm}", "CXX=arm-none-eabi-g++", f"TARGET_FLAGS={flags}", f"OPT={WARNINGS}", "objects"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    objects = sorted(p.name for p in (project.path / "build").glob("*.o"))
    assert len(objects) == 7 and "main_functions.o" in objects
    header = (project.path / "build" / "main_functions.o").read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 40  # EM_ARM

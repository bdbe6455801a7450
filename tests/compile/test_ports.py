"""Board ports: every port builds every root source of the project, the manifest records the board's commands,
and the plain CMake port configures and cross-compiles against the stand-in TFLM tree of ``fake_tflm.py``."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.compile.fake_tflm import write_fake_tflm
from tests.compile.helpers import build_cmake_port
from tfscissor.compile import write_tflm_project
from tfscissor.compile.boards import BOARDS, RUNTIME_FLASH, RUNTIME_RAM, Board, BoardFit, check_fit
from tfscissor.compile.ports import HOST_ONLY, PORTS, _cmake_app_sources, add_board_port, app_sources, board_ports

# A project as write_tflm_project hands it to the board step, with a plain-C source and a header of the kind
# the two-stage runner adds, and the cropper's own project, whose main_functions.cc must not be built again.
PROJECT = {
    "main.cc": "int main() {}\n",
    "model_test.cc": "int main() {}\n",
    "main_functions.cc": "// setup, loop\n",
    "main_functions.h": "// setup, loop\n",
    "model_data.cc": "// model\n",
    "preprocess.c": "/* C */\n",
    "preprocess.h": "/* C */\n",
    "cropper/main_functions.cc": "// the cropper's own\n",
    "README.md": "# app\n",
    "manifest.json": json.dumps({"format": "tfscissor.tflm/1", "name": "app", "files": ["README.md"]}),
    "model.tflite": b"TFL3",
}
CMAKE_PORTS = {
    "esp-idf": "esp-idf/main/CMakeLists.txt",
    "zephyr": "zephyr/CMakeLists.txt",
    "cmake": "cmake/CMakeLists.txt",
}


def _fit(name):
    return check_fit(name, 1000, 1000)


def test_every_board_maps_to_a_port_and_every_cortex_m_also_gets_cmake():
    assert {name: board.port for name, board in BOARDS.items()} == {
        "esp32s3": "esp-idf",
        "nano33ble": "arduino",
        "stm32h7": "zephyr",
        "rp2040": "zephyr",
    }
    files = add_board_port(PROJECT, _fit("rp2040"), "app")
    assert {path.split("/")[0] for path in set(files) - set(PROJECT)} == {"zephyr", "cmake"}
    assert not any(path.startswith("cmake/") for path in add_board_port(PROJECT, _fit("esp32s3"), "app"))


def test_app_sources_are_every_root_c_and_cc_file_but_the_host_ones():
    assert app_sources(PROJECT) == ["main_functions.cc", "model_data.cc", "preprocess.c"]
    assert set(HOST_ONLY) == {"main.cc", "model_test.cc"}


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not on PATH (Debian: cmake)")
def test_the_cmake_glob_finds_what_app_sources_names(tmp_path):
    # The block every CMake-based port shares, run by CMake itself on a folder laid out like PROJECT.
    for rel, content in PROJECT.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    # A configure run rather than `cmake -P`, which refuses CONFIGURE_DEPENDS.
    (tmp_path / "glob").mkdir()
    (tmp_path / "glob" / "CMakeLists.txt").write_text(
        f'cmake_minimum_required(VERSION 3.20)\nproject(glob NONE)\nset(PROJECT_ROOT "{tmp_path}")\n'
        f"{_cmake_app_sources()}\n"
        'foreach(f ${APP_SOURCES})\n  get_filename_component(n "${f}" NAME)\n  message("${n}")\nendforeach()\n'
    )
    result = subprocess.run(
        ["cmake", "-S", str(tmp_path / "glob"), "-B", str(tmp_path / "glob-build")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.split()) == app_sources(PROJECT)


@pytest.mark.parametrize("port", sorted(CMAKE_PORTS))
def test_cmake_based_ports_build_the_globbed_sources(port):
    board = next(b for b in BOARDS.values() if port in (b.port, "cmake" if b.cortex_m else None))
    files = add_board_port(PROJECT, _fit(board.name), "app")
    text = files[CMAKE_PORTS[port]]
    block = _cmake_app_sources(configure_depends=port != "esp-idf")
    assert block in text and "${APP_SOURCES}" in text.split(block)[1]
    assert "{{" not in "".join(v for k, v in files.items() if k.startswith(port + "/"))


def test_esp_idf_port_requires_the_component_and_fills_the_boards_flash():
    files = add_board_port(PROJECT, _fit("esp32s3"), "app")
    assert "REQUIRES esp-tflite-micro" in files["esp-idf/main/CMakeLists.txt"]
    assert "espressif/esp-tflite-micro:" in files["esp-idf/main/idf_component.yml"]
    assert 'CONFIG_IDF_TARGET="esp32s3"' in files["esp-idf/sdkconfig.defaults"]
    assert "CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y" in files["esp-idf/sdkconfig.defaults"]
    assert files["esp-idf/partitions.csv"].splitlines()[-1].split()[-1] == hex(8 * 1024 * 1024 - 0x10000)
    assert "setup();" in files["esp-idf/main/app_main.cc"] and "loop();" in files["esp-idf/main/app_main.cc"]


def _write(root, files, prefix=""):
    for rel, content in files.items():
        if rel.startswith(prefix):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not on PATH (Debian: cmake)")
def test_esp_idf_component_registers_every_source_when_read_in_script_mode(tmp_path):
    # ESP-IDF first reads each component's CMakeLists.txt with `cmake -P`, to learn its requirements: this is
    # that pass, with a stand-in idf_component_register that prints what it was given.
    _write(tmp_path, add_board_port(PROJECT, _fit("esp32s3"), "app"))
    (tmp_path / "requirements.cmake").write_text(
        "function(idf_component_register)\n"
        '  cmake_parse_arguments(arg "" "" "SRCS;INCLUDE_DIRS;REQUIRES" ${ARGN})\n'
        '  foreach(s ${arg_SRCS})\n    get_filename_component(n "${s}" NAME)\n    message("SRC ${n}")\n  endforeach()\n'
        '  message("INCLUDE ${arg_INCLUDE_DIRS}")\n  message("REQUIRES ${arg_REQUIRES}")\n'
        "endfunction()\n"
        f'include("{tmp_path}/esp-idf/main/CMakeLists.txt")\n'
    )
    result = subprocess.run(["cmake", "-P", str(tmp_path / "requirements.cmake")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert sorted(line[4:] for line in lines if line.startswith("SRC ")) == sorted(
        ["app_main.cc", *app_sources(PROJECT)]
    )
    assert f"INCLUDE {tmp_path}" in lines and "REQUIRES esp-tflite-micro" in lines


NO_HOST_BUILD = shutil.which("cmake") is None or shutil.which("g++") is None or shutil.which("gcc") is None


@pytest.mark.skipif(NO_HOST_BUILD, reason="needs cmake and the host compilers gcc and g++")
def test_zephyr_application_compiles_every_source_against_a_stand_in_zephyr(int8_model, tmp_path):
    # The stand-in Zephyr package does what Zephyr's does for an application: it starts the CMake project and
    # makes the `app` library, here with the fake TFLM's headers where the tflite-micro module puts TFLM's. It
    # also links `app` with the fake TFLM and a printk writing to stderr into a program that runs the port's main().
    project = write_tflm_project(int8_model("plain"), tmp_path / "fw", labels=["a", "b", "c"], board="stm32h7")
    (project.path / "preprocess.c").write_text("int tfscissor_preprocess_probe(int x) { return x + 1; }\n")
    fake = write_fake_tflm(tmp_path / "tflm-tree")
    package = tmp_path / "zephyr-package"
    (package / "include" / "zephyr" / "sys").mkdir(parents=True)
    (package / "include" / "zephyr" / "sys" / "printk.h").write_text(
        '#pragma once\nextern "C" void printk(const char* format, ...);\n'
    )
    (package / "printk.cc").write_text(
        "#include <cstdarg>\n#include <cstdio>\n"
        'extern "C" void printk(const char* format, ...) {\n'
        "  va_list args;\n  va_start(args, format);\n  std::vfprintf(stderr, format, args);\n  va_end(args);\n}\n"
    )
    fake_sources = " ".join(f'"{p}"' for p in sorted(fake.rglob("*.cc")))
    flags = f"-DTF_LITE_STATIC_MEMORY -DFAKE_INPUT_BYTES={16 * 16 * 3}u -DFAKE_OUTPUT_BYTES=3u -DFAKE_MAX_INVOKES=2"
    (package / "ZephyrConfig.cmake").write_text(
        "project(Zephyr-Kernel LANGUAGES C CXX)\n"
        'add_library(app STATIC "")\n'
        f'target_include_directories(app PRIVATE "{fake}" "{package / "include"}")\n'
        f"target_compile_options(app PRIVATE {flags} -Wall -Wextra -Werror $<$<COMPILE_LANGUAGE:CXX>:-std=c++17>)\n"
        f'add_executable(zephyr_stand_in "{package / "printk.cc"}" {fake_sources})\n'
        f'target_include_directories(zephyr_stand_in PRIVATE "{fake}")\n'
        f"target_compile_options(zephyr_stand_in PRIVATE {flags} -DPROJECT_GENERATION -std=c++17)\n"
        "target_link_libraries(zephyr_stand_in PRIVATE app)\n"
    )
    build = tmp_path / "build"
    configure = ["cmake", "-S", str(project.path / "zephyr"), "-B", str(build), f"-DZephyr_DIR={package}"]
    result = subprocess.run(configure, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(["cmake", "--build", str(build), "--target", "app"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    objects = {p.name.split(".")[0] for p in build.rglob("*.o") if "/app.dir/" in p.as_posix()}
    assert objects == {
        "main",
        *(name.rsplit(".", 1)[0] for name in app_sources(dict.fromkeys(p.name for p in project.path.iterdir()))),
    }
    mains = [p.relative_to(build).as_posix() for p in build.rglob("main.cc.o")]
    assert len(mains) == 1 and mains[0].endswith("/src/main.cc.o")  # the port's, not the host's
    # The port's main() registers printk as MicroPrintf's output (the fake tree drops messages otherwise).
    result = subprocess.run(["cmake", "--build", str(build), "--target", "zephyr_stand_in"], capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run([str(build / "zephyr_stand_in")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Tensor arena: {16 * 16 * 3 + 3} of {project.arena_bytes} bytes used." in result.stderr
    assert result.stdout.count("class 0 (a) score ") == 2


def test_zephyr_port_enables_the_tflm_module():
    files = add_board_port(PROJECT, _fit("stm32h7"), "app")
    conf = files["zephyr/prj.conf"].splitlines()
    assert {"CONFIG_TENSORFLOW_LITE_MICRO=y", "CONFIG_CPP=y", "CONFIG_STD_CPP17=y"} <= set(conf)
    assert "find_package(Zephyr" in files["zephyr/CMakeLists.txt"]


def test_arduino_sketch_copies_every_root_source_and_header():
    files = add_board_port(PROJECT, _fit("nano33ble"), "app")
    sketch = sorted(path.removeprefix("arduino/app/") for path in files if path.startswith("arduino/"))
    assert sketch == [
        "app.ino",
        "main_functions.cpp",
        "main_functions.h",
        "model_data.cpp",
        "preprocess.c",
        "preprocess.h",
    ]
    assert files["arduino/app/preprocess.c"] == PROJECT["preprocess.c"]
    assert "#include <Chirale_TensorFlowLite.h>" in files["arduino/app/app.ino"]


def test_manifest_and_readme_name_the_board_port_and_commands():
    files = add_board_port(PROJECT, _fit("nano33ble"), "app")
    entry = json.loads(files["manifest.json"])["board"]
    assert entry["port"] == "arduino" and entry["ports"] == ["arduino", "cmake"]
    assert entry["dir"] == "arduino/app" and entry["tool"] == "arduino-cli"
    assert entry["build"] == ["arduino-cli compile --fqbn arduino:mbed_nano:nano33ble ."]
    assert entry["flash"] == ["arduino-cli upload --fqbn arduino:mbed_nano:nano33ble ."]
    assert entry["setup"] == [
        "arduino-cli core install arduino:mbed_nano",
        "arduino-cli lib install Chirale_TensorFLowLite",
    ]
    assert entry["needs"] == {"flash_bytes": 1000 + 128 * 1024, "ram_bytes": 1000 + 8 * 1024, "warnings": []}
    listed = json.loads(files["manifest.json"])["files"]
    assert "arduino/app/app.ino" in listed and "cmake/CMakeLists.txt" in listed
    readme = files["README.md"]
    assert "## Board: Arduino Nano 33 BLE" in readme and "tfscissor flash DIR --board nano33ble" in readme
    assert "    arduino-cli upload --fqbn arduino:mbed_nano:nano33ble ." in readme
    assert PROJECT["README.md"] == "# app\n"  # the input is not changed


def test_a_board_without_a_port_only_records_the_fit():
    fit = BoardFit(Board("tiny", "a tiny board", 1 << 20, 1 << 18), 1, 1, ())
    files = add_board_port(PROJECT, fit, "app")
    assert set(files) == set(PROJECT)
    assert json.loads(files["manifest.json"])["board"]["port"] is None


@pytest.mark.parametrize("board", ["esp32s3", "rp2040"])
def test_written_project_holds_the_port_and_its_manifest_entry(int8_model, tmp_path, board):
    project = write_tflm_project(int8_model("plain"), tmp_path / "fw", name="app", board=board)
    manifest = json.loads(project.file("manifest.json").read_text())
    port = PORTS[BOARDS[board].port]
    assert manifest["board"]["name"] == board and manifest["board"]["port"] == port.name
    assert all(project.file(rel).is_file() for rel in manifest["files"])
    assert (project.path / port.workdir("app")).is_dir()
    assert {rel for rel in project.files if rel.startswith(port.name + "/")} <= set(manifest["files"])


# -- the plain CMake port, built ---------------------------------------------------------------------------

NO_CROSS = shutil.which("cmake") is None or shutil.which("arm-none-eabi-g++") is None
STARTUP = """#include <stdint.h>
extern int main(void);
extern uint32_t _estack;
void Reset_Handler(void) { main(); for (;;) {} }
__attribute__((section(".isr_vector"), used)) const void* const vectors[] = {&_estack, (const void*)Reset_Handler};
"""
LINKER_SCRIPT = """MEMORY { FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 2M  RAM (rwx) : ORIGIN = 0x24000000, LENGTH = 512K }
ENTRY(Reset_Handler)
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .text : { *(.text*) *(.rodata*) KEEP(*(.init)) KEEP(*(.fini)) } > FLASH
  .ARM.exidx : { *(.ARM.exidx*) } > FLASH
  .data : { *(.data*) } > RAM AT > FLASH
  .bss : { __bss_start__ = .; *(.bss*) *(COMMON) __bss_end__ = .; } > RAM
  end = .;
  _estack = ORIGIN(RAM) + LENGTH(RAM);
}
"""


def _build_cmake_port(project, tmp_path, fake_sizes, tree=None, startup=None, linker_script=None, options=()):
    """Configure and build the project's cmake/ port against ``tree`` (default: the fake Cortex-M tree), linked
    with ``startup`` and ``linker_script`` (default: a minimal start-up), with more cmake ``options``; returns the
    build folder."""
    if startup is None:
        startup, linker_script = tmp_path / "startup.c", tmp_path / "board.ld"
        startup.write_text(STARTUP)
        linker_script.write_text(LINKER_SCRIPT)
    fake = tree or write_fake_tflm(tmp_path / "tflm-tree")
    build = tmp_path / "build"
    cxx_flags = f"{fake_sizes} -Wall -Wextra -Werror"
    build_cmake_port(project, build, fake, startup, linker_script, cxx_flags=cxx_flags, options=options)
    elf = build / f"{project.name}.elf"
    header = elf.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 40  # EM_ARM
    return build


def _compiled(build):
    """The stems of every object file under ``build``."""
    return {p.name.split(".")[0] for p in build.rglob("*.obj")}


def _root_sources(project):
    return {name.rsplit(".", 1)[0] for name in app_sources(dict.fromkeys(p.name for p in project.path.iterdir()))}


@pytest.mark.skipif(NO_CROSS, reason="needs cmake and arm-none-eabi-g++ (Debian: cmake gcc-arm-none-eabi)")
def test_cmake_port_cross_compiles_every_root_source_and_links_with_a_startup(int8_model, tmp_path):
    project = write_tflm_project(int8_model("mobilenetv2"), tmp_path / "fw", labels=["a", "b", "c"], board="stm32h7")
    # A source added to the project root after it was written is built too; the host-only ones are not.
    (project.path / "preprocess.c").write_text("int tfscissor_preprocess_probe(int x) { return x + 1; }\n")
    build = _build_cmake_port(project, tmp_path, f"-DFAKE_INPUT_BYTES={16 * 16 * 3}u -DFAKE_OUTPUT_BYTES=3u")
    assert _root_sources(project) == {"classification_responder", "image_provider", "main_functions", "model_data",
                                      "model_settings", "preprocess", "sample_data"}  # fmt: skip
    assert _compiled(build) >= _root_sources(project) | {"main", "fake_tflm"}
    assert "model_test" not in _compiled(build) and (build / "libtflm.a").is_file()
    mains = [p.relative_to(build).as_posix() for p in build.rglob("main.cc.obj")]
    assert mains == ["CMakeFiles/model_app.dir/main.cc.obj"]  # the port's, not the host's
    assert (build / "model.bin").stat().st_size > project.model_bytes  # the model array is in the image


@pytest.mark.skipif(NO_CROSS, reason="needs cmake and arm-none-eabi-g++ (Debian: cmake gcc-arm-none-eabi)")
def test_cmake_port_builds_the_two_stage_runner(int8_model, whole_image_cropper, tmp_path):
    project = write_tflm_project(
        int8_model("plain"), tmp_path / "fw", labels=["a", "b", "c"], cropper=whole_image_cropper, board="rp2040"
    )
    # The fake interpreters are made in setup()'s order: the cropper (whole image in, a box out), the classifier.
    sizes = f"-DFAKE_INPUT_BYTES={24 * 32 * 3}u,{16 * 16 * 3}u -DFAKE_OUTPUT_BYTES=4u,3u"
    build = _build_cmake_port(project, tmp_path, sizes)
    assert {"crop_policy", "cropper_data"} <= _root_sources(project) <= _compiled(build)
    assert (build / "model.bin").stat().st_size > project.model_bytes + project.cropper.model_bytes


@pytest.mark.skipif(NO_CROSS, reason="needs cmake and arm-none-eabi-g++ (Debian: cmake gcc-arm-none-eabi)")
def test_cmake_port_without_tflm_dir_says_what_to_set(tmp_path):
    files = add_board_port(PROJECT, _fit("stm32h7"), "app")
    for rel in ("cmake/CMakeLists.txt", "cmake/arm-none-eabi.cmake", "cmake/main.cc"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(files[rel])
    result = subprocess.run(
        [
            "cmake",
            "-S",
            str(tmp_path / "cmake"),
            "-B",
            str(tmp_path / "b"),
            "-DCMAKE_TOOLCHAIN_FILE=arm-none-eabi.cmake",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path / "cmake",
    )
    assert result.returncode != 0 and "set TFLM_DIR to a tree made by TFLM's create_tflm_tree.py" in result.stderr


def _compile_commands(build):
    return [entry["command"] for entry in json.loads((build / "compile_commands.json").read_text())]


NO_QEMU = NO_CROSS or shutil.which("qemu-system-arm") is None
BOARD_C = Path(__file__).with_name("c")


@pytest.mark.skipif(NO_QEMU, reason="needs cmake, arm-none-eabi-g++ and qemu-system-arm (Debian: see make system-deps)")
def test_cmake_port_runs_on_a_cortex_m4_with_cmsis_nn_at_os(int8_model, tmp_path):
    # A CMSIS-NN tree for cortex_m_generic, as create_tflm_tree.py makes it: the stand-in's kernels compile only
    # with CMSIS_NN and its micro_time.cc only with PROJECT_GENERATION, like TFLM's. Linked with what a board
    # supplies (start-up code, linker script, _write, _exit: tests/compile/c/) against newlib-nano, and run.
    project = write_tflm_project(int8_model("plain"), tmp_path / "fw", labels=["a", "b", "c"], board="nano33ble")
    tree = write_fake_tflm(tmp_path / "cmsis-nn-tree", cmsis_nn=True)
    build = _build_cmake_port(
        project,
        tmp_path,
        f"-DFAKE_INPUT_BYTES={16 * 16 * 3}u -DFAKE_OUTPUT_BYTES=3u -DFAKE_MAX_INVOKES=3",
        tree=tree,
        startup=BOARD_C / "cortex_m4_board.c",
        linker_script=BOARD_C / "mps2_an386.ld",
        options=["-DCPU_FLAGS=-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"],
    )
    commands = _compile_commands(build)
    assert any("kernels/cmsis_nn/conv.cc" in command for command in commands)
    for flag in ("-Os", "-DCMSIS_NN", "-DPROJECT_GENERATION", "-DTF_LITE_MCU_DEBUG_LOG"):
        assert all(flag in command.split() for command in commands), flag
    machine = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"]
    result = subprocess.run(
        [*machine, "-semihosting-config", "enable=on,target=native", "-kernel", str(build / "model.elf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr  # qemu writes the semihosting console (SYS_WRITEC) on stderr
    assert result.returncode == 0, output
    # MicroPrintf reaches _write through the callback main() registers; the scores print without float printf.
    assert f"Tensor arena: {16 * 16 * 3 + 3} of {project.arena_bytes} bytes used." in output
    output_tensor = json.loads(project.file("manifest.json").read_text())["output"]
    scale, zero = output_tensor["scale"], output_tensor["zero_point"]
    assert output.count(f"class 0 (a) score {(127 - zero) * scale:.3f} scores 127 127 127") == 3


@pytest.mark.skipif(NO_CROSS, reason="needs cmake and arm-none-eabi-g++ (Debian: cmake gcc-arm-none-eabi)")
def test_cmake_port_build_type_overrides_the_os_default(int8_model, tmp_path):
    project = write_tflm_project(int8_model("plain"), tmp_path / "fw", labels=["a", "b", "c"], board="rp2040")
    sizes = f"-DFAKE_INPUT_BYTES={16 * 16 * 3}u -DFAKE_OUTPUT_BYTES=3u"
    build = _build_cmake_port(project, tmp_path, sizes, options=["-DCMAKE_BUILD_TYPE=Release"])
    commands = _compile_commands(build)
    assert all("-O3" in c.split() and "-Os" not in c.split() for c in commands)
    assert not any("-DCMSIS_NN" in c for c in commands)  # a tree without the CMSIS-NN kernels


# -- what every port's firmware does -----------------------------------------------------------------------

# Each port's entry point, and the host's.
ENTRY_POINTS = {
    "esp32s3": "esp-idf/main/app_main.cc",
    "nano33ble": "arduino/app/app.ino",
    "stm32h7": "zephyr/src/main.cc",
    "rp2040": "cmake/main.cc",
    None: "main.cc",
}
OUTPUTS = {"esp32s3": "std::fputs(s, stdout)", "nano33ble": "Serial.print(s)", "stm32h7": 'printk("%s", s)'}


@pytest.mark.parametrize("board", ENTRY_POINTS)
def test_every_entry_point_registers_microprintfs_output_first(int8_model, tmp_path, board):
    project = write_tflm_project(int8_model("plain"), tmp_path / "fw", name="app", board=board)
    text = project.file(ENTRY_POINTS[board]).read_text()
    assert '#include "debug_log_output.h"' in text
    if board != "nano33ble":  # Arduino's core calls setup(): the sketch registers while its statics are made
        assert -1 < text.index("RegisterDebugLogOutput(WriteDebugLog);") < text.index("setup();")
    assert OUTPUTS.get(board, "std::fputs(s, stdout);\n  std::fflush(stdout);") in text
    if board == "nano33ble":
        assert "RegisterDebugLogOutput(WriteDebugLog);" in text and project.file("arduino/app/debug_log_output.h")
    header = project.file("debug_log_output.h").read_text()
    assert "RegisterDebugLogCallback(void (*callback)(const char* s)) __attribute__((weak));" in header


# A printf conversion of a float: newlib-nano prints nothing for it without -u _printf_float.
FLOAT_CONVERSION = re.compile(r"%[-+ #0]*(\d+|\*)?(\.(\d+|\*))?[fFeEgGaA]")


@pytest.mark.parametrize("board", ["esp32s3", "nano33ble", "stm32h7"])
def test_no_source_prints_a_float(int8_model, whole_image_cropper, tmp_path, board):
    project = write_tflm_project(
        int8_model("plain"), tmp_path / "fw", name="app", cropper=whole_image_cropper, board=board
    )
    sources = [rel for rel in project.files if rel.endswith((".c", ".cc", ".cpp", ".h", ".ino"))]
    assert "classification_responder.cc" in sources and "main_functions.cc" in sources
    for rel in sources:
        strings = re.findall(r'"(?:[^"\\\n]|\\.)*"', project.file(rel).read_text())
        assert not [s for s in strings if FLOAT_CONVERSION.search(s)], rel
    assert "FLOAT_PRINTF" not in "".join(
        project.file(rel).read_text() for rel in project.files if rel.endswith(".conf")
    )


@pytest.mark.parametrize(
    ("board", "arch"), [("nano33ble", "cortex-m4+fp"), ("stm32h7", "cortex-m7+fp"), ("rp2040", "cortex-m0plus")]
)
def test_readme_says_how_to_make_the_tree_and_what_a_bare_metal_board_supplies(int8_model, tmp_path, board, arch):
    project = write_tflm_project(int8_model("plain"), tmp_path / "fw", name="app", board=board)
    readme = project.file("README.md").read_text()
    for needed in (
        "numpy and Pillow",
        "the network",
        "TARGET_TOOLCHAIN_ROOT",
        "`cortex-m4` is a Cortex-M4 without FPU",
    ):
        assert needed in readme, needed
    assert f"TARGET_ARCH={arch} OPTIMIZED_KERNEL_DIR=cmsis_nn" in readme
    assert f"TARGET_ARCH={arch} OPTIMIZED_KERNEL_DIR=cmsis_nn" in project.file("cmake/CMakeLists.txt").read_text()
    for needed in (
        "`_write`",
        "start-up code",
        "linker script",
        "a stack above 1.2 KiB",
        "OPT=-Os",
        "-u _printf_float",
    ):
        assert needed in readme, needed
    # The board fit's allowances, what they are made of, and what each port's build adds to them.
    assert f"{RUNTIME_FLASH // 1024} KiB of flash and {RUNTIME_RAM // 1024} KiB of RAM" in readme
    assert "95 to 106 KB of flash with the CMSIS-NN kernels (64 KB with the reference ones)" in readme
    for port in board_ports(BOARDS[board]):
        assert f"With `{port.name}/`, {port.runtime}." in readme

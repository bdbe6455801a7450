"""Board ports: the build system around a generated TFLM project, and the commands that build and flash it.

A port's files go in ``<project>/<port>/`` and build the project's own sources, one folder up: ESP-IDF, Zephyr
and plain CMake glob them (every ``*.c`` and ``*.cc`` at the project root but the host-only ``main.cc`` and
``model_test.cc``), so a source added there later is built too; Arduino builds only what is inside the sketch
folder, so its sketch holds copies, made when the project is written. Each port brings its own entry point
calling ``setup()`` and ``loop()``.

Templates live in ``firmware/ports/<port>/`` (installed as ``tfscissor.firmware``). The tools themselves
(``idf.py``, ``arduino-cli``, ``west``) are the user's; :mod:`tfscissor.compile.flash` runs them.
"""

import json
import shlex
from dataclasses import dataclass
from importlib import resources

from tfscissor.compile import csource
from tfscissor.compile.boards import RUNTIME_FLASH, RUNTIME_RAM
from tfscissor.errors import UsageError

__all__ = ["HOST_ONLY", "PORTS", "Port", "Step", "add_board_port", "app_sources", "board_entry", "board_ports"]

HOST_ONLY = ("main.cc", "model_test.cc")  # the host's entry point and test; each port has its own entry point
_SOURCE_SUFFIXES = (".c", ".cc")
_HEADER_SUFFIXES = (".h",)
ARDUINO_LIBRARY = "Chirale_TensorFLowLite"  # the Library Manager's name, capital L included
ARDUINO_LIBRARY_HEADER = "Chirale_TensorFlowLite.h"


def _cmake_app_sources(configure_depends=True):
    """CMake setting APP_SOURCES to the application's sources, shared by the CMake-based ports (PROJECT_ROOT is
    set before it). ESP-IDF also reads a component's CMakeLists.txt in script mode, to find its requirements,
    and script mode refuses CONFIGURE_DEPENDS; there, a new source needs `idf.py reconfigure`."""
    rerun = " CONFIGURE_DEPENDS" if configure_depends else ""
    regex = "|".join(name.replace(".", "\\\\.") for name in HOST_ONLY)  # \\. in CMake's string is a literal dot
    return (
        f"# Every C and C++ file at the project root is the application, except the host-only {' and '.join(HOST_ONLY)}:\n"
        "# a glob, so that sources added there (a camera driver, the two-stage runner) are built too.\n"
        f'file(GLOB APP_SOURCES{rerun} "${{PROJECT_ROOT}}/*.c" "${{PROJECT_ROOT}}/*.cc")\n'
        f'list(FILTER APP_SOURCES EXCLUDE REGEX "/({regex})$")'
    )


@dataclass(frozen=True)
class Step:
    """One command of a build or flash: ``what`` is ``"build"`` or ``"flash"``, ``argv`` runs in ``cwd``
    (relative to the project)."""

    what: str
    argv: tuple
    cwd: str

    def __str__(self):
        return shlex.join(self.argv)


class Port:
    """A build system for boards. Subclasses say where its files go, which commands build and flash, and
    what the user installs once."""

    name = ""
    title = ""
    tool = ""  # the executable that must be on PATH
    install = ""  # one line: how to get the tool
    list_ports = None  # a command listing the serial ports, for ports whose flash command takes one
    copies_sources = False  # True: the port holds copies of the root sources rather than building them in place
    setup_where = ""  # where the set-up commands run, when it matters
    runtime = ""  # what its build adds to the board fit's runtime allowances, or that it is what they measured

    def workdir(self, project_name):
        """Where the port's commands run, relative to the project root."""
        return self.name

    def files(self, project_files, board, project_name):
        """The port's files as {path relative to the project root: text}."""
        values = _values(board, project_name)
        return {f"{self.name}/{rel}": csource.render(text, **values) for rel, text in _templates(self.name)}

    def setup(self, board):
        """One-time set-up beyond the tool (libraries, modules), as shell commands or sentences."""
        return ()

    def steps(self, board, project_name, serial_port=None):
        """The build and flash commands, in order."""
        raise NotImplementedError

    def monitor(self, board, serial_port=None):
        """A command that shows the board's serial output, or None."""
        return None


class EspIdf(Port):
    name = "esp-idf"
    title = "ESP-IDF"
    tool = "idf.py"
    install = (
        "install ESP-IDF 5.x (https://docs.espressif.com/projects/esp-idf/en/stable/esp32s3/get-started/) and run "
        "`. $IDF_PATH/export.sh` in this shell (the first build fetches espressif/esp-tflite-micro)"
    )
    list_ports = "python -m serial.tools.list_ports"  # pyserial, in ESP-IDF's Python environment
    runtime = (
        "ESP-IDF's own code and RAM (FreeRTOS, drivers, the console; esp-nn's kernels rather than CMSIS-NN's) come "
        "on top and are not counted; its main task has an 8 KiB stack (sdkconfig.defaults)"
    )

    def steps(self, board, project_name, serial_port=None):
        port = ("-p", serial_port) if serial_port else ()
        return (
            Step("build", ("idf.py", "build"), self.name),
            Step("flash", ("idf.py", *port, "flash"), self.name),
        )

    def monitor(self, board, serial_port=None):
        return shlex.join(("idf.py", *(("-p", serial_port) if serial_port else ()), "monitor"))


class Arduino(Port):
    name = "arduino"
    title = "Arduino"
    tool = "arduino-cli"
    install = "install arduino-cli (https://arduino.github.io/arduino-cli/latest/installation/)"
    list_ports = "arduino-cli board list"
    copies_sources = True
    runtime = "Mbed OS, the Arduino core and its USB serial port come on top and are not counted"

    def workdir(self, project_name):
        return f"{self.name}/{project_name}"  # a sketch is a folder named like its .ino

    def files(self, project_files, board, project_name):
        sketch = self.workdir(project_name)
        values = _values(board, project_name)
        out = {f"{sketch}/{project_name}.ino": csource.render(_template(self.name, "sketch.ino"), **values)}
        for rel in _root_files(project_files, _SOURCE_SUFFIXES + _HEADER_SUFFIXES):
            # .cc is a C++ source only to newer arduino-cli releases; .cpp to every one.
            target = rel[: -len(".cc")] + ".cpp" if rel.endswith(".cc") else rel
            out[f"{sketch}/{target}"] = project_files[rel]
        return out

    def setup(self, board):
        core = ":".join(board.target.split(":")[:2])
        return (f"arduino-cli core install {core}", f"arduino-cli lib install {ARDUINO_LIBRARY}")

    def steps(self, board, project_name, serial_port=None):
        fqbn = ("--fqbn", board.target)
        port = ("-p", serial_port) if serial_port else ()
        sketch = self.workdir(project_name)
        return (
            Step("build", ("arduino-cli", "compile", *fqbn, "."), sketch),
            Step("flash", ("arduino-cli", "upload", *fqbn, *port, "."), sketch),
        )

    def monitor(self, board, serial_port=None):
        return shlex.join(("arduino-cli", "monitor", "-p", serial_port or "PORT"))


class Zephyr(Port):
    name = "zephyr"
    title = "Zephyr"
    tool = "west"
    install = (
        "install west and a Zephyr workspace with its SDK "
        "(https://docs.zephyrproject.org/latest/develop/getting_started/) and export ZEPHYR_BASE"
    )
    setup_where = " in the Zephyr workspace"
    runtime = (
        "the Zephyr kernel, its drivers and its console come on top and are not counted; the main thread has an "
        "8 KiB stack (prj.conf)"
    )

    def setup(self, board):
        return ("west config manifest.project-filter -- +tflite-micro", "west update")

    def steps(self, board, project_name, serial_port=None):
        if serial_port:
            raise UsageError(
                f"--port is not used for the {board.title}: west flash finds the board's programmer itself "
                "(leave --port out)"
            )
        return (
            Step("build", ("west", "build", "-b", board.target), self.name),
            Step("flash", ("west", "flash", *board.flash_args), self.name),
        )


class CMake(Port):
    name = "cmake"
    title = "plain CMake (Cortex-M)"
    tool = "cmake"
    install = "install cmake and the GNU Arm toolchain (Debian: cmake gcc-arm-none-eabi libnewlib-arm-none-eabi)"
    runtime = "they are this port's build as measured, at its default -Os with the CMSIS-NN kernels"

    def steps(self, board, project_name, serial_port=None):
        # Builds only: flashing needs the board's start-up code, linker script and probe (see CMakeLists.txt).
        configure = ("-DCMAKE_TOOLCHAIN_FILE=arm-none-eabi.cmake", "-DTFLM_DIR=/path/to/tflm-tree")
        return (
            Step("build", ("cmake", "-S", ".", "-B", "build", *configure), self.name),
            Step("build", ("cmake", "--build", "build"), self.name),
        )


PORTS = {port.name: port for port in (EspIdf(), Arduino(), Zephyr(), CMake())}


def board_ports(board):
    """The ports a project for ``board`` gets: its own, and plain CMake for a Cortex-M."""
    names = [board.port] if board.port else []
    if board.cortex_m and "cmake" not in names:
        names.append("cmake")
    return [PORTS[name] for name in names]


def add_board_port(project_files, fit, project_name):
    """``project_files`` with the ports of ``fit.board`` added, the board in ``manifest.json`` and how to build
    and flash it in ``README.md`` (a new dict; the input is not changed)."""
    board = fit.board
    files = dict(project_files)
    for port in board_ports(board):
        files.update(port.files(project_files, board, project_name))
    added = sorted(set(files) - set(project_files))
    manifest = json.loads(files["manifest.json"])
    manifest["board"] = board_entry(fit, project_name)
    manifest["files"] = sorted({*manifest["files"], *added})
    files["manifest.json"] = json.dumps(manifest, indent=2) + "\n"
    files["README.md"] = files["README.md"].rstrip("\n") + "\n\n" + _readme(fit, project_name)
    return files


def board_entry(fit, project_name):
    """The manifest's ``board``: the preset, what the project needs of it, its port and the port's commands."""
    board = fit.board
    entry = {
        "name": board.name,
        "title": board.title,
        "flash_bytes": board.flash,
        "ram_bytes": board.ram,
        "needs": {"flash_bytes": fit.flash, "ram_bytes": fit.ram, "warnings": list(fit.warnings)},
        "ports": [port.name for port in board_ports(board)],
        "port": board.port,
    }
    if board.port:
        port = PORTS[board.port]
        entry.update(
            target=board.target,
            dir=port.workdir(project_name),
            tool=port.tool,
            setup=list(port.setup(board)),
            build=[str(s) for s in port.steps(board, project_name) if s.what == "build"],
            flash=[str(s) for s in port.steps(board, project_name) if s.what == "flash"],
            monitor=port.monitor(board),
        )
    return entry


def _readme(fit, project_name):
    board = fit.board
    lines = [
        f"## Board: {board.title}",
        "",
        f"{fit.summary()}. The allowances, {RUNTIME_FLASH // 1024} KiB of flash and {RUNTIME_RAM // 1024} KiB of "
        "RAM beyond the models, arenas and buffers, come from the generated firmware built bare-metal with TFLM for "
        "a Cortex-M4 at -Os: 95 to 106 KB of flash with the CMSIS-NN kernels (64 KB with the reference ones), about "
        "1 KB of static RAM and a stack of 1.2 KiB at its deepest (4 KiB allowed). Ops whose kernels that build did "
        "not link need more. " + " ".join(f"With `{port.name}/`, {port.runtime}." for port in board_ports(board)),
    ]
    if board.port:
        port = PORTS[board.port]
        workdir = port.workdir(project_name)
        monitor = port.monitor(board)
        sources = (
            "The sketch holds copies of the root sources (`.cc` renamed `.cpp`), because Arduino builds only what is "
            "inside the sketch folder: edit the copies, or regenerate the project."
            if port.copies_sources
            else f"It builds the root sources, every `.c` and `.cc` here but {' and '.join(HOST_ONLY)}."
        )
        lines += [
            "",
            f"Port: {port.title} in `{workdir}/` ({board.target}), with its own entry point calling `setup()` and "
            f"`loop()`. {sources}",
            "",
            f"Once: {port.install}."
            + (
                f" Then{port.setup_where}: " + ", ".join(f"`{c}`" for c in port.setup(board)) + "."
                if port.setup(board)
                else ""
            ),
            "",
            f"Build and flash, in `{workdir}/`:",
            "",
            *(f"    {step}" for step in port.steps(board, project_name)),
            "",
            f"or `tfscissor flash DIR --board {board.name}` (DIR: this folder"
            + ("; `--port /dev/ttyACM0` names the serial port" if port.list_ports else "")
            + "), which runs the same commands."
            + (f" Serial output: `{monitor}`." if monitor else ""),
        ]
    if board.cortex_m:
        lines += [
            "",
            "`cmake/` is a plain CMake build for any Cortex-M toolchain, at -Os unless `CMAKE_BUILD_TYPE` says "
            "otherwise. Its TFLM tree is made for this CPU, in a tflite-micro checkout (see Build above for what the "
            "script needs):",
            "",
            "    python3 tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py /path/to/tflm-tree \\",
            f'      --makefile_options="TARGET=cortex_m_generic TARGET_ARCH={_tflm_arch(board)} '
            'OPTIMIZED_KERNEL_DIR=cmsis_nn TARGET_TOOLCHAIN_ROOT=$(dirname $(which arm-none-eabi-gcc))/"',
            "",
            "It builds libraries only until given what a bare-metal board supplies itself (see the top of "
            "`cmake/CMakeLists.txt`): start-up code that copies `.data`, zeroes `.bss`, runs the static constructors "
            "and switches the FPU on where the CPU flags use it; a linker script, with `end` where the heap for "
            "newlib's stdout buffer starts; `_write`, where newlib sends `printf` and `MicroPrintf`'s messages (a "
            "UART); and a stack above 1.2 KiB, the deepest measured with the CMSIS-NN kernels.",
        ]
    return "\n".join(lines) + "\n"


def _tflm_arch(board):
    """The board's CPU as TFLM's cortex_m_generic target names it (TARGET_ARCH): ``cortex-m4`` is a Cortex-M4
    without FPU, ``cortex-m4+fp`` one with (hard-float calls), as the board's compiler flags say."""
    flags = board.cortex_m.split()
    cpu = next(flag.removeprefix("-mcpu=") for flag in flags if flag.startswith("-mcpu="))
    return f"{cpu}+fp" if "-mfloat-abi=hard" in flags else cpu


def app_sources(project_files):
    """The project's root sources that a board build compiles (what the CMake ports' glob finds)."""
    return _root_files(project_files, _SOURCE_SUFFIXES)


def _root_files(project_files, suffixes):
    return sorted(rel for rel in project_files if "/" not in rel and rel.endswith(suffixes) and rel not in HOST_ONLY)


def _values(board, project_name):
    return {
        "name": project_name,
        "board_title": board.title,
        "target": board.target,
        "cpu_flags": board.cortex_m,
        "tflm_arch": _tflm_arch(board) if board.cortex_m else "",
        "flash_mib": board.flash >> 20,
        "app_partition": hex(board.flash - 0x10000),  # everything after the bootloader, partition table, nvs
        "app_sources": _cmake_app_sources(),
        "idf_app_sources": _cmake_app_sources(configure_depends=False),
        "arduino_library_header": ARDUINO_LIBRARY_HEADER,
    }


def _template(port, rel):
    return resources.files("tfscissor.firmware").joinpath("ports", port, *rel.split("/")).read_text(encoding="utf-8")


def _templates(port):
    """(path, text) of every template of ``port``, paths relative to its folder."""

    def walk(node, prefix):
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                yield from walk(child, f"{prefix}{child.name}/")
            elif not child.name.startswith("."):
                yield f"{prefix}{child.name}", child.read_text(encoding="utf-8")

    return list(walk(resources.files("tfscissor.firmware").joinpath("ports", port), ""))

"""``tfscissor flash``: the board's tool, run against stand-ins for ``idf.py``, ``arduino-cli`` and ``west`` put
first on PATH; each records its arguments and working directory, prints a line, and fails when told to."""

import json
import os
import shutil
import sys

import pytest
from click.testing import CliRunner

from tfscissor.cli import cli, flash
from tfscissor.compile import flash_project, write_tflm_project
from tfscissor.compile.boards import BOARDS, Board
from tfscissor.compile.ports import PORTS
from tfscissor.errors import UsageError

FAKE_TOOL = """#!{python}
import json, os, sys
with open(os.environ["FAKE_TOOL_CALLS"], "a") as calls:
    calls.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
print("fake " + " ".join(sys.argv[1:]), flush=True)
if os.environ.get("FAKE_TOOL_FAIL") in sys.argv[1:]:
    print("lots of tool output", flush=True)
    print("A fatal error occurred: could not open port", file=sys.stderr, flush=True)
    sys.exit(2)
"""


@pytest.fixture(scope="module")
def projects(int8_model, tmp_path_factory):
    """One project per board with a tool, and one compiled without --board."""
    root = tmp_path_factory.mktemp("projects")
    model = int8_model("plain")
    out = {board: write_tflm_project(model, root / board, name="app", board=board).path for board in BOARDS}
    out[None] = write_tflm_project(model, root / "plain", name="app").path
    return out


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Installs the stand-ins; returns a function giving the calls made so far."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("idf.py", "arduino-cli", "west"):
        (bin_dir / tool).write_text(FAKE_TOOL.format(python=sys.executable))
        (bin_dir / tool).chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TOOL_CALLS", str(calls))
    monkeypatch.delenv("FAKE_TOOL_FAIL", raising=False)
    return lambda: [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def _flash(path, board, *args):
    return CliRunner().invoke(cli, ["flash", str(path), "--board", board, *args])


def test_the_command_offers_every_preset():
    assert set(next(p for p in flash.params if p.name == "board").type.choices) == set(BOARDS)


@pytest.mark.parametrize(
    ("board", "port", "expected"),
    [
        ("esp32s3", None, [["build"], ["flash"]]),
        ("esp32s3", "/dev/ttyUSB0", [["build"], ["-p", "/dev/ttyUSB0", "flash"]]),
        (
            "nano33ble",
            None,
            [
                ["compile", "--fqbn", "arduino:mbed_nano:nano33ble", "."],
                ["upload", "--fqbn", "arduino:mbed_nano:nano33ble", "."],
            ],
        ),
        (
            "nano33ble",
            "/dev/ttyACM0",
            [
                ["compile", "--fqbn", "arduino:mbed_nano:nano33ble", "."],
                ["upload", "--fqbn", "arduino:mbed_nano:nano33ble", "-p", "/dev/ttyACM0", "."],
            ],
        ),
        ("stm32h7", None, [["build", "-b", "nucleo_h743zi"], ["flash"]]),
        ("rp2040", None, [["build", "-b", "rpi_pico"], ["flash", "-r", "uf2"]]),
    ],
)
def test_runs_the_ports_build_and_flash_commands_in_its_folder(projects, tools, board, port, expected):
    result = _flash(projects[board], board, *(["--port", port] if port else []))
    assert result.exit_code == 0, result.output
    calls = tools()
    assert [call["argv"] for call in calls] == expected
    workdir = {"esp32s3": "esp-idf", "nano33ble": "arduino/app", "stm32h7": "zephyr", "rp2040": "zephyr"}[board]
    assert {call["cwd"] for call in calls} == {str((projects[board] / workdir).resolve())}
    assert {call["tool"] for call in calls} == {PORTS[BOARDS[board].port].tool}
    assert f"fake {' '.join(expected[0])}" in result.output  # the tool's output reaches the user as it runs
    assert f"flashed {projects[board]} to the {board}" in result.output


def test_a_failed_flash_names_the_likely_cause_and_the_tools_last_lines(projects, tools, monkeypatch):
    monkeypatch.setenv("FAKE_TOOL_FAIL", "upload")
    result = _flash(projects["nano33ble"], "nano33ble")
    assert result.exit_code == 1
    assert "`arduino-cli upload --fqbn arduino:mbed_nano:nano33ble .` failed (exit 2)" in result.output
    assert "is the Arduino Nano 33 BLE (nRF52840) connected over USB? name its serial port with --port" in result.output
    assert "(`arduino-cli board list` lists them)" in result.output
    assert "arduino-cli's last lines:\n  fake upload" in result.output
    assert "A fatal error occurred: could not open port" in result.output  # stderr, not lost
    assert "Traceback" not in result.output

    result = _flash(projects["nano33ble"], "nano33ble", "--port", "/dev/ttyACM7")
    assert result.exit_code == 1 and "is /dev/ttyACM7 its serial port?" in result.output


def test_a_failed_build_stops_before_flashing_and_says_what_to_set_up(projects, tools, monkeypatch):
    monkeypatch.setenv("FAKE_TOOL_FAIL", "compile")
    result = _flash(projects["nano33ble"], "nano33ble")
    assert result.exit_code == 1 and len(tools()) == 1
    assert "the build failed; if something is missing, set it up once with `arduino-cli core install" in result.output
    assert "`arduino-cli lib install Chirale_TensorFLowLite`" in result.output


def test_a_missing_tool_is_named_with_how_to_install_it(projects, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    result = _flash(projects["esp32s3"], "esp32s3")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: idf.py is not on PATH: install ESP-IDF 5.x "
        "(https://docs.espressif.com/projects/esp-idf/en/stable/esp32s3/get-started/) and run "
        "`. $IDF_PATH/export.sh` in this shell (the first build fetches espressif/esp-tflite-micro)"
    ]
    result = _flash(projects["stm32h7"], "stm32h7")
    assert result.exit_code == 1 and "west is not on PATH: install west and a Zephyr workspace" in result.output


def test_a_directory_that_is_not_a_project_is_refused(tmp_path, tools):
    result = _flash(tmp_path, "esp32s3")
    assert result.exit_code == 2
    assert f"{tmp_path} is not a tfscissor firmware project (no manifest.json)" in result.output
    assert "tfscissor compile MODEL --target tflm --board esp32s3" in result.output
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "tfscissor.tflite/1"}))
    result = _flash(tmp_path, "esp32s3")
    assert result.exit_code == 2 and "its manifest is not tflm's" in result.output
    (tmp_path / "manifest.json").write_text("{")
    assert _flash(tmp_path, "esp32s3").exit_code == 2
    assert tools() == []


def test_a_project_for_another_board_or_none_is_refused(projects, tools):
    result = _flash(projects["esp32s3"], "nano33ble")
    assert result.exit_code == 2
    assert (
        "was compiled for the esp32s3 board, not for nano33ble: recompile it with `tfscissor compile" in result.output
    )
    result = _flash(projects[None], "stm32h7")
    assert result.exit_code == 2 and "was compiled without --board, not for stm32h7" in result.output
    assert tools() == []


def test_port_is_refused_where_the_flash_command_takes_none(projects, tools):
    result = _flash(projects["stm32h7"], "stm32h7", "--port", "/dev/ttyACM0")
    assert result.exit_code == 2 and "--port is not used for the STM32H743 (NUCLEO-H743ZI2)" in result.output
    assert tools() == []


def test_a_deleted_port_folder_is_explained(projects, tools, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(projects["esp32s3"], copy)
    shutil.rmtree(copy / "esp-idf")
    result = _flash(copy, "esp32s3")
    assert result.exit_code == 2 and f"{copy / 'esp-idf'} is missing: recompile" in result.output


def test_a_tool_on_path_that_cannot_run_is_explained(projects, tools, tmp_path, monkeypatch):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "west").write_text("#!/nonexistent/interpreter\n")
    (broken / "west").chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken}{os.pathsep}{os.environ['PATH']}")
    result = _flash(projects["stm32h7"], "stm32h7")
    assert result.exit_code == 1 and "cannot run west: No such file or directory: install west" in result.output


@pytest.mark.parametrize(
    ("port", "message"),
    [
        (None, "the a board without a port has no port to flash with"),
        ("cmake", r"the plain CMake \(Cortex-M\) port builds only"),
    ],
)
def test_a_board_whose_port_cannot_flash_is_refused(tmp_path, tools, monkeypatch, port, message):
    monkeypatch.setitem(BOARDS, "custom", Board("custom", "a board without a port", 1 << 20, 1 << 18, port=port))
    (tmp_path / "manifest.json").write_text(
        json.dumps({"format": "tfscissor.tflm/1", "name": "app", "board": {"name": "custom"}})
    )
    with pytest.raises(UsageError, match=message):
        flash_project(tmp_path, "custom")
    assert tools() == []

"""Board presets: whether a TFLM project fits a board's flash and RAM, said with numbers before anything is
written."""

import pytest
from click.testing import CliRunner

from tfscissor.cli import cli, compile_
from tfscissor.compile import write_tflm_project
from tfscissor.compile.boards import BOARDS, RUNTIME_FLASH, RUNTIME_RAM, Board, check_fit
from tfscissor.errors import ModelError, UsageError


def test_every_preset_is_offered_by_the_command_line():
    assert set(next(p for p in compile_.params if p.name == "board").type.choices) == set(BOARDS)
    assert {"esp32s3", "nano33ble", "stm32h7", "rp2040"} <= set(BOARDS)


def test_a_small_model_fits_with_the_runtime_allowances_counted():
    fit = check_fit("nano33ble", 100_000, 40_000)
    assert (fit.flash, fit.ram) == (100_000 + RUNTIME_FLASH, 40_000 + RUNTIME_RAM)
    assert fit.warnings == ()
    assert "flash 231,072 of 1,048,576 bytes (22%)" in fit.summary()


def test_a_nearly_full_board_warns_and_an_overfull_one_is_refused_with_numbers():
    ram = BOARDS["rp2040"].ram
    fit = check_fit("rp2040", 10_000, ram - RUNTIME_RAM - 1_000)
    assert len(fit.warnings) == 1 and fit.warnings[0].startswith("RAM is 100% full on the Raspberry Pi Pico")
    with pytest.raises(ModelError, match=r"does not fit the Raspberry Pi Pico \(RP2040\): RAM 270,337 bytes > 270,336"):
        check_fit("rp2040", 10_000, ram - RUNTIME_RAM + 1)
    with pytest.raises(UsageError, match="unknown board 'uno': use one of esp32s3, nano33ble"):
        check_fit("uno", 1, 1)


def test_a_project_that_does_not_fit_is_not_written(int8_model, tmp_path, monkeypatch):
    project = write_tflm_project(int8_model("plain"), tmp_path / "fits", board="nano33ble")
    assert (
        project.fit.ram == project.arena_bytes + RUNTIME_RAM
        and project.fit.flash == project.model_bytes + RUNTIME_FLASH
    )
    tiny = Board("tiny", "a board with no room", flash=4 * 1024 * 1024, ram=RUNTIME_RAM + 64)
    monkeypatch.setitem(BOARDS, "tiny", tiny)
    with pytest.raises(ModelError, match="does not fit the a board with no room: RAM"):
        write_tflm_project(int8_model("plain"), tmp_path / "out", board="tiny")
    assert not (tmp_path / "out").exists()


def test_cli_board_prints_the_fit_and_belongs_to_tflm(int8_model, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model("plain"))
    result = CliRunner().invoke(
        cli, ["--quiet", "compile", str(model), "--target", "tflm", "--board", "stm32h7", "-o", str(tmp_path / "fw")]
    )
    assert result.exit_code == 0, result.output
    assert "STM32H743 (NUCLEO-H743ZI2): flash " in result.output and "runtime allowances included" in result.output
    result = CliRunner().invoke(
        cli, ["--quiet", "compile", str(model), "--target", "tflite", "--board", "rp2040", "-o", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "--board is for --target tflm" in result.output

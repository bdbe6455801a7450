"""Board presets: the flash and RAM a firmware project has on common TFLM boards, and whether a model fits.

The sizes are the chips' own (datasheets): flash holds the program and the model array, RAM the tensor arena
and everything else. The firmware around the model needs part of both, allowed for by ``RUNTIME_FLASH`` and
``RUNTIME_RAM``. They come from measured builds: the generated project with the plain CMake port, TFLM and
arm-none-eabi-gcc 12 at -Os for a Cortex-M4 (run under qemu's mps2-an386), with newlib-nano and the start-up
code, took about 64 KB of flash beyond the model arrays with TFLM's reference kernels and 95 KB with the
CMSIS-NN ones for one classifier (TFLM of August 2026), and 105.9 KB with CMSIS-NN for a MobileNetV2-style
classifier with six ops (ADD, CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MEAN, SOFTMAX; TFLM 90b983c: about
89 KB of TFLM, 14.5 KB of newlib-nano, libgcc and libm, 2 KB of application); about 1 KB of static RAM beyond
the arenas and buffers, and a stack of about 1.2 KiB. A model
whose ops need kernels that build did not link needs more, and an RTOS (ESP-IDF, Mbed OS under Arduino,
Zephyr) adds code and RAM of its own, which the allowances leave out: each port says what its build adds
(:attr:`tfscissor.compile.ports.Port.runtime`). A project that fits only within the last 10% is reported with a
warning, not as a fit.
"""

from dataclasses import dataclass

from tfscissor.errors import ModelError, UsageError

__all__ = ["BOARDS", "Board", "BoardFit", "check_fit"]

KIB = 1024
MIB = 1024 * KIB
# TFLM (interpreter and kernels, CMSIS-NN's included), the application, newlib-nano and start-up code: 95 to
# 106 KB measured at -Os (the CMake port's default; -O0 measured 165 KB), with room for a few more kernels.
RUNTIME_FLASH = 128 * KIB
# About 1 KB of static data measured (interpreter, resolver, newlib), a 4 KiB stack where 1.2 KiB was the deepest
# measured, and newlib's 1 KiB stdout buffer, with the rest as margin.
RUNTIME_RAM = 8 * KIB
WARN_SHARE = 0.9


@dataclass(frozen=True)
class Board:
    """A board: its flash and the RAM one contiguous arena can use, in bytes.

    ``port``: the build system its firmware project gets (a name in :data:`tfscissor.compile.ports.PORTS`; None:
    the fit check only), ``target`` the board's name in that build system (ESP-IDF target, Arduino FQBN, Zephyr
    board), ``flash_args`` extra arguments of the port's flash command. ``cortex_m``: the compiler's CPU flags
    when the chip is a Cortex-M, which also earns the project the plain CMake port."""

    name: str
    title: str
    flash: int
    ram: int
    note: str = ""
    port: "str | None" = None
    target: str = ""
    flash_args: tuple = ()
    cortex_m: str = ""


BOARDS = {
    board.name: board
    for board in (
        Board(
            "esp32s3",
            "ESP32-S3 (DevKitC-1 N8R8)",
            8 * MIB,
            512 * KIB,
            "8 MiB of PSRAM can hold a larger arena, slower than internal SRAM",
            port="esp-idf",
            target="esp32s3",
        ),
        Board(
            "nano33ble",
            "Arduino Nano 33 BLE (nRF52840)",
            1 * MIB,
            256 * KIB,
            port="arduino",
            target="arduino:mbed_nano:nano33ble",
            cortex_m="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16",
        ),
        Board(
            "stm32h7",
            "STM32H743 (NUCLEO-H743ZI2)",
            2 * MIB,
            512 * KIB,
            "512 KiB is the largest contiguous SRAM (AXI)",
            port="zephyr",
            target="nucleo_h743zi",  # Zephyr's board for both the NUCLEO-H743ZI and the ZI2
            cortex_m="-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16",
        ),
        # Zephyr rather than Arduino: the TFLM libraries in Arduino's Library Manager do not declare the RP2040
        # cores, while Zephyr's tflite-micro module is board-independent; and its UF2 runner flashes a Pico over
        # USB in BOOTSEL mode, with no debug probe.
        Board(
            "rp2040",
            "Raspberry Pi Pico (RP2040)",
            2 * MIB,
            264 * KIB,
            port="zephyr",
            target="rpi_pico",
            flash_args=("-r", "uf2"),
            cortex_m="-mcpu=cortex-m0plus -mthumb",
        ),
    )
}


@dataclass(frozen=True)
class BoardFit:
    """Flash and RAM a project needs on ``board`` (runtime allowances included) and the warnings it earns."""

    board: Board
    flash: int
    ram: int
    warnings: tuple

    def summary(self):
        b = self.board
        return (
            f"{b.title}: flash {self.flash:,} of {b.flash:,} bytes ({self.flash / b.flash:.0%}), "
            f"RAM {self.ram:,} of {b.ram:,} bytes ({self.ram / b.ram:.0%}), runtime allowances included"
        )


def board(name):
    """The preset named ``name``; UsageError listing the presets otherwise."""
    if name not in BOARDS:
        raise UsageError(f"unknown board {name!r}: use one of {', '.join(BOARDS)}")
    return BOARDS[name]


def check_fit(name, model_bytes, arena_bytes):
    """Whether models of ``model_bytes`` (flash) with arenas of ``arena_bytes`` (RAM, each stage its own) fit the
    board ``name``: a :class:`BoardFit`, or ModelError stating the numbers when they do not."""
    preset = board(name)
    fit = BoardFit(preset, model_bytes + RUNTIME_FLASH, arena_bytes + RUNTIME_RAM, ())
    over = [
        f"{what} {need:,} bytes > {have:,}"
        for what, need, have in (("flash", fit.flash, preset.flash), ("RAM", fit.ram, preset.ram))
        if need > have
    ]
    if over:
        raise ModelError(
            f"the model does not fit the {preset.title}: {'; '.join(over)} (model {model_bytes:,} bytes, arena "
            f"{arena_bytes:,} bytes, plus {RUNTIME_FLASH:,} bytes of flash and {RUNTIME_RAM:,} of RAM for the "
            "runtime): trim or shrink it (tfscissor trim, tfscissor shrink --budget arena=...), or pick a larger board"
        )
    warnings = tuple(
        f"{what} is {need / have:.0%} full on the {preset.title}: the runtime allowance is an estimate, check the "
        "real build's map file"
        for what, need, have in (("flash", fit.flash, preset.flash), ("RAM", fit.ram, preset.ram))
        if need > WARN_SHARE * have
    )
    return BoardFit(preset, fit.flash, fit.ram, warnings)

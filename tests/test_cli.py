"""Every command through click's CliRunner, as a user chains them, and every bad input the issue names."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tfscissor.cli import cli
from tfscissor.errors import TfscissorError

DATA = "cluttered:size=32,n=360,classes=3,seed=2"
COMMANDS = ["train", "eval", "info", "trim", "shrink", "quantize", "compile", "flash", "bench", "run", "report"]


def invoke(*args):
    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """train -> trim -> quantize -> compile, run once for the module: the path a user takes."""
    d = tmp_path_factory.mktemp("cli")
    steps = {
        "train": invoke(
            "train", "--data", DATA, "--model", "plain", "--arg", "widths=[8,16]", "--epochs", "3", "-o", d / "m.keras"
        ),
        "trim": invoke(
            "trim",
            d / "m.keras",
            "--data",
            DATA,
            "--ratio",
            "0.3",
            "--round-to",
            "2",
            "--fine-tune-epochs",
            "1",
            "--save-stats",
            d / "stats.npz",
            "-o",
            d / "t.keras",
        ),
        "quantize": invoke("quantize", d / "t.keras", "--data", DATA, "--samples", "50", "-o", d / "t.tflite"),
        "compile": invoke("compile", d / "t.tflite", "--target", "tflm", "--labels", "a,b,c", "-o", d / "fw"),
    }
    return d, steps


@pytest.mark.slow
@pytest.mark.parametrize("step", ["train", "trim", "quantize", "compile"])
def test_chain_step_succeeds(chain, step):
    _, steps = chain
    assert steps[step].exit_code == 0, steps[step].output


@pytest.mark.slow
def test_chain_outputs(chain):
    d, steps = chain
    assert "val accuracy" in steps["train"].output
    assert "params" in steps["trim"].output and "saved" in steps["trim"].output
    assert "accuracy float" in steps["quantize"].output and "int8" in steps["quantize"].output
    assert "arena" in steps["compile"].output
    assert (d / "stats.npz").is_file() and (d / "t.tflite").is_file() and (d / "fw").is_dir()


@pytest.mark.slow
def test_eval_json_for_both_formats(chain):
    d, _ = chain
    for name in ("m.keras", "t.tflite"):
        result = invoke("eval", d / name, "--data", DATA, "--json")
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        assert payload["samples"] > 0 and 0.0 <= payload["accuracy"] <= 1.0
        assert payload["format"] == name.split(".")[1]


@pytest.mark.slow
def test_info_json_and_table(chain):
    d, _ = chain
    payload = json.loads(invoke("info", d / "m.keras", "--json").output)
    assert (
        payload["macs"] > 0
        and payload["params"] > 0
        and any(r["name"] == "stage1_conv1_conv" for r in payload["layers"])
    )
    table = invoke("info", d / "t.keras").output.splitlines()
    conv = next(line.split() for line in table if line.startswith("stage1_conv1_conv "))
    layer = next(r for r in payload["layers"] if r["name"] == "stage1_conv1_conv")
    assert conv[1] == "Conv2D" and conv[2] == "x".join(map(str, layer["output_shape"]))
    assert conv[-1] == f"{layer['activation_elements']:,}" and table[-1].startswith("total:")
    payload = json.loads(invoke("info", d / "t.tflite", "--json").output)
    assert "CONV_2D" in payload["ops"] and payload["fully_int8"] is True
    text = invoke("info", d / "t.tflite").output
    assert "fully int8" in text and "CONV_2D x" in text and "zero point -128" in text


@pytest.mark.slow
def test_trimmed_model_is_smaller(chain):
    d, _ = chain
    before = json.loads(invoke("info", d / "m.keras", "--json").output)
    after = json.loads(invoke("info", d / "t.keras", "--json").output)
    assert after["params"] < before["params"] and after["macs"] < before["macs"]


@pytest.mark.slow
def test_trim_to_a_macs_budget_in_rounds(chain, tmp_path):
    d, _ = chain
    result = invoke(
        "trim", d / "m.keras", "--data", DATA, "--target-macs", "0.6", "--rounds", "2", "-o", tmp_path / "h.keras"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["layer", "producers", "before", "after"]
    macs = next(line.split() for line in lines if line.startswith("MACs"))
    assert 0.5 < float(macs[-1].rstrip("x")) <= 0.6
    after = json.loads(invoke("info", tmp_path / "h.keras", "--json").output)
    before = json.loads(invoke("info", d / "m.keras", "--json").output)
    assert after["macs"] <= 0.6 * before["macs"]
    # No fine-tuning: the stage refits the layers that lost input channels, and says so.
    pattern = r"^accuracy: [0-9.]+ before, [0-9.]+ after surgery and a least-squares refit$"
    assert re.search(pattern, result.output, re.M), result.output


@pytest.mark.slow
def test_trim_prints_the_accuracy_after_surgery_and_after_fine_tuning(chain):
    _, steps = chain
    assert re.search(
        r"^accuracy: [0-9.]+ before, [0-9.]+ after surgery, [0-9.]+ after 1 epochs of fine-tuning with distillation$",
        steps["trim"].output,
        re.M,
    ), steps["trim"].output


@pytest.mark.slow
def test_a_budget_the_limits_cannot_reach_is_refused_naming_what_to_change(chain, tmp_path):
    d, _ = chain
    result = invoke("trim", d / "m.keras", "--data", DATA, "--target-macs", "0.3", "-o", tmp_path / "h.keras")
    assert result.exit_code == 2
    assert "the budget 0.300 cannot be met" in result.output and "--no-protect-stem" in result.output
    assert not (tmp_path / "h.keras").exists()


@pytest.mark.slow
def test_trim_warns_in_one_line_when_surgery_collapses_the_model_or_it_was_at_chance(chain, tmp_path, monkeypatch):
    """The chain's model is too weak to collapse for real (tests/trim/test_recovery.py does that): the stage's
    report of a collapse is given, and the command must say it on stderr, in one line, with the groups."""
    from tfscissor.models import load_model
    from tfscissor.trim import stage

    d, _ = chain
    report = {
        "layers": [{"layer": "conv", "producers": 1, "before": 8, "after": 2}],
        "macs_before": 100,
        "macs_after": 40,
        "params_before": 10,
        "params_after": 4,
        "accuracy_before": 0.8,
        "accuracy_trimmed": 0.1,
        "accuracy_after": 0.1,
        "fine_tune_epochs": 0,
        "distill": False,
        "reconstruct": True,
        "chance": 1 / 3,
        "costliest_groups": [("stem_conv", 1.57), ("stage2_proj_conv", 0.87)],
    }
    canned = stage.TrimStageResult(load_model(d / "m.keras"), None, report)
    monkeypatch.setattr(stage, "run_trim", lambda *args, **kwargs: canned)
    result = invoke("trim", d / "m.keras", "--data", DATA, "--ratio", "0.5", "-o", tmp_path / "c.keras")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert line == (
        "warning: surgery alone kept 12% of the accuracy (0.1000 of 0.8000); costliest groups: stem_conv (+1.57 "
        "loss), stage2_proj_conv (+0.87 loss); keep them with --exclude LAYER, or trim less (more --steps, a lower "
        "--max-layer-ratio)"
    )

    # A model no better than chance on the data: the one warning says where to look, and the model is saved.
    del report["costliest_groups"]
    report.update(accuracy_before=0.0, accuracy_trimmed=0.0, accuracy_after=0.0)
    result = invoke("trim", d / "m.keras", "--data", DATA, "--ratio", "0.5", "-o", tmp_path / "z.keras")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert line.startswith("warning: the untrimmed model scores 0.0000 on the data's val split, no better than chance")
    assert "in the same order" in line and (tmp_path / "z.keras").is_file()


@pytest.mark.slow
def test_trim_seed_repeats_a_random_trim(chain, tmp_path):
    d, _ = chain
    runs = [
        invoke("trim", d / "m.keras", "--data", DATA, "--ratio", "0.3", "--criterion", "random", "--seed", seed,
               "-o", tmp_path / f"{name}.keras")
        for name, seed in (("a", 5), ("b", 5), ("c", 6))
    ]  # fmt: skip
    assert all(result.exit_code == 0 for result in runs)
    # The models, not the printed tables: on a tiny model two seeds can trim as many channels per layer and
    # land on the same accuracy while removing different channels.
    from tfscissor.models import load_model

    weights = [load_model(tmp_path / f"{name}.keras").get_weights() for name in "abc"]
    assert all(np.array_equal(x, y) for x, y in zip(weights[0], weights[1], strict=True))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(weights[0], weights[2], strict=True))


def test_trim_cli_and_recipe_defaults_are_the_library_defaults():
    import inspect

    from tfscissor.recipe import SCHEMA
    from tfscissor.trim import run_trim
    from tfscissor.trim.criteria import DEFAULT_CRITERION
    from tfscissor.trim.defaults import FINE_TUNE_LR, MAX_LAYER_RATIO, STEPS

    options = {option.name: option.default for option in cli.commands["trim"].params}
    assert options["criterion"] == DEFAULT_CRITERION
    assert options["max_layer_ratio"] == MAX_LAYER_RATIO
    assert options["steps"] == STEPS
    library = inspect.signature(run_trim).parameters
    assert options["lr"] == SCHEMA["trim"]["lr"].default == library["learning_rate"].default == FINE_TUNE_LR
    assert options["reconstruct"] is SCHEMA["trim"]["reconstruct"].default is library["reconstruct"].default is None


def _group_norm_model(path):
    """A model with a layer trimming does not understand (GroupNormalization mixes channels in groups)."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, name="conv1")(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.GroupNormalization(groups=2, name="gn")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(path)


@pytest.mark.slow
def test_unsupported_layer_names_it_and_exclude_makes_it_pass(tmp_path):
    _group_norm_model(tmp_path / "g.keras")
    args = ("trim", tmp_path / "g.keras", "--data", DATA, "--ratio", "0.5")
    _assert_clean_error(invoke(*args, "-o", tmp_path / "t.keras"), 1, "layer 'gn' (GroupNormalization)", "--exclude gn")
    assert not (tmp_path / "t.keras").exists()
    result = invoke(*args, "--exclude", "gn", "-o", tmp_path / "t.keras")
    assert result.exit_code == 0, result.output
    # conv1 feeds the excluded layer, so its channels stay and it is no group; conv2 is trimmed.
    assert not re.search(r"^conv1 ", result.output, re.M)
    assert re.search(r"^conv2\s+1\s+8\s+[1-7]$", result.output, re.M), result.output


@pytest.mark.slow
def test_bench_json(chain):
    d, _ = chain
    result = invoke("bench", d / "t.tflite", "--device", "cpu", "--runs", "5", "--warmup", "1", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    stage = payload["stages"]["classifier"]
    assert payload["runs"] == 5 and payload["device"] == "cpu" and stage["p90_ms"] >= stage["median_ms"] > 0


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(command):
    result = CliRunner().invoke(cli, [command, "--help"] if command else ["--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    if command:
        assert "Example" in result.output
    # Option help prints a value's range and default: never an unset bound or default as "None".
    assert "None]" not in result.output, result.output


def test_help_does_not_import_tensorflow():
    """Neither the group's help nor any command's: every command module loads without Keras."""
    code = (
        "import sys; from click.testing import CliRunner; from tfscissor.cli import cli\n"
        "names = [[n] for n in cli.commands] + [['crop', n] for n in cli.commands['crop'].commands]\n"
        "for args in [[], *names]: assert CliRunner().invoke(cli, [*args, '--help']).exit_code == 0, args\n"
        "print('tensorflow' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


# -- bad input: one line naming the thing, exit 2 for usage and 1 for failures, nothing half-written -----


@pytest.fixture
def folder_gray(tmp_path):
    """An image folder of grayscale images: a model trained on RGB data does not fit it."""
    for cls in ("a", "b"):
        (tmp_path / "gray" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((32, 32), 40 * i, np.uint8)).save(tmp_path / "gray" / cls / f"{i}.png")
    return tmp_path / "gray"


def _assert_clean_error(result, code, *words):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ")
    for word in words:
        assert word in message


def test_missing_model_file(tmp_path):
    _assert_clean_error(invoke("eval", tmp_path / "nope.keras", "--data", DATA), 1, "nope.keras", "not found")


def test_corrupt_keras_file(tmp_path):
    (tmp_path / "bad.keras").write_bytes(b"PK\x03\x04 truncated")
    _assert_clean_error(invoke("info", tmp_path / "bad.keras"), 1, "bad.keras")


def test_corrupt_tflite_file(tmp_path):
    (tmp_path / "bad.tflite").write_bytes(b"\x00" * 64)
    _assert_clean_error(invoke("bench", tmp_path / "bad.tflite"), 1, "bad.tflite")


@pytest.mark.slow
def test_unknown_data_spec(chain):
    d, _ = chain
    _assert_clean_error(invoke("eval", d / "m.keras", "--data", "imagenet"), 2, "imagenet")


@pytest.mark.slow
def test_folder_without_images(chain, tmp_path):
    d, _ = chain
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    _assert_clean_error(invoke("eval", d / "m.keras", "--data", f"folder:{tmp_path / 'empty'}"), 1, "no images")


@pytest.mark.slow
def test_undecodable_image(chain, folder_gray):
    d, _ = chain
    (folder_gray / "a" / "broken.png").write_bytes(b"not a png")
    _assert_clean_error(invoke("eval", d / "m.keras", "--data", f"folder:{folder_gray}"), 1, "broken.png")


@pytest.mark.slow
def test_model_does_not_fit_data(chain, folder_gray, tmp_path):
    d, _ = chain
    out = tmp_path / "q.tflite"
    _assert_clean_error(
        invoke("quantize", d / "m.keras", "--data", f"folder:{folder_gray}", "-o", out), 1, "takes images of"
    )
    assert not out.exists()


@pytest.mark.slow
def test_output_may_not_overwrite_input(chain):
    d, _ = chain
    before = (d / "m.keras").read_bytes()
    _assert_clean_error(
        invoke("trim", d / "m.keras", "--data", DATA, "--ratio", "0.5", "-o", d / "m.keras"), 2, "also an input"
    )
    assert (d / "m.keras").read_bytes() == before


@pytest.mark.slow
def test_compile_needs_tflite(chain, tmp_path):
    d, _ = chain
    _assert_clean_error(
        invoke("compile", d / "m.keras", "--target", "tflm", "-o", tmp_path / "fw"), 2, "quantize it first"
    )


def test_bad_model_arg(tmp_path):
    _assert_clean_error(invoke("train", "--data", DATA, "--arg", "widths", "-o", tmp_path / "m.keras"), 2, "KEY=VALUE")
    _assert_clean_error(invoke("train", "--data", DATA, "--arg", "depth=3", "-o", tmp_path / "m.keras"), 2, "bad --arg")
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.slow
def test_trim_needs_one_policy(chain, tmp_path):
    d, _ = chain
    _assert_clean_error(
        invoke("trim", d / "m.keras", "--data", DATA, "-o", tmp_path / "t.keras"), 2, "exactly one trimming policy"
    )
    assert not (tmp_path / "t.keras").exists()


def test_debug_shows_the_exception(tmp_path):
    result = CliRunner().invoke(cli, ["--debug", "eval", str(tmp_path / "nope.keras")])
    assert result.exit_code == 1 and isinstance(result.exception, TfscissorError)


def test_unexpected_errors_are_one_line_too(monkeypatch, tmp_path):
    import tfscissor.cli.models

    def boom(path, spec):
        raise KeyError("surprise")

    monkeypatch.setattr(tfscissor.cli.models, "evaluate_file", boom)
    _assert_clean_error(invoke("eval", tmp_path / "m.keras"), 1, "internal error", "--debug")


@pytest.mark.slow
def test_compile_defaults_labels_and_makes_a_c_name(chain, tmp_path):
    d, _ = chain
    odd = tmp_path / "my-model.v2.tflite"
    odd.write_bytes((d / "t.tflite").read_bytes())
    result = invoke("compile", odd, "--target", "tflm", "-o", tmp_path / "fw")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "fw" / "manifest.json").read_text())
    assert manifest["labels"] == ["0", "1", "2"] and manifest["name"] == "my_model_v2"


@pytest.mark.slow
def test_compile_never_replaces_a_directory_it_did_not_write(chain, tmp_path):
    d, _ = chain
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    _assert_clean_error(
        invoke("compile", d / "t.tflite", "--target", "tflm", "-o", tmp_path / "mine"),
        2,
        "not a tfscissor output",
    )
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # A project it wrote is replaced whole, unless the user added or edited files there since.
    assert invoke("compile", d / "t.tflite", "--target", "tflm", "-o", tmp_path / "fw").exit_code == 0
    assert invoke("compile", d / "t.tflite", "--target", "tflm", "-o", tmp_path / "fw").exit_code == 0
    (tmp_path / "fw" / "notes.txt").write_text("mine")
    _assert_clean_error(
        invoke("compile", d / "t.tflite", "--target", "tflm", "-o", tmp_path / "fw"), 2, "were added notes.txt since"
    )
    assert (tmp_path / "fw" / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_compile_refuses_an_output_that_holds_the_input(chain, tmp_path):
    d, _ = chain
    (tmp_path / "m.tflite").write_bytes((d / "t.tflite").read_bytes())
    _assert_clean_error(
        invoke("compile", tmp_path / "m.tflite", "--target", "tflm", "-o", tmp_path), 2, "holds the input model"
    )
    assert (tmp_path / "m.tflite").is_file()


def test_bad_builder_argument_values_are_usage_errors(tmp_path):
    _assert_clean_error(
        invoke("train", "--data", DATA, "--model", "resnet", "--arg", "block=wide", "-o", tmp_path / "m.keras"),
        2,
        "unknown block",
    )
    _assert_clean_error(
        invoke("train", "--data", DATA, "--arg", "widths=[16,", "-o", tmp_path / "m.keras"), 2, "not valid YAML"
    )


@pytest.mark.slow
def test_trim_checks_the_statistics_path_before_working(chain, tmp_path):
    d, _ = chain
    out = tmp_path / "t.keras"
    _assert_clean_error(
        invoke("trim", d / "m.keras", "--data", DATA, "--ratio", "0.3", "--save-stats", out, "-o", out),
        2,
        "also an input",
    )
    assert not out.exists()


@pytest.mark.slow
def test_the_command_line_trains_what_tensorflows_onednn_kernels_crash_on(tmp_path):
    """A 1x1 stride-2 projection reading 14 channels at 48x48 (what trimming makes of a ResNet shortcut) kills
    the process in TensorFlow 2.21's oneDNN backward pass on this project's machines; the entry point turns
    oneDNN off by default, so ``tfscissor train`` finishes."""
    import os
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    command = [
        str(Path(sys.executable).with_name("tfscissor")),
        "--quiet",
        "train",
        "--data",
        "cluttered:size=96,n=64,classes=2,seed=0",
        "--model",
        "resnet",
        "--arg",
        "widths=[14,15,16]",
        "--arg",
        "stem_stride=2",
        "--epochs",
        "1",
        "-o",
        str(tmp_path / "m.keras"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "m.keras").is_file()


def test_an_explicit_onednn_setting_wins(tmp_path):
    import os

    code = (
        "import os, sys; sys.argv = ['tfscissor', '--help']; from tfscissor.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint(os.environ['TF_ENABLE_ONEDNN_OPTS'], file=sys.__stdout__)"
    )
    for given, expected in ((None, "0"), ("1", "1")):
        env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
        env.update({} if given is None else {"TF_ENABLE_ONEDNN_OPTS": given})
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert result.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_numbers_are_refused_before_any_work(tmp_path, value):
    result = invoke("train", "--data", DATA, "--lr", value, "--epochs", "1", "-o", tmp_path / "m.keras")
    assert result.exit_code == 2 and "is not a finite number" in result.output, result.output
    result = invoke("trim", tmp_path / "m.keras", "--data", DATA, "--ratio", value, "-o", tmp_path / "t.keras")
    assert result.exit_code == 2 and "is not a finite number" in result.output, result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "code, advice",
    [(28, "No space left on device: free some space"), (30, "Read-only file system: the file system is read-only")],
)
def test_a_full_or_read_only_disk_is_one_line(tmp_path, monkeypatch, code, advice):
    import os

    import keras

    def full(self, path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(keras.Model, "save", full)
    result = invoke("train", "--data", DATA, "--epochs", "1", "-o", tmp_path / "m.keras")
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "cannot write" in line and advice in line and "(-o)" in line and "internal error" not in line
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_library_warnings_stay_off_the_terminal_unless_debug(debug):
    """Keras and Pillow warn through Python's warnings, meant for developers: the console entry point keeps
    them off the terminal, and --debug lets them through."""
    code = (
        "import sys, warnings\n"
        "from tfscissor.cli import app\n"
        "app.cli = lambda prog_name: warnings.warn('a library speaks', UserWarning)\n"
        f"sys.argv = ['tfscissor', *{['--debug'] if debug else []!r}, 'info']\n"
        "app.main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert ("a library speaks" in result.stderr) == debug, result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["trim", "m.keras", "--data", "folder:/nonexistent/pets", "--ratio", "0.5", "-o", "t.keras"], "image folder"),
        (["train", "--data", "idx:/nonexistent/idx", "-o", "m.keras"], "IDX directory"),
        (["trim", "m.keras", "--data", "cluttered", "--criterion", "magic", "--ratio", "0.5", "-o", "t.keras"],
         "unknown criterion 'magic'"),
        (["trim", "missing.keras", "--data", "cluttered", "--ratio", "0.5", "-o", "t.keras"], "missing.keras not found"),
        (["trim", "m.keras", "--data", "cluttered", "--target-macs", "1.5", "-o", "t.keras"],
         "target_macs is the fraction of the original to keep: give a value in (0, 1]"),
        (["trim", "m.keras", "--data", "cluttered", "--ratio", "1", "-o", "t.keras"], "ratio must be in [0, 1)"),
        (["eval", "missing.keras", "--data", "cluttered:size=32,colour=red"], "unknown option 'colour'"),
    ],
)  # fmt: skip
def test_usage_mistakes_are_reported_before_tensorflow_loads(tmp_path, args, message):
    """A wrong path, spec or name is answered at once: TensorFlow takes seconds to import, and is not."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tfscissor.cli import cli\n"
        f"result = CliRunner().invoke(cli, {args!r})\n"
        "print(result.exit_code, 'tensorflow' in sys.modules)\n"
        "print(result.output)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    status, *output = done.stdout.splitlines()
    assert status.split()[1] == "False" and status.split()[0] != "0", done.stdout
    assert message in "\n".join(output)


def test_ctrl_c_while_the_commands_load_is_one_line():
    """The console command catches a KeyboardInterrupt raised while its modules import (TensorFlow's import can
    take seconds): "Aborted!" and status 1, as click gives for Ctrl-C during a command, and no traceback."""
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'tfscissor.cli.app':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "sys.argv = ['tfscissor', '--help']\n"
        "from tfscissor.__main__ import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.strip() == "Aborted!", done.stderr

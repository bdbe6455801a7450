"""The recipe format: defaults, and errors that name the line, the key and what is allowed."""

import pytest

from tfscissor.errors import UsageError
from tfscissor.recipe import SCHEMA, load_recipe

POLICY = "trim: {ratio: 0.5}\n"


def _load(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return load_recipe(path)


def test_every_section_has_its_defaults(tmp_path):
    recipe = _load(tmp_path, POLICY)
    assert set(recipe) == set(SCHEMA)
    assert recipe["distribute"] == {"strategy": "none"} and recipe["quantize"]["method"] == "ptq"
    assert recipe["shrink"]["budget"] is None and recipe["cropper"]["enabled"] is False
    assert recipe["model"]["path"] is None and recipe["train"]["optimizer"] == "adam"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            POLICY + "shrink:\n  budget: macs=0.5\n  serach: grid\n",
            "line 4: unknown key 'shrink.serach'; allowed here: budget, ",
        ),
        (
            POLICY + "distribute:\n  strategy: tpu\n",
            "line 3: distribute.strategy is 'tpu'; allowed: none, mirrored, multi_worker",
        ),
        (POLICY + "quantize: {method: int4}\n", "line 2: quantize.method is 'int4'; allowed: ptq, qat"),
        (POLICY + "compile: {board: uno}\n", "compile.board is 'uno'; allowed: esp32s3"),
        (POLICY + "bench: {devices: [cpu, gpu:0]}\n", "bench.devices has 'gpu:0'; allowed: cpu, tflm, usb, pci"),
        (POLICY + "train:\n  epochs: ten\n", "line 3: train.epochs must be an integer, got 'ten'"),
        (POLICY + "train:\n  lr: fast\n", "line 3: train.lr must be a number, got 'fast'"),
        (POLICY + "seed: true\n", "line 2: seed must be an integer, got True"),
        (POLICY + "cropper: {enabled: 1}\n", "cropper.enabled must be true or false, got 1"),
        (POLICY + "train: {optimizer: sgd}\n", "train.optimizer is 'sgd'; allowed: adam"),
        (POLICY + "train: {epochs: null}\n", "train.epochs must be an integer, got None"),
        (
            POLICY + "model: {path: m.keras}\ntrain: {epochs: 3}\n",
            "line 2: model.path is a trained model, so train.epochs cannot",
        ),
        (POLICY + "train: {batch_size: 0}\n", "line 2: train.batch_size must be at least 1, got 0"),
        ("trim: {ratio: 1.7}\n", "line 1: trim.ratio must be at most 0.99, got 1.7"),
        (POLICY + "cropper: {mix: 5}\n", "cropper.mix must be at most 1, got 5"),
        (POLICY + "train: {lr: 0}\n", "train.lr must be above 0, got 0"),
        (POLICY + "shrink: {budget: macs=0.5, depths: [x]}\n", "shrink.depths must be a list of integers, got 'x'"),
        (POLICY + "shrink: {budget: macs=0.5, widths: [1.5]}\n", "shrink.widths must be at most 1, got 1.5"),
        (POLICY + "trim: {exclude: [3]}\n", "line 2: trim is given twice \\(also line 1\\)"),
        ("trim: {ratio: 0.5, criterion: bogus}\n", "line 1: trim.criterion is 'bogus'; allowed: "),
        (POLICY + "shrink: {budget: nonsense}\n", "line 2: shrink.budget: "),
        (POLICY + "distribute: {strategy: multi_worker}\n", "multi_worker cannot train in Keras 3.15"),
        (POLICY + "cropper: {enabled: true}\nquantize:\n  method: qat\n", "line 4: quantize.method qat quantises one"),
        (POLICY + "bench: {devices: [usb:0]}\n", "bench.devices usb:0 runs the Edge TPU model: add edgetpu"),
        (POLICY + "compile: {targets: [tflite], board: esp32s3}\n", "compile.board needs tflm in compile.targets"),
    ],
)
def test_errors_name_line_key_and_allowed_values(tmp_path, text, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace(".", r"\.")):
        _load(tmp_path, text)


def test_indexed_coral_devices_and_a_given_model_are_accepted(tmp_path):
    recipe = _load(
        tmp_path,
        POLICY + "model: {path: m.keras}\ntrain: {batch_size: 16}\ncompile: {targets: [edgetpu]}\n"
        "bench: {devices: [usb:1]}\n",
    )
    assert recipe["bench"]["devices"] == ["usb:1"] and recipe["model"]["path"] == "m.keras"
    assert recipe["train"]["batch_size"] == 16  # a given model is not trained, but fine-tunes use the batch


def test_aliases_are_refused_before_the_document_is_built(tmp_path):
    """A billion-laughs recipe: nine levels of nine aliases would expand to 9^9 strings."""
    lines = ['a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UsageError, match="line 1: YAML anchors and aliases"):
        load_recipe(path)
    with pytest.raises(UsageError, match="line 5: YAML anchors and aliases"):
        _load(tmp_path, POLICY + "model:\n  name: resnet\n  args:\n    widths: &w [8, 16]\n")


@pytest.mark.parametrize(
    "text, key",
    [
        ("train:\n  lr: .nan\n", "train.lr"),
        ("trim:\n  ratio: .inf\n", "trim.ratio"),
        (POLICY + "model:\n  name: resnet\n  args:\n    dropout: .nan\n", "model.args.dropout"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path, text, key):
    with pytest.raises(UsageError, match=f"{key} must be a finite number"):
        _load(tmp_path, text)


def test_sizes_have_upper_bounds(tmp_path):
    with pytest.raises(UsageError, match="image_size"):
        _load(tmp_path, POLICY + "image_size: 100000\n")
    with pytest.raises(UsageError, match="train.epochs"):
        _load(tmp_path, POLICY + "train:\n  epochs: 100000000\n")


def test_a_recipe_that_is_not_utf8_is_a_usage_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"not UTF-8 text \(byte 9\): save it as UTF-8"):
        load_recipe(path)


def test_a_recipe_trim_switch_becomes_the_by_hand_flag(tmp_path):
    from tests.recipe.test_every_stage import _parses
    from tfscissor.recipe import commands

    off = commands.trim(_load(tmp_path, POLICY), "baseline.keras")
    on = commands.trim(_load(tmp_path, "trim: {ratio: 0.5, reconstruct: true, distill: false}\n"), "baseline.keras")
    never = commands.trim(_load(tmp_path, "trim: {ratio: 0.5, reconstruct: false}\n"), "baseline.keras")
    assert "reconstruct" not in off and "--no-distill" not in off
    assert " --reconstruct" in on and " --no-distill" in on and " --no-reconstruct" in never
    for command in (off, on, never):
        _parses(command)

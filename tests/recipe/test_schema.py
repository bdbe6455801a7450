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
            "line 2: model.path is a trained model, so train cannot",
        ),
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
        tmp_path, POLICY + "model: {path: m.keras}\ncompile: {targets: [edgetpu]}\nbench: {devices: [usb:1]}\n"
    )
    assert recipe["bench"]["devices"] == ["usb:1"] and recipe["model"]["path"] == "m.keras"

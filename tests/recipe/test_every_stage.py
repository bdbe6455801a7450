"""One tiny recipe through every stage: train, trim, cropper, shrink on its crops, int8, all three compile targets, the CPU
and TFLM benchmarks and the report, as Smart Scissor's whole pipeline runs for a user."""

import json
import shlex

import click
import pytest

from tfscissor.recipe import load_recipe, run_recipe

# The module's recipe runs every stage once (about 45 s on 2 cores); the QAT recipe trains too.
pytestmark = pytest.mark.slow

RECIPE = """
name: every stage
data: "cluttered:size=32,n=200,classes=3,seed=4"
model: {name: resnet, args: {blocks: [1, 1], widths: [8, 16]}}
train: {epochs: 1, batch_size: 32}
trim: {ratio: 0.25, samples: 32}
shrink: {budget: "macs=0.9", depths: [0, 1], widths: [1.0, 0.75], resolutions: [16, 12], search: grid,
         calibration: 32, top: 1, fine_tune_epochs: 0}
cropper: {enabled: true, labels: boxes, resolution: 16, view: 16, width: 0.25, epochs: 1, finetune_epochs: 1}
quantize: {samples: 16}
compile: {targets: [tflm, tflite, edgetpu]}
bench: {devices: [cpu, tflm], runs: 2, warmup: 1}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, monkeypatch_module):
    # Without Coral's compiler (as here, and on most machines) the edgetpu target still gives the prediction.
    monkeypatch_module.setenv("PATH", "/usr/bin:/bin")
    root = tmp_path_factory.mktemp("every")
    (root / "recipe.yaml").write_text(RECIPE)
    summary = run_recipe(load_recipe(root / "recipe.yaml"), root / "run")
    return root / "run", summary


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_every_stage_runs_and_records_a_manifest(run):
    run_dir, _ = run
    for stage in ("train", "trim", "crop", "shrink", "quantize", "compile", "bench", "report"):
        manifest = json.loads((run_dir / "manifests" / f"{stage}.json").read_text())
        assert manifest["outputs"], stage


def test_the_firmware_is_one_two_stage_project(run):
    run_dir, _ = run
    manifests = [json.loads(path.read_text()) for path in run_dir.rglob("manifest.json")]
    firmware = [m for m in manifests if m.get("format") == "tfscissor.tflm/1"]
    assert len(firmware) == 1 and firmware[0]["cropper"]["output"]["shape"] == [1, 4]
    side = json.loads((run_dir / "shrink.json").read_text())["chosen"]
    assert side.endswith(f" r{firmware[0]['input']['shape'][1]}")  # the classifier runs on the shrunk crops
    assert firmware[0]["cropper"]["input"]["shape"][1:3] == [32, 32]  # the cropper sees the whole image


def test_the_edgetpu_target_says_it_did_not_compile(run):
    run_dir, summary = run
    assert any("Edge TPU" in note and "not compiled" in note for note in summary["notes"])
    assert list(run_dir.rglob("edgetpu_analysis.md")) and not list(run_dir.rglob("*_edgetpu.tflite"))


def test_the_report_has_a_row_for_the_shrunk_and_the_cropped_models(run):
    run_dir, summary = run
    names = [stage["name"] for stage in summary["stages"]]
    assert "shrunk" in names and any("crop" in name for name in names), names
    report = (run_dir / "report.md").read_text()
    assert "crop" in report.lower() and (run_dir / "report.html").is_file()


def _parses(command):
    """Parse a by-hand command with the CLI's own options (raises on an unknown or malformed one)."""
    from tfscissor.cli import cli

    args = shlex.split(command, comments=True)[1:]
    group = cli
    while isinstance(group.commands.get(args[0]), click.Group):
        group, args = group.commands[args[0]], args[1:]
    group.commands[args[0]].make_context(args[0], args[1:])


def test_every_artifact_has_a_by_hand_command_the_cli_accepts(run):
    _, summary = run
    commands = {stage["name"]: stage["command"] for stage in summary["stages"]}
    assert set(commands) >= {"baseline", "trimmed", "shrunk", "cropper", "cropped", "int8", "compiled", "edgetpu"}
    for command in commands.values():
        _parses(command)
    assert "--epochs 1 " in commands["cropper"] and "--epochs 1 " in commands["cropped"]
    assert "--cropper cropper_int8.tflite" in commands["compiled"] and "--target edgetpu" in commands["edgetpu"]
    assert "--cropper cropper_int8.tflite" in commands["edgetpu"]
    # The search on crops distils from the whole-image classifier the crop stage started from.
    assert "--cropper cropper.keras" in commands["shrunk"] and "--teacher " in commands["shrunk"]


def test_a_two_stage_row_counts_both_models(run):
    """Every figure of a crop-then-classify row is the pipeline's: both models' MACs, params, bytes, arenas."""
    run_dir, summary = run
    stages = {stage["name"]: stage for stage in summary["stages"]}
    cropper, cropped, int8 = (stages[name]["metrics"] for name in ("cropper", "cropped", "int8"))
    assert cropper["model_bytes"] == (run_dir / "cropper.tflite").stat().st_size and cropper["arena_bytes"] > 0
    assert cropped["model_bytes"] == cropper["model_bytes"] + (run_dir / "cropped.tflite").stat().st_size
    shrunk = stages["shrunk"]["metrics"]  # the search ran on the crops: its row is the pipeline's too
    assert cropped["params"] > cropper["params"] and shrunk["params"] > cropper["params"]
    assert int8["params"] == shrunk["params"] and int8["macs"] == shrunk["macs"]
    classifier = run_dir / stages["int8"]["artifact"]
    assert int8["model_bytes"] == (run_dir / "cropper_int8.tflite").stat().st_size + classifier.stat().st_size
    firmware = json.loads((run_dir / "firmware" / "manifest.json").read_text())
    assert (
        stages["compiled"]["metrics"]["arena_bytes"]
        == firmware["arena"]["bytes"] + firmware["cropper"]["arena"]["bytes"]
    )


QAT = """
name: qat
data: "cluttered:size=32,n=160,classes=3,seed=5"
model: {name: plain, args: {widths: [8, 16]}}
train: {epochs: 1, batch_size: 32}
trim: {ratio: 0.25, samples: 32}
quantize: {method: qat, epochs: 1, samples: 16}
bench: {runs: 2, warmup: 1}
"""


def test_quantisation_aware_training_in_a_recipe(tmp_path):
    from tfscissor.deploy import read_model

    (tmp_path / "qat.yaml").write_text(QAT)
    summary = run_recipe(load_recipe(tmp_path / "qat.yaml"), tmp_path / "run")
    int8 = next(stage for stage in summary["stages"] if stage["name"] == "int8")
    assert "--qat --epochs 1" in int8["command"]
    assert read_model((tmp_path / "run" / int8["artifact"]).read_bytes()).fully_int8

import json
from pathlib import Path

import pytest

from tfscissor.errors import UsageError
from tfscissor.recipe import load_recipe, run_recipe

TINY = """
name: tiny
data: "cluttered:size=32,n=240,classes=3,seed=3"
model: {name: plain, args: {widths: [8, 16]}}
train: {epochs: 2, batch_size: 32}
trim: {ratio: 0.25, samples: 64, fine_tune_epochs: 1}
quantize: {samples: 32}
bench: {runs: 5, warmup: 1}
"""


def _write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_tiny_recipe_end_to_end(tmp_path):
    summary = run_recipe(load_recipe(_write(tmp_path, TINY)), tmp_path / "run")
    run = tmp_path / "run"
    for name in (
        "baseline.keras",
        "trimmed.keras",
        "trimmed_int8.tflite",
        "statistics.npz",
        "trim.json",
        "summary.json",
        "summary.md",
        "report.md",
        "report.html",
    ):
        assert (run / name).is_file(), name
    assert (run / "firmware" / "model_data.cc").is_file()
    stages = [row["stage"] for row in summary["rows"]]
    assert stages == ["baseline (float)", "trimmed (float)", "trimmed int8"]
    baseline, trimmed, int8 = summary["rows"]
    assert trimmed["params"] < baseline["params"] and trimmed["MACs"] < baseline["MACs"]
    assert int8["model bytes"] < trimmed["model bytes"]  # int8 weights take a quarter of float32
    assert all(row["arena bytes"] > 0 and row["latency ms"] > 0 for row in summary["rows"])
    assert json.loads((run / "summary.json").read_text())["rows"] == summary["rows"]
    assert "| trimmed int8 |" in (run / "summary.md").read_text()
    assert [stage["name"] for stage in summary["stages"]] == ["baseline", "trimmed", "int8", "compiled"]


def test_defaults_are_filled(tmp_path):
    recipe = load_recipe(_write(tmp_path, "data: cluttered\ntrim:\n  ratio: 0.5\n"))
    assert recipe["train"]["epochs"] == 10 and recipe["trim"]["criterion"] == "taylor"
    assert recipe["compile"]["targets"] == ["tflm"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: cluttered\ntrian:\n  epochs: 3\n", "line 2: unknown key 'trian'"),
        ("train:\n  epochs: 3\n  lr: 0.1\n  momentum: 0.9\n", "line 4: unknown key 'train.momentum'"),
        ("trim: {ratio: 0.5}\ncompile:\n  targets: [tflm, fpga]\n", "compile.targets has 'fpga'; allowed: tflm"),
        ("trim: {ratio: 0.5}\ncompile:\n  targets: tflm\n", "line 3: compile.targets must be a list"),
        ("trim: {ratio: 0.5}\nbench:\n  devices: [gpu]\n", "bench.devices has 'gpu'"),
        ("data: cluttered\n", "exactly one of trim.ratio, trim.min_relevance, trim.target_macs, trim.target_params"),
        ("trim:\n  ratio: 0.5\n  min_relevance: 0\n", "line 1: give exactly one of trim.ratio"),
        ("train: 5\n", "train must be a mapping"),
        ("- a\n- b\n", "must be a mapping of sections"),
        ("data: [unclosed\n", "not valid YAML"),
    ],
)
def test_recipe_errors_name_the_key_and_line(tmp_path, text, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_recipe(_write(tmp_path, text))


def test_missing_recipe(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_shipped_demo_recipe_is_valid():
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml")
    # The main job is Smart Scissor end to end on the embedded data: trim, cropper, compound search, both targets.
    assert recipe["data"].startswith("cluttered") and recipe["trim"]["target_macs"] is not None
    assert recipe["cropper"]["enabled"] and recipe["cropper"]["distill"] and recipe["shrink"]["budget"]
    assert set(recipe["compile"]["targets"]) == {"tflm", "edgetpu"} and recipe["compile"]["board"]


@pytest.mark.slow
def test_same_recipe_same_numbers(tmp_path):
    """A recipe's seed fixes the data, the initial weights and the training: a rerun reproduces the table."""
    recipe = load_recipe(_write(tmp_path, TINY.replace("fine_tune_epochs: 1", "fine_tune_epochs: 0")))
    recipe["bench"]["devices"] = []  # latency is the one figure that is measured, not computed
    first = run_recipe(recipe, tmp_path / "a")["rows"]
    second = run_recipe(recipe, tmp_path / "b")["rows"]
    assert first == second


def test_a_run_folder_tfscissor_did_not_make_is_refused_before_anything_runs(tmp_path):
    from click.testing import CliRunner

    from tfscissor.cli import cli

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes\n")
    recipe = _write(tmp_path, TINY)
    with pytest.raises(UsageError, match=r"holds files tfscissor did not write \(report.md\): choose a new or empty"):
        run_recipe(load_recipe(recipe), mine)
    result = CliRunner().invoke(cli, ["--quiet", "run", str(recipe), "-o", str(mine)])
    assert result.exit_code == 2 and "did not write" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["report.md"]
    assert (mine / "report.md").read_text() == "my notes\n"


def test_run_log_names_ctrl_c_as_the_reason_a_stage_stopped(tmp_path, monkeypatch):
    from tfscissor.recipe import stages

    def interrupted(self, ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages.Train, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load_recipe(_write(tmp_path, TINY)), tmp_path / "run")
    (line,) = [line for line in (tmp_path / "run" / "run.log").read_text().splitlines() if "stopped after" in line]
    assert line.endswith(": KeyboardInterrupt") and "train: stopped after" in line

"""`tfscissor shrink`: the search from the command line, its table, and bad budgets."""

import pytest
from click.testing import CliRunner

from tfscissor.cli import cli

DATA = "cluttered:size=32,n=400,classes=3,seed=2"


def invoke(*args):
    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("shrink")
    result = invoke(
        "train", "--data", DATA, "--model", "resnet", "--arg", "widths=[8,16,16]", "--epochs", "1", "-o", d / "r.keras"
    )
    assert result.exit_code == 0, result.output
    return d


@pytest.mark.slow
def test_shrink_prints_every_candidate_and_the_choice_within_budget(trained):
    from tfscissor.analysis import profile_model
    from tfscissor.models import load_model

    d = trained
    args = ["--depths", "0,1", "--widths", "1,0.6", "--resolutions", "32,24", "--calibration", "32", "--top", "1"]
    result = invoke("shrink", d / "r.keras", "--data", DATA, "--budget", "macs=0.5", *args, "-o", d / "s.keras")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["candidate", "stage", "macs", "fits", "score", "accuracy"]
    rows = [line.split() for line in lines if line.startswith("d-")]
    assert [row[3] for row in rows[:8]] == ["grid"] * 8
    assert rows[8:] and {row[3] for row in rows[8:]} == {"refine"}  # the default search refines the grid
    chosen = next(line for line in lines if line.startswith("chosen "))
    original = profile_model(load_model(d / "r.keras")).macs
    small = load_model(d / "s.keras")
    assert profile_model(small).macs <= 0.5 * original
    assert f"r{small.input_shape[1]}" in chosen and "accuracy" in chosen


@pytest.mark.slow
def test_shrink_with_a_cropper_counts_its_macs_in_the_budget(trained):
    from tfscissor.analysis import profile_model
    from tfscissor.models import load_model

    d = trained
    result = invoke("crop", "train", "--data", DATA, "--epochs", "1", "-o", d / "c.keras")
    assert result.exit_code == 0, result.output
    args = ["--depths", "0", "--widths", "1,0.5", "--resolutions", "24,16", "--search", "grid", "--top", "1"]
    out = d / "sc.keras"
    result = invoke(
        "shrink", d / "r.keras", "--data", DATA, "--budget", "macs=0.5", "--cropper", d / "c.keras", *args, "-o", out
    )
    assert result.exit_code == 0, result.output
    cropper = profile_model(load_model(d / "c.keras")).macs
    original = profile_model(load_model(d / "r.keras")).macs
    chosen = (
        next(line for line in result.output.splitlines() if line.startswith("chosen "))
        .rstrip(":")
        .split(":")[0]
        .split()[1:]
    )
    row = next(line.split() for line in result.output.splitlines() if line.split()[:3] == chosen)
    assert (
        int(row[4].replace(",", "")) == profile_model(load_model(out)).macs + cropper
    )  # the table's cost is the pipeline's
    assert profile_model(load_model(out)).macs + cropper <= 0.5 * original


@pytest.mark.slow
@pytest.mark.parametrize(
    "budget, words",
    [("flops=0.5", "unknown budget axis 'flops'"), ("macs=0.0001", "smallest reachable: macs")],
)
def test_bad_or_impossible_budgets_are_one_line(trained, budget, words):
    d = trained
    result = invoke(
        "shrink",
        d / "r.keras",
        "--data",
        DATA,
        "--budget",
        budget,
        "--depths",
        "0",
        "--widths",
        "1",
        "-o",
        d / "x.keras",
    )
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], result.output
    assert not (d / "x.keras").exists()


def test_a_teacher_and_no_distillation_contradict_in_one_line(tmp_path):
    args = ["--budget", "macs=0.5", "--teacher", tmp_path / "t.keras", "--no-distill", "-o", tmp_path / "s.keras"]
    result = invoke("shrink", tmp_path / "m.keras", "--data", DATA, *args)
    assert result.exit_code != 0
    assert result.output.strip() == "Error: --teacher and --no-distill contradict each other: give one of them"

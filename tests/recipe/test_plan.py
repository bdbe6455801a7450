"""``tfscissor run --dry-run``: every shipped recipe validates and prints its plan without touching data."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from tfscissor.cli import cli

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_the_four_recipes_ship():
    names = {path.name for path in RECIPES}
    assert names >= {"demo.yaml", "fashion-cluttered.yaml", "resnet50-imagenet.yaml", "mobilenetv2-folder.yaml"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_dry_run_prints_the_plan(recipe, tmp_path):
    result = CliRunner().invoke(cli, ["run", str(recipe), "--dry-run", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "1. train:" in result.output and "report:" in result.output
    assert not (tmp_path / "run").exists()  # nothing written, nothing loaded


def test_paper_recipe_plans_every_stage_without_its_data(tmp_path):
    result = CliRunner().invoke(cli, ["run", str(RECIPES[0].parent / "resnet50-imagenet.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "data: tfds:imagenet2012,data_dir=/data/tfds, resized to 224 px" in result.output
    assert "distribute: mirrored" in result.output
    steps = [line.split(":")[0].strip() for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert steps == [
        f"{i}. {s}"
        for i, s in enumerate(["train", "trim", "crop", "shrink", "quantize", "compile", "bench", "report"], 1)
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--from", "shrink"],
            "--from 'shrink' is not a stage of this recipe (the recipe leaves out shrink): use one of",
        ),
        (["--from", "bogus"], "--from 'bogus' is not a stage of this recipe: use one of train, trim, quantize"),
        (["--from", "trim", "--dry-run"], "--from and --dry-run"),
    ],
)
def test_bad_from(args, message, tmp_path):
    recipe = tmp_path / "plain.yaml"  # no shrink, no cropper
    recipe.write_text('data: "cluttered:size=32,n=200,classes=3"\ntrim: {ratio: 0.25}\n')
    result = CliRunner().invoke(cli, ["run", str(recipe), "-o", str(tmp_path / "run"), *args])
    assert result.exit_code == 2 and message in result.output, result.output

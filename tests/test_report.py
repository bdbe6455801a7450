"""The run report: a row per stage with the artifacts' own numbers, plots that are real images, escaped text,
clear errors for a broken run directory, and an HTML page that a real browser renders with every image."""

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tfscissor.cli import cli
from tfscissor.errors import DataError, UsageError
from tfscissor.report import SUMMARY_FORMAT, Stage, load_crop_examples, save_crop_examples, write_report
from tfscissor.report.plots import crop_examples

RECIPE = """
name: tiny report
seed: 1
data: "cluttered:size=32,n=240,classes=3,seed=3"
model: {name: plain, args: {widths: [8, 16]}}
train: {epochs: 1, batch_size: 32}
trim: {ratio: 0.25, samples: 64}
quantize: {samples: 32}
bench: {runs: 3, warmup: 1}
"""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``tfscissor run`` on a tiny recipe, once for the module: it writes the report itself and says where."""
    root = tmp_path_factory.mktemp("report")
    (root / "recipe.yaml").write_text(RECIPE)
    result = CliRunner().invoke(cli, ["--quiet", "run", str(root / "recipe.yaml"), "-o", str(root / "run")])
    assert result.exit_code == 0, result.output
    assert f"report: {root / 'run' / 'report.html'} and report.md" in result.output
    return root / "run", json.loads((root / "run" / "summary.json").read_text())


@pytest.fixture
def copy(run, tmp_path):
    """A copy of the run to break or relabel."""
    return Path(shutil.copytree(run[0], tmp_path / "run"))


def _table(markdown):
    """The report's stage table: column -> cell, one dict per row."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(columns, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[1:]]


def _number(cell):
    return float(cell.replace(",", ""))


@pytest.mark.slow
def test_a_row_per_stage_with_the_numbers_of_the_artifacts(run):
    run_dir, summary = run
    rows = {row["stage"]: row for row in _table((run_dir / "report.md").read_text())}
    assert list(rows) == ["baseline (float)", "trimmed (float)", "trimmed int8", "TFLM project"]
    trim = json.loads((run_dir / "trim.json").read_text())
    manifest = json.loads((run_dir / "firmware" / "manifest.json").read_text())
    base, trimmed, int8, compiled = rows.values()
    assert _number(base["MACs"]) == trim["macs_before"] and _number(base["params"]) == trim["params_before"]
    assert _number(trimmed["MACs"]) == trim["macs_after"] == _number(int8["MACs"]) == _number(compiled["MACs"])
    assert _number(base["accuracy"]) == pytest.approx(trim["accuracy_before"], abs=5e-5)
    assert _number(int8["model bytes"]) == (run_dir / "trimmed_int8.tflite").stat().st_size
    assert _number(compiled["model bytes"]) == (run_dir / "firmware" / "model.tflite").stat().st_size
    assert _number(compiled["arena bytes"]) == manifest["arena"]["bytes"]
    assert _number(int8["arena bytes"]) == manifest["arena"]["measured_bytes"]
    assert all(_number(row["latency ms (cpu)"]) > 0 for row in (base, trimmed, int8))
    assert compiled["accuracy"] == compiled["latency ms (cpu)"] == "-"  # not measured in TFLM
    assert re.fullmatch(r"(\d+)/\1 ops \(predicted\)", int8["Edge TPU"])  # a plain CNN maps whole
    assert [s["name"] for s in summary["stages"]] == ["baseline", "trimmed", "int8", "compiled"]


@pytest.mark.slow
def test_the_commands_are_valid_tfscissor_commands(run):
    """Each command parses with the CLI's own options and carries the recipe's seed and batch size."""
    text = (run[0] / "report.md").read_text()
    commands = [line for line in text.splitlines() if line.startswith("tfscissor ")]
    assert [c.split()[1] for c in commands] == ["train", "trim", "quantize", "compile"]
    assert "--seed 1 " in commands[1] and "--batch-size 32 " in commands[1] and "--seed 1 " in commands[2]
    for command in commands:
        args = shlex.split(command, comments=True)
        cli.commands[args[1]].make_context(args[1], args[2:])  # raises on an unknown or malformed option


@pytest.mark.slow
def test_the_commands_rebuild_the_same_artifacts(run, tmp_path, monkeypatch):
    """Run by hand, in order, the commands rebuild what the run made: the same int8 model, byte for byte."""
    run_dir, _ = run
    monkeypatch.chdir(tmp_path)
    text = (run_dir / "report.md").read_text()
    for command in (line for line in text.splitlines() if line.startswith("tfscissor ")):
        result = CliRunner().invoke(cli, ["--quiet", *shlex.split(command, comments=True)[1:]])
        assert result.exit_code == 0, f"{command}\n{result.output}"
    assert (tmp_path / "trimmed_int8.tflite").read_bytes() == (run_dir / "trimmed_int8.tflite").read_bytes()
    manifest = json.loads((tmp_path / "firmware" / "manifest.json").read_text())
    assert (
        manifest["model"]["sha256"]
        == json.loads((run_dir / "firmware" / "manifest.json").read_text())["model"]["sha256"]
    )


def _images(html, run_dir):
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert sources and len(sources) == html.count("<img ")
    return [run_dir / src for src in sources]


@pytest.mark.slow
def test_plots_are_real_images(run):
    run_dir, _ = run
    html = (run_dir / "report.html").read_text()
    paths = _images(html, run_dir)
    assert sorted(p.name for p in paths) == ["accuracy_macs.png", "trimmed_statistics.png", "trimmed_trim.png"]
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from the network
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 150
            pixels = np.asarray(image.convert("L"), float)
        assert pixels.std() > 20, path  # drawn, not blank
    assert (run_dir / "report.md").read_text().count("](report/") == len(paths)


@pytest.mark.slow
def test_labels_are_escaped(copy):
    summary = json.loads((copy / "summary.json").read_text())
    summary["stages"][0]["label"] = 'base <script>alert("x")</script> | & co'
    (copy / "summary.json").write_text(json.dumps(summary))
    (copy / "report" / "stale.png").write_bytes(b"old")
    md_path, html_path = write_report(copy)
    html = html_path.read_text()
    assert "<script>" not in html and "base &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; | &amp; co" in html
    assert r'| base \<script\>alert("x")\</script\> \| & co |' in md_path.read_text()
    assert not (copy / "report" / "stale.png").exists()  # the plots folder is replaced whole


@pytest.mark.slow
def test_the_command_line(run, tmp_path):
    result = CliRunner().invoke(cli, ["report", str(run[0])])
    assert result.exit_code == 0 and "report.html" in result.output and "report.md" in result.output
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"Error: run directory {tmp_path / 'nope'} not found: run `tfscissor run RECIPE -o {tmp_path / 'nope'}` first"
    ]


def _edit_summary(change):
    def edit(run_dir):
        summary = json.loads((run_dir / "summary.json").read_text())
        change(summary)
        (run_dir / "summary.json").write_text(json.dumps(summary))

    return edit


@pytest.mark.slow
@pytest.mark.parametrize(
    "break_it, error, message",
    [
        (lambda d: shutil.rmtree(d), UsageError, "not found"),
        (lambda d: (d / "summary.json").unlink(), UsageError, "has no summary.json"),
        (lambda d: (d / "summary.json").write_text("{"), DataError, "summary.json is unreadable"),
        (_edit_summary(lambda s: s.pop("format")), DataError, "older tfscissor"),
        (_edit_summary(lambda s: s["stages"][0]["metrics"].update(flops=1)), DataError, "unknown metrics flops"),
        (_edit_summary(lambda s: s["stages"][0]["files"].update(logs="x")), DataError, "unknown files logs"),
        (_edit_summary(lambda s: s["stages"][2].update(edgetpu={"mapped": 1})), DataError, "edgetpu must have"),
        (_edit_summary(lambda s: s["stages"][0].pop("label")), DataError, "malformed stage"),
        (_edit_summary(lambda s: s["stages"].append(s["stages"][0])), DataError, "distinct names"),
        (_edit_summary(lambda s: s.update(stages=[])), DataError, "distinct names"),
        (lambda d: (d / "trimmed_int8.tflite").unlink(), DataError, "trimmed_int8.tflite (trimmed int8) is missing"),
        (lambda d: (d / "trim.json").write_text("[]"), DataError, "cannot read the trim report"),
        (lambda d: (d / "trim.json").write_text('{"layers": []}'), DataError, "lists no layers"),
        (lambda d: (d / "statistics.npz").write_bytes(b"nope"), DataError, "cannot read statistics"),
    ],
)
def test_a_broken_run_directory_is_one_clear_error(copy, break_it, error, message):
    break_it(copy)
    with pytest.raises(error, match=re.escape(message)) as caught:
        write_report(copy)
    assert "tfscissor run RECIPE" in str(caught.value) or "again" in str(caught.value)


@pytest.mark.slow
def test_empty_statistics_are_an_error(copy):
    with open(copy / "statistics.npz", "wb") as f:
        np.savez(f)
    with pytest.raises(DataError, match="hold no layers"):
        write_report(copy)


def test_stage_round_trips_every_argument():
    stage = Stage(
        "int8",
        "int8 model",
        "m.tflite",
        metrics={"accuracy": 0.5, "macs": 10},
        latency_ms={"cpu": 1.5},
        edgetpu={"mapped": 3, "operations": 4, "source": "compiled"},
        command="tfscissor quantize m.keras -o m.tflite",
        files={"trim": "trim.json"},
    )
    again = Stage.from_dict(json.loads(json.dumps(stage.to_dict())))
    assert again == stage and again.metrics["params"] is None and again.edgetpu["source"] == "compiled"
    assert Stage.from_dict(Stage("a b/c", "x", "y").to_dict()).slug == "a_b_c"


def test_crop_examples_are_drawn_with_both_boxes(tmp_path):
    grey = np.full((3, 40, 40, 3), 128, np.uint8)
    true = np.array([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.9, 0.9], [np.nan] * 4], np.float32)
    predicted = np.array([[0.3, 0.3, 0.9, 0.9], [np.nan, 0, 1, 1], [0.2, 0.2, 0.6, 0.6]], np.float32)
    crop_examples(grey, predicted, true, tmp_path / "crops.png", "crops")
    pixels = np.asarray(Image.open(tmp_path / "crops.png").convert("RGB")).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert ((green > 200) & (red < 60) & (blue < 60)).sum() > 100  # true boxes, lime
    assert ((red > 200) & (green < 60) & (blue < 60)).sum() > 100  # predicted boxes, red


def test_a_cropper_stage_gets_its_row_and_crops(tmp_path):
    """No recipe has a cropper yet: a tiny untrained one, its crop examples and a hand-written summary."""
    from tfscissor.analysis import profile_model
    from tfscissor.crop.training import predict_boxes
    from tfscissor.data import load_data
    from tfscissor.models import save_model
    from tfscissor.models.cropper import build_cropper

    data = load_data("cluttered:size=32,n=40,classes=2,seed=0")
    cropper = build_cropper(data.image_shape, view=16, width=0.25, blocks=1, stages=1, hidden=8, seed=0)
    save_model(cropper, tmp_path / "cropper.keras")
    predicted = predict_boxes(cropper, data.val.images[:6])
    save_crop_examples(tmp_path / "crops.npz", data.val.images[:6], predicted, data.val.boxes[:6])
    images, loaded, true = load_crop_examples(tmp_path / "crops.npz")
    assert np.array_equal(loaded, predicted) and np.array_equal(true, data.val.boxes[:6]) and len(images) == 6
    profile = profile_model(cropper)
    stage = Stage(
        "cropper",
        "cropper <float>",
        "cropper.keras",
        metrics={"macs": profile.macs, "params": profile.params},
        files={"crop_examples": "crops.npz"},
    )
    summary = {"format": SUMMARY_FORMAT, "recipe": {}, "stages": [stage.to_dict()]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    md_path, html_path = write_report(tmp_path)
    row = _table(md_path.read_text())[0]
    assert row["stage"] == r"cropper \<float\>" and _number(row["MACs"]) == profile.macs and row["accuracy"] == "-"
    assert [p.name for p in _images(html_path.read_text(), tmp_path)] == ["cropper_crop_examples.png"]
    with Image.open(tmp_path / "report" / "cropper_crop_examples.png") as image:
        assert np.asarray(image.convert("L"), float).std() > 20


@pytest.mark.parametrize(
    "images, boxes, message",
    [
        (np.zeros((2, 8, 8)), None, "need images (N, H, W, C)"),
        (np.zeros((2, 8, 8, 3)), np.zeros((3, 4)), "2 images but true boxes"),
        (np.zeros((3, 8, 8, 3)), np.zeros((3, 4)), "3 images but predicted boxes"),
    ],
)
def test_crop_examples_refuse_mismatched_input(tmp_path, images, boxes, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        save_crop_examples(tmp_path / "c.npz", images, np.zeros((2, 4)), boxes)


def test_unreadable_crop_examples(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match="cannot read crop examples"):
        load_crop_examples(tmp_path / "bad.npz")
    with open(tmp_path / "odd.npz", "wb") as f:
        np.savez(f, images=np.zeros((2, 4, 4, 3)), predicted=np.zeros((2, 4)), true=np.zeros((1, 4)))
    with pytest.raises(DataError, match="expected"):
        load_crop_examples(tmp_path / "odd.npz")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium: make system-deps)")
def test_a_headless_browser_renders_the_report_with_every_image(copy, tmp_path):
    html = (copy / "report.html").read_text()
    # A probe beside the report, so relative image links resolve as they do for the report itself; after the
    # load event it records how many images decoded.
    probe = copy / "probe.html"
    probe.write_text(
        html.replace(
            "</body>",
            "<script>addEventListener('load', () => { document.body.dataset.loaded = "
            "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length; });</script></body>",
        )
    )
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*browser, f"--screenshot={shot}", "--window-size=1200,1600", (copy / "report.html").as_uri()],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with Image.open(shot) as image:
        assert image.size == (1200, 1600)
        assert np.asarray(image.convert("L"), float).std() > 20  # text, table and a plot, not a blank page
    dom = subprocess.run(
        [*browser, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    loaded = re.search(r'data-loaded="(\d+)"', dom)
    assert loaded, dom[:500]
    assert int(loaded.group(1)) == len(_images(html, copy)) == 3

"""Stages with manifests: a rerun skips what is up to date, a config change reruns what depends on it, --from
forces a restart point, a run killed mid-training resumes from its last epoch and ends as an uninterrupted
run does, and every run leaves TensorBoard logs and run.log."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tfscissor.recipe import load_recipe, run_recipe

# Every test reruns or resumes the reference run that the module makes first (about 15 s on 2 cores).
pytestmark = pytest.mark.slow

EPOCHS = 6
TINY = f"""
name: tiny resumable
data: "cluttered:size=32,n=240,classes=3,seed=3"
model: {{name: plain, args: {{widths: [8, 16]}}}}
train: {{epochs: {EPOCHS}, batch_size: 32}}
trim: {{ratio: 0.25, samples: 64, fine_tune_epochs: 1}}
quantize: {{samples: 32}}
bench: {{runs: 5, warmup: 1}}
"""
STAGES = ["train", "trim", "quantize", "compile", "bench", "report"]


def _tfscissor(*args):
    return [sys.executable, "-c", "from tfscissor.cli import main; main()", "--quiet", *map(str, args)]


@pytest.fixture(scope="module")
def recipe_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def reference(recipe_path):
    """An uninterrupted ``tfscissor run``, as a user starts it."""
    run_dir = recipe_path.parent / "reference"
    done = subprocess.run(_tfscissor("run", recipe_path, "-o", run_dir), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return run_dir


def _copy(reference, tmp_path):
    return Path(shutil.copytree(reference, tmp_path / "run"))


def _manifests(run_dir):
    return {stage: (run_dir / "manifests" / f"{stage}.json").read_text() for stage in STAGES}


def _rerun(recipe_path, run_dir, edit=None, start=None):
    recipe = load_recipe(recipe_path)
    if edit:
        edit(recipe)
    before = _manifests(run_dir)
    run_recipe(recipe, run_dir, start=start)
    after = _manifests(run_dir)
    return [stage for stage in STAGES if before[stage] != after[stage]]


def test_rerun_skips_every_stage(reference, recipe_path, tmp_path):
    run_dir = _copy(reference, tmp_path)
    start = time.perf_counter()
    assert _rerun(recipe_path, run_dir) == []
    assert time.perf_counter() - start < 5
    log = (run_dir / "run.log").read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in log[-len(STAGES) - 1 : -1]] == [
        f"{s}: up to date, skipped" for s in STAGES
    ]


def test_a_config_change_reruns_only_what_depends_on_it(reference, recipe_path, tmp_path):
    run_dir = _copy(reference, tmp_path)
    assert _rerun(recipe_path, run_dir, lambda r: r["bench"].update(runs=6)) == ["bench", "report"]
    changed = _rerun(recipe_path, run_dir, lambda r: r["quantize"].update(samples=16))
    assert changed == ["quantize", "compile", "bench", "report"]


def test_from_reruns_a_stage_and_everything_after_it(reference, recipe_path, tmp_path):
    run_dir = _copy(reference, tmp_path)
    assert _rerun(recipe_path, run_dir, start="compile") == ["compile", "bench", "report"]


def test_a_damaged_artifact_is_made_again(reference, recipe_path, tmp_path):
    run_dir = _copy(reference, tmp_path)
    (run_dir / "trimmed_int8.tflite").write_bytes(b"half a model")
    # Quantising is deterministic: the model made again is the same bytes, so what follows stays up to date.
    assert _rerun(recipe_path, run_dir) == ["quantize"]
    assert (run_dir / "trimmed_int8.tflite").read_bytes() == (reference / "trimmed_int8.tflite").read_bytes()


def test_logs(reference):
    for stage in ("train", "trim"):
        events = list((reference / "logs" / stage).rglob("events.out.tfevents.*"))
        assert events and all(path.stat().st_size > 0 for path in events), stage
    log = (reference / "run.log").read_text()
    assert all(f"{stage}: finished in" in log for stage in STAGES)
    assert not (reference / ".checkpoints").exists()  # removed with each finished stage, then itself


def _weights(path):
    import keras

    return keras.saving.load_model(path, compile=False).get_weights()


def test_killed_mid_training_resumes_from_its_last_epoch_and_ends_the_same(reference, recipe_path, tmp_path):
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(_tfscissor("run", recipe_path, "-o", run_dir), stderr=subprocess.DEVNULL)
    second = run_dir / ".checkpoints" / "train"
    deadline = time.monotonic() + 120
    while not list(second.glob("*/fit1/epoch-00002.weights.h5")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its second epoch"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run_dir / "manifests" / "train.json").exists() and not (run_dir / "baseline.keras").exists()

    done = subprocess.run(_tfscissor("run", recipe_path, "-o", run_dir), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    log = (run_dir / "run.log").read_text()
    resumed = log[log.rindex("train: started") :]
    first = int(resumed.split("resumed fit 1 after epoch ")[1].split()[0])
    assert first >= 2 and resumed.count("train: fit 1 epoch") == EPOCHS - first  # only the remaining epochs ran

    for name in ("baseline.keras", "trimmed.keras"):
        for ours, theirs in zip(_weights(run_dir / name), _weights(reference / name), strict=True):
            np.testing.assert_array_equal(ours, theirs)
    for name in ("trimmed_int8.tflite", "statistics.npz", "trim.json", "firmware/model_data.cc"):
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name

    def rows(path):
        return [{k: v for k, v in row.items() if k != "latency ms"} for row in json.loads(path.read_text())["rows"]]

    assert rows(run_dir / "summary.json") == rows(reference / "summary.json")

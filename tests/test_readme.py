"""The README's library example runs as written (with a smaller data set and one epoch)."""

import re
from pathlib import Path

import pytest

# Each example trains and converts models: over 5 s on 2 cores.
pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"


def _examples():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_library_example_runs(tmp_path, monkeypatch):
    code = _examples()[0]
    small = (
        code.replace('"cluttered:size=48,n=3000"', '"cluttered:size=32,n=200,classes=3"')
        .replace("epochs=10", "epochs=1")
        .replace("fine_tune_epochs=2", "fine_tune_epochs=1")
    )
    assert small != code, "the README example changed: update this test's substitutions"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(small, str(README), "exec"), namespace)
    assert namespace["result"].model.count_params() < namespace["model"].count_params()
    assert namespace["by_relevance"].model.count_params() < namespace["model"].count_params()
    assert (tmp_path / "fw" / "model_data.cc").is_file() and namespace["project"].arena_bytes > 0


def test_crop_example_runs():
    code = _examples()[1]
    small = code.replace('"cluttered:size=64,n=3000"', '"cluttered:size=32,n=200,classes=3"').replace(
        "epochs=10", "epochs=1"
    )
    assert small != code, "the README's crop example changed: update this test's substitutions"
    namespace = {}
    exec(compile(small, str(README), "exec"), namespace)
    report = namespace["report"]
    assert report["resolution"] == 32 and report["samples"] == len(namespace["data"].val)
    assert report["macs"]["cropper"] <= 2_000_000

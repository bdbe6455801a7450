import json
import subprocess
import sys
from pathlib import Path

import pytest

import tfscissor
from tfscissor.bench import bench_cpu
from tfscissor.errors import ModelError, UsageError

KEYS = {
    "backend": str,
    "model_bytes": int,
    "input_shape": list,
    "input_dtype": str,
    "num_threads": type(None),
    "runs": int,
    "warmup": int,
    "first_inference_ms": float,
    "median_ms": float,
    "p90_ms": float,
    "max_ms": float,
    "min_ms": float,
    "mean_ms": float,
    "throughput_per_s": float,
    "peak_rss_bytes": int,
}


def test_result_keys_types_and_order_statistics(tiny_model_bytes):
    result = bench_cpu(tiny_model_bytes, runs=20, warmup=2)
    assert {key: type(value) for key, value in result.items()} == KEYS
    assert result["min_ms"] <= result["median_ms"] <= result["p90_ms"] <= result["max_ms"]
    assert result["min_ms"] <= result["mean_ms"] <= result["max_ms"]
    assert result["first_inference_ms"] > 0 and result["peak_rss_bytes"] > 0
    assert result["throughput_per_s"] == pytest.approx(1000 / result["median_ms"])
    assert result["input_shape"] == [1, 16, 16, 3] and result["input_dtype"] == "int8"
    assert result["model_bytes"] == len(tiny_model_bytes) and result["backend"] == "litert-cpu"
    json.dumps(result)  # what `tfscissor bench --json` prints


def test_runs_are_counted_through_a_callable(tiny_model_bytes):
    ticks = []
    result = bench_cpu(tiny_model_bytes, runs=7, warmup=0, progress=ticks.append)
    assert ticks == [1] * 7 and result["runs"] == 7 and result["warmup"] == 0


def test_runs_are_counted_through_a_tqdm_like_bar(tiny_model_path):
    class Bar:
        n = 0

        def update(self, n):
            self.n += n

    bar = Bar()
    result = bench_cpu(tiny_model_path, runs=5, warmup=1, num_threads=1, progress=bar)
    assert bar.n == 5 and result["num_threads"] == 1


def test_path_and_bytes_give_the_same_description(tiny_model_bytes, tiny_model_path):
    by_bytes = bench_cpu(tiny_model_bytes, runs=1, warmup=0)
    by_path = bench_cpu(str(tiny_model_path), runs=1, warmup=0)
    for key in ("model_bytes", "input_shape", "input_dtype"):
        assert by_bytes[key] == by_path[key]


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        bench_cpu(tmp_path / "absent.tflite")


def test_not_a_tflite_path(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"x")
    with pytest.raises(UsageError, match="not a .tflite file"):
        bench_cpu(path)


def test_corrupt_file(tmp_path, tiny_model_bytes):
    path = tmp_path / "cut.tflite"
    path.write_bytes(tiny_model_bytes[: len(tiny_model_bytes) // 2])
    with pytest.raises(ModelError, match="not a valid .tflite"):
        bench_cpu(path)


def test_model_of_the_wrong_type():
    with pytest.raises(UsageError, match="bytes or a path"):
        bench_cpu(12)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"runs": 0}, "runs"),
        ({"runs": 2.5}, "runs"),
        ({"runs": True}, "runs"),
        ({"warmup": -1}, "warmup"),
        ({"num_threads": 0}, "num_threads"),
        ({"progress": 3}, "progress"),
    ],
)
def test_bad_options(tiny_model_bytes, kwargs, name):
    with pytest.raises(UsageError, match=name):
        bench_cpu(tiny_model_bytes, **kwargs)


def test_does_not_import_tensorflow(tiny_model_path):
    code = (
        "import sys\n"
        "from tfscissor.bench import bench_cpu\n"
        f"result = bench_cpu({str(tiny_model_path)!r}, runs=3, warmup=1)\n"
        "assert result['runs'] == 3\n"
        "loaded = [m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')]\n"
        "assert not loaded, loaded\n"
    )
    root = Path(tfscissor.__file__).resolve().parents[1]  # so the child imports this checkout
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=root)

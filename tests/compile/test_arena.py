import sys

import numpy as np
import pytest

from tests.compile.helpers import litert_run, random_input, repack, tflm_run
from tfscissor.deploy import _probe, measure_arena, read_model
from tfscissor.errors import ModelError, TfscissorError, UsageError


@pytest.fixture(scope="session")
def arenas(int8_model):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = measure_arena(int8_model(name))
        return cache[name]

    return get


def test_arena_is_the_smallest_that_works(int8_model, arenas, model_name):
    data = int8_model(model_name)
    arena = arenas(model_name)
    tensor = random_input(read_model(data).input.shape, seed=1)
    assert arena % 16 == 0
    tflm_run(data, tensor, arena)  # allocates and invokes
    with pytest.raises(RuntimeError):
        tflm_run(data, tensor, arena - 16)


def test_tflm_matches_litert_within_one_step(int8_model, arenas, model_name):
    data = int8_model(model_name)
    shape = read_model(data).input.shape
    for seed in range(3):
        tensor = random_input(shape, seed)
        tflm = tflm_run(data, tensor, arenas(model_name)).astype(int)
        litert = litert_run(data, tensor).astype(int)
        # Not bit-exact: LiteRT's optimised FULLY_CONNECTED rounds differently from TFLM's by up to 1 LSB.
        assert np.abs(tflm - litert).max() <= 1


def test_measuring_prints_nothing_on_this_process_stderr(int8_model, capfd):
    measure_arena(int8_model("plain"))
    out, err = capfd.readouterr()
    assert out == "" and "allocate" not in err


def test_prober_survives_a_segfaulting_runtime(int8_model, arenas):
    # TFLM's Python runtime segfaults on arenas below ~500 bytes instead of raising: the worker dies, the
    # probe counts as failed, and the next probe runs in a fresh worker.
    data = int8_model("plain")
    with _probe.Prober(data, np.zeros(read_model(data).input.shape, np.int8).tobytes()) as prober:
        assert prober.probe(64) is None
        assert prober.last_exit.startswith("crashed with")
        assert prober.probe(arenas("plain")) is not None and prober.last_exit is None


def test_accepts_a_path(tmp_path, int8_model, arenas):
    path = tmp_path / "m.tflite"
    path.write_bytes(int8_model("plain"))
    assert measure_arena(path) == arenas("plain")


def test_max_arena_too_small_for_the_model(int8_model):
    with pytest.raises(ModelError, match="cannot run model even with a 1024-byte arena: .*allocate"):
        measure_arena(int8_model("plain"), max_arena=1024)


@pytest.mark.parametrize("max_arena", [0, 8, 1.5e6, "big", None])
def test_bad_max_arena(int8_model, max_arena):
    with pytest.raises(UsageError, match="max_arena"):
        measure_arena(int8_model("plain"), max_arena=max_arena)


def _fake_worker(monkeypatch, code):
    monkeypatch.setattr(_probe, "_worker_command", lambda model, inp: [sys.executable, "-c", code])


def test_runtime_crash_on_any_arena_is_a_model_error(int8_model, monkeypatch):
    # What TFLM does on a degenerate model (SOFTMAX's Prepare aborts): simulated, as building one takes long.
    _fake_worker(
        monkeypatch,
        "import os, sys; sys.stdin.readline(); print('--- arena 1', file=sys.stderr, flush=True); os.abort()",
    )
    with pytest.raises(ModelError, match="crashed with SIGABRT preparing model"):
        measure_arena(int8_model("plain"))


def test_worker_that_cannot_start(int8_model, monkeypatch):
    _fake_worker(monkeypatch, "import sys; print('ModuleNotFoundError: tflite_micro', file=sys.stderr); sys.exit(3)")
    with pytest.raises(TfscissorError, match="exited with status 3 before running anything.*tflite_micro.*install"):
        measure_arena(int8_model("plain"))


def test_model_without_inputs(int8_model):
    data = repack(int8_model("plain"), lambda m, s: setattr(m.subgraphs[0], "inputs", []))
    with pytest.raises(ModelError, match="no input"):
        measure_arena(data)


def test_input_that_cannot_be_fed(int8_model):
    def string_input(model, schema):
        model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].type = schema.TensorType.STRING

    with pytest.raises(ModelError, match="string input"):
        measure_arena(repack(int8_model("plain"), string_input))

"""tfscissor.models.distribute: strategies by name, and training, trimming and statistics under them equal to one
device's. The distributed runs happen in child processes (tests/distribute_child.py): two logical CPUs, or
two local workers, must be set up before TensorFlow starts, and this session has started it already."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfscissor.errors import UsageError
from tfscissor.models.distribute import STRATEGIES, check_training, leaves_a_replica_empty, strategy_for

CHILD = Path(__file__).with_name("distribute_child.py")


def _child(*args):
    # The worker sets its own TF_CONFIG; the rest of this session's environment is the child's.
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def _results(*processes, timeout=240):
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:  # a worker whose partner failed waits for it forever
            process.kill()
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    return [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]


def _assert_statistics_equal(comparison):
    for name, layer in comparison.items():
        assert layer["counts"][0] == layer["counts"][1], name
        assert layer["total"] < 1e-5 and layer["magnitude"] < 1e-5, (name, layer)
        assert layer["zeros_equal"], name


def test_none_is_the_default_strategy():
    assert strategy_for("none") is None
    check_training(None, 64, train_split=1)  # nothing to check on one device


def test_unknown_strategy():
    with pytest.raises(UsageError, match="unknown distribute strategy 'tpu': use one of none, mirrored, multi_worker"):
        strategy_for("tpu")
    assert STRATEGIES == ("none", "mirrored", "multi_worker")


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match=r"needs TF_CONFIG, which is not set: TF_CONFIG must hold JSON such as"):
        strategy_for("multi_worker")


@pytest.mark.parametrize(
    "config",
    [
        "not json",
        '{"cluster": {"worker": ["a:1"]}}',  # no task
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',  # not in the cluster
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',  # index out of range
        '{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}',  # not a list
    ],
)
def test_multi_worker_refuses_a_broken_tf_config(monkeypatch, config):
    monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(UsageError, match=r"TF_CONFIG is not a cluster this machine belongs to .*\"task\""):
        strategy_for("multi_worker")


@pytest.mark.parametrize(
    ("size", "replicas", "empty"),
    # TensorFlow's own split, measured with experimental_distribute_dataset: 17 over 2 is 1 + 0 in the last
    # batch, 21 over 4 is 2 + 2 + 1 + 0, 23 over 4 is 2 + 2 + 2 + 1, 20 over 3 is 2 + 2 + 0.
    [(32, 2, False), (17, 2, True), (18, 2, False), (21, 4, True), (23, 4, False), (20, 3, True), (21, 3, False)],
)
def test_which_last_batches_leave_a_replica_empty(size, replicas, empty):
    assert leaves_a_replica_empty(size, 16, replicas) is empty


@pytest.mark.slow
def test_mirrored_over_two_cpus_equals_one_device():
    (result,) = _results(_child("mirrored"))
    assert result["replicas"] == 2 and result["same_devices"]
    for builder in ("plain", "resnet"):
        run = result[builder]
        _assert_statistics_equal(run["statistics"])
        assert run["removed"] > 0 and all(run["kept_equal"].values()), run["kept_equal"]
        assert run["weight_gap"] < 1e-6  # the same channels and the same mean compensation
    _assert_statistics_equal(result["statistics_tail"])

    # Training with the same global batch and seed: synchronised batch norm and the loss scaled per replica
    # make every step the single-device step up to float summation order, which Adam's normalised steps
    # carry on; measured, the weights end 0.5% of training's own move apart. Exact equality is not expected.
    single, mirrored = result["train"]["loss"]
    assert all(np.isfinite(mirrored))
    np.testing.assert_allclose(mirrored, single, rtol=1e-4)
    assert result["train"]["relative_gap"] < 0.02
    assert result["train_refused"].startswith("UsageError: train_split has 128 images: its last batch of 1")

    assert result["stage"]["params"][1] < result["stage"]["params"][0] and 0 <= result["stage"]["accuracy"] <= 1
    assert np.isfinite(result["crops"]["loss"]).all() and result["crops"]["changed"]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [str(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ",".join(ports)


@pytest.mark.slow
def test_two_workers_sum_statistics_and_refuse_training():
    ports = _free_ports(2)
    for result in _results(*(_child("worker", str(index), ports) for index in range(2))):
        assert result["replicas"] == 2
        _assert_statistics_equal(result["statistics"])
        assert "keras-team/keras#20585" in result["train_refused"]

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfscissor.errors import DataError
from tfscissor.models import build_model
from tfscissor.trim import ActivationStatistics, ChannelStatistics, LayerStatistics, collect_statistics

TAPS = ["stage1_conv1_relu", "stage2_conv1_relu"]


@pytest.fixture
def model():
    return build_model("plain", (32, 32, 3), 4, widths=(8, 16))


def _reference(model, images, name):
    probe = keras.Model(model.inputs, model.get_layer(name).output)
    out = probe.predict(images, verbose=0)
    axes = (0, 1, 2)
    return out.mean(axis=axes), np.abs(out).mean(axis=axes), (out == 0).mean(axis=axes), np.prod(out.shape[:3])


def test_predict_statistics_equal_direct_computation(model, images):
    stats = collect_statistics(model, images, TAPS, batch_size=16)
    for name in TAPS:
        mean, magnitude, zeros, count = _reference(model, images, name)
        np.testing.assert_allclose(stats[name].mean, mean, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(stats[name].mean_magnitude, magnitude, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(stats[name].zero_fraction, zeros, atol=1e-9)
        assert stats[name].count == count


def test_default_taps_every_activation(model, images):
    stats = collect_statistics(model, images)
    assert set(stats) == {"stage1_conv1_relu", "stage2_conv1_relu"}


def test_evaluate_and_fit_are_observed_and_model_is_restored(model, images):
    labels = np.arange(len(images)) % 4
    model.compile("adam", "sparse_categorical_crossentropy")
    recorder = ActivationStatistics(TAPS, modes=("test", "train"))
    model.evaluate(images, labels, batch_size=16, verbose=0, callbacks=[recorder])
    mean, _, _, count = _reference(model, images, TAPS[0])
    np.testing.assert_allclose(recorder.statistics[TAPS[0]].mean, mean, rtol=1e-5, atol=1e-7)
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0, callbacks=[recorder])
    assert recorder.statistics[TAPS[0]].count == count  # one epoch over the same images: a fresh run, not a sum
    assert all("call" not in model.get_layer(n).__dict__ for n in TAPS)


def test_one_instance_serves_several_runs(model, images):
    recorder = ActivationStatistics(TAPS)
    model.predict(images[:16], verbose=0, callbacks=[recorder])
    first = recorder.statistics[TAPS[0]].count
    model.predict(images, verbose=0, callbacks=[recorder])
    assert recorder.statistics[TAPS[0]].count == 3 * first  # 48 images, reset at the start of the run


def test_runs_not_in_modes_are_left_alone(model, images):
    recorder = ActivationStatistics(TAPS, modes=("test",))
    model.predict(images, verbose=0, callbacks=[recorder])
    assert recorder.statistics == {}


def test_merge_save_and_load(tmp_path):
    a = ChannelStatistics(x=LayerStatistics(np.array([1.0, -2.0]), np.array([1.0, 2.0]), np.array([0.0, 1.0]), 4))
    b = ChannelStatistics(
        x=LayerStatistics(np.array([3.0, 0.0]), np.array([3.0, 1.0]), np.array([1.0, 2.0]), 2),
        y=LayerStatistics(np.ones(1), np.ones(1), np.zeros(1), 1),
    )
    merged = a.merge(b)
    np.testing.assert_array_equal(merged["x"].total, [4.0, -2.0])
    np.testing.assert_array_equal(merged["x"].magnitude, [4.0, 3.0])
    assert merged["x"].count == 6 and "y" in merged
    path = tmp_path / "stats.npz"
    merged.save(path)
    loaded = ChannelStatistics.load(path)
    assert set(loaded) == {"x", "y"}
    np.testing.assert_array_equal(loaded["x"].zeros, [1.0, 3.0])
    np.testing.assert_array_equal(loaded["x"].magnitude, [4.0, 3.0])
    assert loaded["x"].count == 6


def test_merge_refuses_different_widths():
    with pytest.raises(ValueError, match="cannot merge"):
        LayerStatistics(np.ones(2), np.ones(2), np.zeros(2), 1).merge(
            LayerStatistics(np.ones(3), np.ones(3), np.zeros(3), 1)
        )


def test_load_corrupt_statistics(tmp_path):
    path = tmp_path / "stats.npz"
    path.write_bytes(b"not an npz")
    with pytest.raises(DataError, match="cannot read statistics"):
        ChannelStatistics.load(path)


def test_fit_with_train_and_test_modes_records_the_training_run(model, images):
    labels = np.arange(len(images)) % 4
    model.compile("adam", "sparse_categorical_crossentropy")
    recorder = ActivationStatistics(TAPS, modes=("train", "test"))
    model.fit(
        images,
        labels,
        batch_size=16,
        epochs=2,
        validation_data=(images[:8], labels[:8]),
        verbose=0,
        callbacks=[recorder],
    )
    # Two epochs over 48 training images; the nested validation runs are not mixed in.
    assert recorder.statistics[TAPS[0]].count == 2 * 48 * 32 * 32
    assert all("call" not in model.get_layer(n).__dict__ for n in TAPS)


DISTRIBUTED = """
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfscissor.models import build_model
from tfscissor.trim import collect_statistics

images = np.random.default_rng(0).uniform(0, 255, (64, 16, 16, 3)).astype("float32")
single = build_model("plain", (16, 16, 3), 3, widths=(4,), seed=0)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = build_model("plain", (16, 16, 3), 3, widths=(4,), seed=0)
replicas = strategy.num_replicas_in_sync
a = collect_statistics(single, images, ["stage1_conv1_relu"], batch_size=16)["stage1_conv1_relu"]
b = collect_statistics(mirrored, images, ["stage1_conv1_relu"], batch_size=16)["stage1_conv1_relu"]
print(json.dumps({"replicas": replicas, "count": [a.count, b.count], "total": [a.total.tolist(), b.total.tolist()]}))
"""


@pytest.mark.slow
def test_statistics_are_summed_across_replicas_of_a_strategy():
    """Under a MirroredStrategy each replica sees part of every batch; the statistics must add up to those of
    one device. Runs in a child process, because logical devices must be set before TensorFlow starts."""
    done = subprocess.run([sys.executable, "-c", DISTRIBUTED], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["count"][0] == result["count"][1] == 64 * 16 * 16
    np.testing.assert_allclose(result["total"][1], result["total"][0], rtol=1e-5)

import zipfile

import keras
import numpy as np
import pytest

from tfscissor.errors import ModelError, UsageError
from tfscissor.models import build_model, load_model, save_model


def test_round_trip_keeps_outputs(tmp_path, images):
    model = build_model("resnet", (32, 32, 3), 4, blocks=(1, 1), widths=(8, 16))
    path = tmp_path / "m.keras"
    save_model(model, path)
    loaded = load_model(path)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary file left beside it


def test_a_model_trained_with_tfscissors_own_loss_loads_in_plain_keras(tmp_path, images):
    """A fine-tune distils with a loss only tfscissor defines: the saved file must not need it to load."""
    import h5py

    from tfscissor.models.training import compile_classifier

    model = compile_classifier(build_model("plain", (32, 32, 3), 4), distill=True)
    labels = np.zeros((len(images), 1 + 4), np.float32)  # (label, teacher outputs...) rows
    model.fit(images, labels, epochs=1, verbose=0)  # the optimizer now has state
    save_model(model, tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # compile=True, Keras's default
    assert not loaded.compiled
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    with zipfile.ZipFile(tmp_path / "m.keras") as archive, archive.open("model.weights.h5") as weights:
        assert "optimizer" not in h5py.File(weights, "r")  # Adam's state stays behind too


def test_a_compiled_model_with_an_unregistered_custom_layer_still_saves(tmp_path, images):
    class Doubler(keras.layers.Layer):  # registered nowhere: its config alone cannot rebuild it
        def call(self, inputs):
            return inputs * 2.0

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(Doubler()(inputs))))
    model.compile(optimizer="adam", loss="mse")
    save_model(model, tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", custom_objects={"Doubler": Doubler}, compile=False)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model = build_model("plain", (32, 32, 3), 4)

    def broken_save(path, *args, **kwargs):
        path.write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError):
        save_model(model, tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []


def test_save_needs_keras_suffix(tmp_path):
    with pytest.raises(UsageError, match=".keras"):
        save_model(build_model("plain", (32, 32, 3), 4), tmp_path / "m.h5")


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.keras")


def test_wrong_suffix(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a .keras file"):
        load_model(tmp_path / "m.h5")


def test_truncated_file(tmp_path):
    good = tmp_path / "good.keras"
    save_model(build_model("plain", (32, 32, 3), 4), good)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_model(bad)


def test_a_custom_layer_keras_cannot_find_is_named_with_the_way_round(tmp_path):
    """A model saved where its custom layer was defined, loaded where it is not (tfscissor's commands)."""
    import json

    save_model(build_model("plain", (32, 32, 3), 4), tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    layer = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "ReLU")
    layer.update(module="users_own_layers", class_name="Scale", registered_name="users_own>Scale")
    members["config.json"] = json.dumps(config)
    custom = tmp_path / "custom.keras"
    with zipfile.ZipFile(custom, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelError, match=r"it uses 'Scale', which Keras does not define.*register_keras_serializable"):
        load_model(custom)


def test_archive_with_damaged_member(tmp_path):
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("config.json", "{not json")
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(bad)


def test_lambda_layers_are_refused_by_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(path)


def test_a_json_part_that_expands_too_far_is_refused_before_loading(tmp_path):
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", " " * (33 * 2**20))  # 33 MB of spaces compress to about 30 KB
        archive.writestr("metadata.json", "{}")
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ModelError, match="declares a config.json of 34,603,008 bytes"):
        load_model(bomb)


def test_non_finite_weights_are_refused_and_nothing_is_written(tmp_path):
    model = build_model("plain", (16, 16, 3), 2, widths=(4,))
    weights = model.get_weights()
    weights[0][0, 0, 0, 0] = np.nan
    model.set_weights(weights)
    with pytest.raises(ModelError, match="non-finite values in .*training diverged; lower the learning rate"):
        save_model(model, tmp_path / "nan.keras")
    assert list(tmp_path.iterdir()) == []

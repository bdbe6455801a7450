"""The tflite and edgetpu targets: the directory, its manifest, the predicted mapping, the compiler boundary."""

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.compile.fake_edgetpu_compiler import MARKER
from tfscissor.cli import cli
from tfscissor.compile.bundle import write_edgetpu_bundle, write_tflite_bundle
from tfscissor.compile.edgetpu import MAPPED
from tfscissor.deploy.flatbuffer import read_model
from tfscissor.errors import ModelError, UsageError


@pytest.fixture
def no_compiler_on_path(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture(scope="module")
def cropper_int8():
    from tfscissor.models.cropper import build_cropper
    from tfscissor.quantize import quantize_int8

    images = np.random.default_rng(1).uniform(0, 255, (16, 16, 16, 3)).astype(np.float32)
    return quantize_int8(build_cropper((16, 16, 3), view=16, width=0.25, stages=2, seed=0), images, num_samples=16)


def _write_model(tmp_path, data, name="model.tflite"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_tflite_bundle_holds_the_models_and_describes_them(int8_model, cropper_int8, tmp_path):
    classifier = _write_model(tmp_path, int8_model("resnet"))
    bundle = write_tflite_bundle(classifier, tmp_path / "out", labels=["a", "b", "c"], cropper=cropper_int8)
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == bundle.manifest and manifest["format"] == "tfscissor.tflite/1"
    assert sorted(p.name for p in out.iterdir()) == manifest["files"]
    assert (out / "classifier.tflite").read_bytes() == classifier.read_bytes()
    assert (out / "cropper.tflite").read_bytes() == cropper_int8
    for entry in manifest["models"].values():
        data = (out / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        assert entry["input"]["shape"] == [1, 16, 16, 3] and entry["input"]["dtype"] == "int8"
    assert manifest["models"]["cropper"]["output"]["shape"] == [1, 4]
    assert manifest["labels"] == ["a", "b", "c"]
    assert manifest["crop_policy"] == {"scales": [0.25, 0.5, 0.75, 1.0], "margin": 1.0}


def test_a_float_model_is_refused_and_nothing_is_written(tmp_path):
    import keras

    from tfscissor.quantize.ptq import to_tflite

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))
    path = _write_model(tmp_path, to_tflite(model), "float.tflite")
    for write in (write_tflite_bundle, write_edgetpu_bundle):
        with pytest.raises(ModelError, match="float.tflite is not an int8( or uint8)? model .*tfscissor quantize"):
            write(path, tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_a_directory_tfscissor_did_not_write_is_not_replaced(int8_model, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not a tfscissor output"):
        write_tflite_bundle(int8_model("plain"), tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_a_crop_policy_without_a_cropper_is_refused(int8_model, tmp_path):
    from tfscissor.deploy.crop_policy import CropPolicy

    with pytest.raises(UsageError, match="crop policy needs a cropper"):
        write_tflite_bundle(int8_model("plain"), tmp_path / "out", policy=CropPolicy(margin=1.2))


@pytest.mark.usefixtures("no_compiler_on_path")
def test_edgetpu_without_the_compiler_writes_the_models_and_the_prediction(int8_model, tmp_path):
    bundle = write_edgetpu_bundle(int8_model("resnet"), tmp_path / "out")
    out = tmp_path / "out"
    assert "edgetpu_compiler is not on PATH" in bundle.missing and "apt-get install edgetpu-compiler" in bundle.missing
    assert sorted(p.name for p in out.iterdir()) == [
        "classifier.tflite",
        "edgetpu_analysis.json",
        "edgetpu_analysis.md",
        "manifest.json",
    ]
    predicted = json.loads((out / "edgetpu_analysis.json").read_text())["classifier"]
    assert predicted["mapped"] == predicted["operations"] > 0 and predicted["problems"] == []
    assert all(row["status"] == MAPPED for row in predicted["table"])
    assert "| CONV_2D |" in (out / "edgetpu_analysis.md").read_text()
    assert json.loads((out / "manifest.json").read_text())["edgetpu"]["compiler"] is None


def test_edgetpu_compiles_both_stages_in_one_call(int8_model, cropper_int8, fake_compiler, tmp_path):
    classifier = int8_model("resnet")
    bundle = write_edgetpu_bundle(classifier, tmp_path / "out", cropper=cropper_int8, compiler=fake_compiler.path)
    out = tmp_path / "out"
    [argv] = fake_compiler.calls()  # one call, the classifier first so that its parameters are cached first
    assert [a for a in argv if a.endswith(".tflite")] == ["classifier.tflite", "cropper.tflite"]
    assert (out / "classifier_edgetpu.tflite").read_bytes() == classifier + MARKER
    assert (out / "cropper_edgetpu.tflite").read_bytes() == cropper_int8 + MARKER
    assert "Total number of operations" in (out / "edgetpu_compiler.txt").read_text()
    compiled = json.loads((out / "manifest.json").read_text())["edgetpu"]["compiler"]
    assert compiled["version"] == "16.0.384591198"
    entry = compiled["models"]["classifier"]
    assert entry["on_chip_bytes"] == 1536 and entry["off_chip_bytes"] == 0
    expected = [{"operator": op, "count": n, "status": MAPPED} for op, n in read_model(classifier).op_counts.items()]
    assert entry["rows"] == expected
    assert bundle.missing == "" and set(bundle.compiled) == {"classifier", "cropper"}


def test_a_failing_compiler_leaves_nothing_behind(int8_model, fake_compiler, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EDGETPU_MODE", "fail")
    with pytest.raises(ModelError, match="edgetpu_compiler failed .*static-sized tensors"):
        write_edgetpu_bundle(int8_model("plain"), tmp_path / "out", compiler=fake_compiler.path)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary directory left


def invoke(*args):
    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


@pytest.mark.usefixtures("no_compiler_on_path")
def test_cli_edgetpu_without_the_compiler_prints_the_table_and_exits_1(int8_model, tmp_path):
    model = _write_model(tmp_path, int8_model("mobilenetv2"))
    result = invoke("compile", model, "--target", "edgetpu", "-o", tmp_path / "tpu")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("classifier: ") and "operations on the Edge TPU (predicted)" in lines[0]
    assert lines[-1].startswith("Error: wrote ") and "edgetpu_compiler is not on PATH" in lines[-1]
    assert "--compiler PATH" in lines[-1] and "Traceback" not in result.output
    assert (tmp_path / "tpu" / "edgetpu_analysis.md").is_file()
    assert not list((tmp_path / "tpu").glob("*_edgetpu.tflite"))


def test_cli_edgetpu_with_a_compiler_prints_what_it_mapped(int8_model, fake_compiler, tmp_path):
    model = _write_model(tmp_path, int8_model("plain"))
    ops = len(read_model(int8_model("plain")).ops)
    result = invoke("compile", model, "--target", "edgetpu", "--compiler", fake_compiler.path, "-o", tmp_path / "tpu")
    assert result.exit_code == 0, result.output
    assert f"classifier: {ops} of {ops} operations on the Edge TPU (compiled)" in result.output
    assert "on-chip parameter cache 1,536 bytes" in result.output


def test_cli_tflite_target_and_option_mistakes(int8_model, tmp_path):
    model = _write_model(tmp_path, int8_model("plain"))
    result = invoke("compile", model, "--target", "tflite", "--labels", "x,y,z", "-o", tmp_path / "lite")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "lite" / "manifest.json").read_text())["labels"] == ["x", "y", "z"]
    result = invoke("compile", model, "--target", "tflite", "--compiler", "/bin/true", "-o", tmp_path / "x")
    assert result.exit_code == 2 and "--compiler is for --target edgetpu" in result.output
    result = invoke("compile", model, "--target", "edgetpu", "--compiler", tmp_path / "nope", "-o", tmp_path / "x")
    assert result.exit_code == 2 and "is not an executable file" in result.output
    assert not (tmp_path / "x").exists()

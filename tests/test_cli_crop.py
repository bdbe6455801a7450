"""The crop commands through click's CliRunner, as a user chains them, and every bad input they must refuse.

train -> crop train -> crop eval -> crop finetune -> quantize --cropper -> crop eval (.tflite) ->
compile --cropper -> bench --cropper, run once for the module.
"""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tfscissor.cli import cli

DATA = "cluttered:size=32,n=400,classes=3,seed=2"
VAL_IMAGES = 80  # n=400 with the default val=0.2
# The cropper is sized against the classifier at 16 px (--resolution 16, where crop finetune moves it): at most
# 10% of its MACs there and half its int8 bytes. widths=[16,32] gives a classifier of about 10 kB, half of which
# no cropper fits (the smallest needs 14 kB): --classifier would then be refused. [16,32,64] is about 31 kB.
CLASSIFIER_ARGS = ("--model", "plain", "--arg", "widths=[16,32,64]")


def invoke(*args):
    return CliRunner().invoke(cli, ["--quiet", *map(str, args)])


def _macs(path):
    return json.loads(invoke("info", path, "--json").output)["macs"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The two-stage path a user takes, each command run once; later steps use earlier steps' files."""
    d = tmp_path_factory.mktemp("cli_crop")
    steps, snapshots = {}, {}
    steps["train"] = invoke("train", "--data", DATA, *CLASSIFIER_ARGS, "--epochs", "2", "-o", d / "m.keras")
    steps["crop_train"] = invoke(
        "crop",
        "train",
        "--data",
        DATA,
        "--classifier",
        d / "m.keras",
        "--resolution",
        "16",
        "--epochs",
        "2",
        "-o",
        d / "c.keras",
    )
    # CAM labels with a fixed small architecture (fewer layers: quicker to trace), cached in a tmp dir.
    steps["crop_train_cam"] = invoke(
        "crop",
        "train",
        "--data",
        DATA,
        "--labels",
        "cam",
        "--classifier",
        d / "m.keras",
        "--blocks",
        "1",
        "--view",
        "16",
        "--width",
        "0.25",
        "--epochs",
        "1",
        "--cache-dir",
        d / "cache",
        "-o",
        d / "cam.keras",
    )
    snapshots["cache"] = {p.name: p.stat().st_mtime_ns for p in (d / "cache").glob("cam-*.npy")}
    steps["crop_eval"] = invoke(
        "crop", "eval", "--cropper", d / "c.keras", "--classifier", d / "m.keras", "--data", DATA, "--resolution", "16"
    )
    steps["crop_eval_json"] = invoke(
        "crop",
        "eval",
        "--cropper",
        d / "c.keras",
        "--classifier",
        d / "m.keras",
        "--data",
        DATA,
        "--resolution",
        "16",
        "--json",
    )
    snapshots["m.keras"] = (d / "m.keras").read_bytes()
    # The same CAM labels again (same classifier, same images): the second run reads the cache.
    steps["crop_finetune"] = invoke(
        "crop",
        "finetune",
        "--cropper",
        d / "c.keras",
        "--classifier",
        d / "m.keras",
        "--data",
        DATA,
        "--resolution",
        "16",
        "--labels",
        "cam",
        "--cache-dir",
        d / "cache",
        "--epochs",
        "1",
        "-o",
        d / "m16.keras",
    )
    steps["quantize"] = invoke(
        "quantize",
        d / "m16.keras",
        "--cropper",
        d / "c.keras",
        "--data",
        DATA,
        "--samples",
        "50",
        "-o",
        d / "m16.tflite",
    )
    steps["crop_eval_tflite"] = invoke(
        "crop",
        "eval",
        "--cropper",
        d / "m16.cropper.tflite",
        "--classifier",
        d / "m16.tflite",
        "--data",
        DATA,
        "--json",
    )
    steps["compile"] = invoke(
        "compile", d / "m16.tflite", "--cropper", d / "m16.cropper.tflite", "--target", "tflm", "-o", d / "fw"
    )
    steps["bench"] = invoke(
        "bench", d / "m16.tflite", "--cropper", d / "m16.cropper.tflite", "--runs", "5", "--warmup", "1", "--json"
    )
    return d, steps, snapshots


@pytest.mark.slow
@pytest.mark.parametrize(
    "step",
    [
        "train",
        "crop_train",
        "crop_train_cam",
        "crop_eval",
        "crop_eval_json",
        "crop_finetune",
        "quantize",
        "crop_eval_tflite",
        "compile",
        "bench",
    ],
)
def test_chain_step_succeeds(chain, step):
    _, steps, _ = chain
    assert steps[step].exit_code == 0, steps[step].output
    assert "Traceback" not in steps[step].output


def _resized_macs(path, side):
    from tfscissor.analysis import profile_model
    from tfscissor.models import load_model
    from tfscissor.models.graph import with_input_size

    return profile_model(with_input_size(load_model(path), side)).macs


def _estimated_bytes(path):
    from tfscissor.crop.sizing import estimated_int8_bytes
    from tfscissor.models import load_model

    return estimated_int8_bytes(load_model(path))


@pytest.mark.slow
def test_crop_train_prints_the_cropper_share_of_the_classifier(chain):
    d, steps, _ = chain
    output = steps["crop_train"].output
    found = re.search(
        r"^cropper: ([\d,]+) MACs \(([\d.]+)% of the classifier's at 16 px\), ([\d,]+) int8 bytes \(estimated\) "
        r"\(([\d.]+)% of the classifier's\), trained on boxes labels$",
        output,
        re.M,
    )
    assert found, output
    macs, size = int(found[1].replace(",", "")), int(found[3].replace(",", ""))
    assert float(found[2]) <= 10.0 and float(found[4]) <= 50.0  # the default budget
    assert macs == _macs(d / "c.keras") and size == _estimated_bytes(d / "c.keras")
    classifier_macs, classifier_bytes = _resized_macs(d / "m.keras", 16), _estimated_bytes(d / "m.keras")
    assert f"{macs / classifier_macs:.1%}" == f"{found[2]}%"
    assert f"{size / classifier_bytes:.1%}" == f"{found[4]}%"
    # One line says what it was sized against: the classifier as it will run, at --resolution.
    assert (
        f"sized against the classifier at 16 px: at most {0.1 * classifier_macs:,.0f} MACs (10% of its "
        f"{classifier_macs:,}) and {0.5 * classifier_bytes:,.0f} int8 bytes (50% of its {classifier_bytes:,}, "
        "estimated)"
    ) in output
    assert re.search(r"^val boxes against the labels: mean IoU [\d.]+, ", output, re.M), output
    assert f"saved {d / 'c.keras'}" in output


@pytest.mark.parametrize("gain", [0.02, 0.001, None])
def test_crop_train_says_when_the_box_was_still_improving(tmp_path, monkeypatch, gain):
    import importlib

    from tfscissor.crop.stage import CropperResult
    from tfscissor.crop.training import STILL_IMPROVING
    from tfscissor.models.cropper import build_cropper

    def trained(dataset, **kwargs):  # the stage's result, with the gain under test: no training needed here
        report = {"labels": "boxes", "macs": 1, "bytes": 1, "sized": "default", "late_iou_gain": gain}
        report["val"] = {"boxes": 80, "degenerate": 0, "mean_iou": 0.7, "iou_above_0_5": 0.9}
        return CropperResult(build_cropper((32, 32, 3), view=16, width=0.25, blocks=1), None, {}, report)

    # The module, not the click group of the same name that tfscissor.cli exports.
    monkeypatch.setattr(importlib.import_module("tfscissor.cli.crop"), "train_cropper_stage", trained)
    result = invoke("crop", "train", "--data", DATA, "--epochs", "7", "-o", tmp_path / "c.keras")
    assert result.exit_code == 0, result.output
    hint = (
        f"the box was still improving when training ended (val IoU {gain or 0:+.3f} over the last 5 epochs): "
        "more --epochs than 7 may box better"
    )
    shown = gain is not None and gain >= STILL_IMPROVING  # None: one epoch, nothing to judge by
    assert ("still improving" in result.output) == shown, result.output
    if shown:
        assert hint in result.output


@pytest.mark.slow
def test_crop_train_with_a_fixed_architecture_says_so(chain):
    _, steps, _ = chain
    output = steps["crop_train_cam"].output  # --blocks, --view and --width given
    assert re.search(r"^cropper: [\d,]+ MACs \([\d.]+% of the classifier's at 32 px\), ", output, re.M), output
    assert "sized by --view/--width/--blocks, not against the classifier" in output


@pytest.mark.slow
def test_crop_train_with_cam_labels_compares_them_to_the_true_boxes(chain):
    _, steps, _ = chain
    output = steps["crop_train_cam"].output
    assert "trained on cam labels" in output
    assert re.search(r"^CAM labels against the true boxes: mean IoU [\d.]+, [\d.]+% above 0\.5, ", output, re.M), output
    assert re.search(r"^val boxes against the true boxes: mean IoU ", output, re.M), output


@pytest.mark.slow
def test_cam_boxes_are_cached_and_reused(chain):
    d, _, snapshots = chain
    first = snapshots["cache"]
    assert len(first) == 2, first  # one file for the train split, one for val
    # crop finetune --labels cam asked for the same boxes: read back, neither recomputed nor rewritten.
    after = {p.name: p.stat().st_mtime_ns for p in (d / "cache").glob("cam-*.npy")}
    assert after == first
    for name in first:
        boxes = np.load(d / "cache" / name)
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and boxes.shape[0] in (VAL_IMAGES, 400 - VAL_IMAGES)


@pytest.mark.slow
def test_crop_eval_json(chain):
    d, steps, _ = chain
    output = steps["crop_eval_json"].output
    assert len(output.strip().splitlines()) == 1, output
    report = json.loads(output)
    assert 0.0 <= report["accuracy"] <= 1.0
    assert report["samples"] == VAL_IMAGES and report["resolution"] == 16
    assert isinstance(report["fallbacks"], int) and 0 <= report["fallbacks"] <= VAL_IMAGES
    assert 0.0 <= report["boxes"]["mean_iou"] <= 1.0 and report["boxes"]["boxes"] == VAL_IMAGES
    macs = report["macs"]
    assert macs["total"] == macs["cropper"] + macs["classifier"]
    assert macs["cropper"] == _macs(d / "c.keras")
    assert macs["classifier"] == _macs(d / "m16.keras")  # the classifier moved to 16 px: same layers
    assert report["cropper"] == str(d / "c.keras") and report["classifier"] == str(d / "m.keras")


@pytest.mark.slow
def test_crop_eval_text_matches_the_json(chain):
    _, steps, _ = chain
    report = json.loads(steps["crop_eval_json"].output)
    lines = steps["crop_eval"].output.strip().splitlines()
    assert lines[0].startswith(f"crop-then-classify: accuracy {report['accuracy']:.4f} on {VAL_IMAGES} images at 16 px")
    assert lines[0].endswith(f"{report['fallbacks']} whole-image fallbacks")
    assert lines[1].strip().startswith("boxes: mean IoU")
    assert lines[2].strip().startswith(f"MACs: cropper {report['macs']['cropper']:,} + classifier")


@pytest.mark.slow
def test_crop_finetune_writes_a_16px_model_and_leaves_the_input_alone(chain):
    d, steps, snapshots = chain
    output = steps["crop_finetune"].output
    assert re.search(r"crop-then-classify at 16 px: accuracy [\d.]+ before, [\d.]+ after", output), output
    assert (d / "m.keras").read_bytes() == snapshots["m.keras"]
    info = json.loads(invoke("info", d / "m16.keras", "--json").output)
    assert info["layers"][0]["output_shape"] == [16, 16, 3]
    original = json.loads(invoke("info", d / "m.keras", "--json").output)
    assert original["layers"][0]["output_shape"] == [32, 32, 3] and info["params"] == original["params"]


@pytest.mark.slow
def test_quantize_with_a_cropper_writes_both_models(chain):
    d, steps, _ = chain
    output = steps["quantize"].output
    assert (d / "m16.tflite").is_file() and (d / "m16.cropper.tflite").is_file()
    assert re.search(r"^float crop-then-classify: accuracy [\d.]+ on 80 images at 16 px; ", output, re.M), output
    assert re.search(r"^int8 crop-then-classify \(LiteRT\): accuracy [\d.]+ on 80 images at 16 px; ", output, re.M)
    assert f"saved {d / 'm16.tflite'}" in output and str(d / "m16.cropper.tflite") in output
    for name in ("m16.tflite", "m16.cropper.tflite"):
        assert json.loads(invoke("info", d / name, "--json").output)["fully_int8"] is True


@pytest.mark.slow
def test_crop_eval_on_the_tflite_pair_agrees_with_quantize(chain):
    d, steps, _ = chain
    output = steps["crop_eval_tflite"].output
    assert len(output.strip().splitlines()) == 1, output
    report = json.loads(output)
    assert report["resolution"] == 16 and report["samples"] == VAL_IMAGES
    assert "macs" not in report  # not profiled for .tflite models
    assert 0.0 <= report["boxes"]["mean_iou"] <= 1.0 and report["fallbacks"] >= 0
    int8 = re.search(r"^int8 crop-then-classify \(LiteRT\): accuracy ([\d.]+)", steps["quantize"].output, re.M)
    assert f"{report['accuracy']:.4f}" == int8[1]  # the same deployed pipeline on the same images


@pytest.mark.slow
def test_compile_with_a_cropper_writes_one_two_stage_project(chain):
    from tfscissor.crop import TwoStage
    from tfscissor.deploy import CropPolicy
    from tfscissor.deploy.litert import TFLiteModel, dequantize

    d, steps, _ = chain
    fw = d / "fw"
    manifest = json.loads((fw / "manifest.json").read_text())
    assert (fw / "cropper.tflite").read_bytes() == (d / "m16.cropper.tflite").read_bytes()
    assert manifest["labels"] == ["0", "1", "2"] and manifest["crop_policy"] == CropPolicy().to_dict()
    assert manifest["cropper"]["output"]["shape"] == [1, 4]
    # The firmware's known-good box (TFLM) is LiteRT's within a step, and its window is the one the Python
    # pipeline cuts for that box.
    cropper = TFLiteModel.load(d / "m16.cropper.tflite")
    pipeline = TwoStage(cropper, TFLiteModel.load(d / "m16.tflite"))
    image = _c_values(fw / "sample_data.cc", "g_sample_image").reshape(pipeline.image_shape).astype(np.uint8)
    box = np.array(manifest["sample"]["box"])
    assert np.abs(cropper.invoke(cropper.quantize_input(image)[None])[0] - box).max() <= 1
    crops, _ = pipeline.crops(image[None], dequantize(box, *cropper.output_quantization)[None])
    assert manifest["sample"]["window"] == crops.windows[0].tolist()
    lines = steps["compile"].output.strip().splitlines()
    assert lines[0].startswith(f"wrote {fw}: ")
    assert lines[1].startswith("  cropper: arena ") and lines[2].startswith("  classifier: arena ")


def _c_values(path, symbol):
    """The integers of C array ``symbol`` in a generated source file."""
    text = path.read_text()
    body = text[text.index(symbol) :]
    body = body[body.index("{") + 1 : body.index("}")]
    return np.array([int(v) for v in body.replace(",", " ").split()])


@pytest.mark.slow
def test_bench_with_a_cropper_times_each_stage(chain):
    _, steps, _ = chain
    output = steps["bench"].output
    assert len(output.strip().splitlines()) == 1, output
    result = json.loads(output)
    cropper, crop, classifier = (result["stages"][name] for name in ("cropper", "crop", "classifier"))
    assert cropper["median_ms"] > 0 and classifier["median_ms"] > 0 and crop["median_ms"] > 0
    assert cropper["runs"] == crop["runs"] == classifier["runs"] == result["runs"] == 5
    assert result["total"]["median_ms"] == pytest.approx(
        cropper["median_ms"] + crop["median_ms"] + classifier["median_ms"]
    )
    assert cropper["input_shape"] == [1, 32, 32, 3] and classifier["input_shape"] == [1, 16, 16, 3]
    assert crop["output_shape"] == [1, 16, 16, 3]
    assert result["total"]["model_bytes"] == cropper["model_bytes"] + classifier["model_bytes"]


# -- degenerate boxes fall back to the whole image --------------------------------------------------------


def _constant_cropper(path, bias, channels=3):
    """A box model whose output is ``bias`` whatever the image: zero kernel, linear activation."""
    import keras

    inputs = keras.Input((32, 32, channels))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    box = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="zeros", name="box")(x)
    model = keras.Model(inputs, box, name="constant_cropper")
    model.get_layer("box").bias.assign(np.asarray(bias, np.float32))
    model.save(path)
    return path


@pytest.fixture(scope="module")
def plain_accuracy(chain):
    """The classifier's accuracy on the whole val images, by plain ``eval``."""
    d, _, _ = chain
    result = invoke("eval", d / "m.keras", "--data", DATA, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["accuracy"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "bias",
    [(0.0, 0.0, 0.0, 0.0), (np.nan, np.nan, np.nan, np.nan), (0.8, 0.2, 0.2, 0.8)],
    ids=["zero-area", "nan", "inverted"],
)
def test_degenerate_boxes_fall_back_to_the_whole_image(chain, plain_accuracy, tmp_path, bias):
    d, _, _ = chain
    cropper = _constant_cropper(tmp_path / "const.keras", bias)
    result = invoke("crop", "eval", "--cropper", cropper, "--classifier", d / "m.keras", "--data", DATA, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["fallbacks"] == VAL_IMAGES and report["boxes"]["degenerate"] == VAL_IMAGES
    assert report["boxes"]["mean_iou"] == 0.0
    # Each fallback is the whole image at the classifier's own size: exactly what plain eval classifies.
    assert report["accuracy"] == pytest.approx(plain_accuracy)


# -- bad input: one line naming the thing and the fix, no traceback, nothing written ----------------------


def _assert_clean_error(result, *words, code=None):
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow
def test_cropper_and_classifier_with_different_channels(chain, tmp_path):
    d, _, _ = chain
    grey = _constant_cropper(tmp_path / "grey.keras", (0.25, 0.25, 0.75, 0.75), channels=1)
    _assert_clean_error(
        invoke("crop", "eval", "--cropper", grey, "--classifier", d / "m.keras", "--data", DATA),
        "grey.keras",
        "m.keras",
        "needs square crops",
        "channels",
    )


@pytest.mark.slow
def test_data_the_cropper_was_not_trained_for(chain):
    d, _, _ = chain
    # The data is resized to the cropper's image size (a 48-px spec would be accepted), but not recoloured.
    _assert_clean_error(
        invoke(
            "crop",
            "eval",
            "--cropper",
            d / "c.keras",
            "--classifier",
            d / "m.keras",
            "--data",
            "cluttered:size=32,n=60,classes=3,seed=2,channels=1",
        ),
        "cropper",
        "(32, 32, 3)",
        "use the data the cropper was trained on",
    )


@pytest.mark.slow
def test_resolution_on_a_tflite_classifier(chain):
    d, _, _ = chain
    _assert_clean_error(
        invoke(
            "crop",
            "eval",
            "--cropper",
            d / "m16.cropper.tflite",
            "--classifier",
            d / "m16.tflite",
            "--data",
            DATA,
            "--resolution",
            "24",
        ),
        "m16.tflite",
        "fixed at 16 px",
        "drop --resolution",
        code=2,
    )


@pytest.mark.slow
def test_a_cropper_that_is_not_a_box_model(chain):
    d, _, _ = chain
    _assert_clean_error(
        invoke("crop", "eval", "--cropper", d / "m.keras", "--classifier", d / "m.keras", "--data", DATA),
        "m.keras",
        "3 outputs",
        "not a box",
        "tfscissor crop train",
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "scales, words",
    [
        ("0,2", ("--scales 0,2", "crop scales", "(0, 1]", "0.25,0.5,0.75,1.0")),
        ("abc", ("--scales 'abc'", "0.25,0.5,0.75,1.0")),
    ],
)
def test_bad_scales(chain, scales, words):
    d, _, _ = chain
    result = invoke(
        "crop", "eval", "--cropper", d / "c.keras", "--classifier", d / "m.keras", "--data", DATA, "--scales", scales
    )
    _assert_clean_error(result, *words, code=2)


@pytest.fixture
def copies(chain, tmp_path):
    """The chain's models copied to tmp_path, so a command that wrongly wrote over its inputs spoils no other test."""
    d, _, _ = chain
    for name in ("c.keras", "m16.keras", "m16.tflite", "m16.cropper.tflite"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize(
    "cropper, output, extra, words",
    [
        ("m16.cropper.tflite", "m16.cropper.tflite", (), ("also an input",)),
        # The default cropper output (OUTPUT with .cropper.tflite) would overwrite the given cropper.
        ("m16.cropper.tflite", "m16.tflite", (), ("m16.cropper.tflite", "also an input")),
        ("c.keras", "q.tflite", ("--cropper-output", "q.tflite"), ("--cropper-output", "other than")),
        ("c.keras", "q.tflite", ("--cropper-output", "m16.keras"), ("--cropper-output", "m16.keras")),
    ],
    ids=["output-is-cropper", "default-cropper-output-is-cropper", "cropper-output-is-output", "cropper-output-keras"],
)
def test_quantize_with_a_cropper_never_overwrites_an_input(copies, cropper, output, extra, words):
    before = {p.name: p.read_bytes() for p in copies.iterdir()}
    extra = tuple(copies / e if e.endswith((".tflite", ".keras")) else e for e in extra)
    result = invoke(
        "quantize", copies / "m16.keras", "--cropper", copies / cropper, "--data", DATA, *extra, "-o", copies / output
    )
    _assert_clean_error(result, *words, code=2)
    assert {p.name: p.read_bytes() for p in copies.iterdir()} == before


@pytest.mark.slow
def test_crop_finetune_needs_a_keras_cropper(copies):
    out = copies / "f.keras"
    _assert_clean_error(
        invoke(
            "crop",
            "finetune",
            "--cropper",
            copies / "m16.cropper.tflite",
            "--classifier",
            copies / "m16.keras",
            "--data",
            DATA,
            "--resolution",
            "16",
            "-o",
            out,
        ),
        "cropper",
        "m16.cropper.tflite",
        ".keras",
        code=2,
    )
    assert not out.exists()


def test_cam_labels_need_a_classifier(tmp_path):
    out = tmp_path / "c.keras"
    _assert_clean_error(
        invoke("crop", "train", "--data", DATA, "--labels", "cam", "--epochs", "1", "-o", out),
        "CAM",
        "--classifier",
        code=2,
    )
    assert not out.exists()


def test_crop_train_resolution_needs_a_classifier(tmp_path):
    out = tmp_path / "c.keras"
    _assert_clean_error(
        invoke("crop", "train", "--data", DATA, "--resolution", "16", "--epochs", "1", "-o", out),
        "16 px",
        "--classifier",
        code=2,
    )
    assert not out.exists()


# -- image folders and their boxes.csv --------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    """PATH/<class>/*.png: three classes of four 32x32 RGB images, no boxes.csv."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for cls in ("a", "b", "c"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def _rows(root):
    return [f"{p.relative_to(root).as_posix()},0.1,0.2,0.6,0.7" for p in sorted(root.glob("*/*.png"))]


def _write_boxes(root, rows):
    (root / "boxes.csv").write_text("\n".join(["path,xmin,ymin,xmax,ymax", *rows]) + "\n", encoding="utf-8")


def test_labels_boxes_on_a_folder_without_boxes(folder, tmp_path):
    out = tmp_path / "c.keras"
    _assert_clean_error(
        invoke("crop", "train", "--data", f"folder:{folder}", "--labels", "boxes", "--epochs", "1", "-o", out),
        str(folder),
        "has no boxes",
        "boxes.csv",
        "--labels cam",
    )
    assert not out.exists()


@pytest.mark.slow
def test_a_folder_with_a_good_boxes_csv_is_evaluated_against_its_boxes(chain, folder):
    d, _, _ = chain
    _write_boxes(folder, _rows(folder))
    result = invoke(
        "crop",
        "eval",
        "--cropper",
        d / "c.keras",
        "--classifier",
        d / "m.keras",
        "--data",
        f"folder:{folder}",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert "mean_iou" in report["boxes"] and report["samples"] > 0


def _bad_row(root, rows, kind):
    """``rows`` with one made bad; returns (rows, the bad row's line in boxes.csv, words the error names)."""
    if kind == "missing":
        return rows[:-1], None, (rows[-1].split(",")[0], "have no row")
    index = 4  # line 6 of the file: the header is line 1
    path = rows[index].split(",")[0]
    bad = {
        "inverted": (f"{path},0.7,0.2,0.3,0.7", "need xmin < xmax"),
        "outside": (f"{path},0.1,0.2,1.5,0.7", "outside [0, 1]"),
        "unknown": ("z/nope.png,0.1,0.2,0.6,0.7", "'z/nope.png' is not an image of the folder"),
    }[kind]
    return [*rows[:index], bad[0], *rows[index + 1 :]], index + 2, (bad[1],)


@pytest.mark.parametrize("kind", ["inverted", "outside", "unknown", "missing"])
def test_bad_boxes_csv_names_the_file_and_line(folder, tmp_path, kind):
    rows, line, words = _bad_row(folder, _rows(folder), kind)
    _write_boxes(folder, rows)
    out = tmp_path / "c.keras"
    message = _assert_clean_error(
        invoke("crop", "train", "--data", f"folder:{folder}", "--labels", "boxes", "--epochs", "1", "-o", out),
        str(folder / "boxes.csv"),
        *words,
        code=1,
    )
    if line is not None:
        assert f"boxes.csv line {line}:" in message
    assert not out.exists()


@pytest.mark.slow
def test_compile_and_bench_refuse_a_classifier_given_as_the_cropper(chain):
    d, _, _ = chain
    _assert_clean_error(
        invoke("compile", d / "m16.tflite", "--cropper", d / "m16.tflite", "--target", "tflm", "-o", d / "fw_wrong"),
        "m16.tflite",
        "not a box",
    )
    assert not (d / "fw_wrong").exists()
    _assert_clean_error(invoke("bench", d / "m16.tflite", "--cropper", d / "m16.tflite", "--runs", "2"), "not a box")


@pytest.mark.slow
def test_cropper_output_without_a_cropper_is_refused(chain):
    d, _, _ = chain
    _assert_clean_error(
        invoke("quantize", d / "m16.keras", "--data", DATA, "--cropper-output", d / "x.tflite", "-o", d / "y.tflite"),
        "--cropper-output needs --cropper",
        code=2,
    )
    assert not (d / "y.tflite").exists()

"""The two-stage firmware project: a cropper, the crop policy in plain C and a classifier in one project.

The known-good sample is checked against independent runs of each stage (LiteRT, TFLM), the generated settings
against the models, and the glue is built and run against the stand-in TFLM tree of ``fake_tflm.py``.
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.compile.conftest import WHOLE_IMAGE_SHAPE
from tests.compile.fake_tflm import write_fake_tflm
from tests.compile.helpers import litert_run, square_image
from tfscissor.compile import write_tflm_project
from tfscissor.compile.boards import RUNTIME_FLASH, RUNTIME_RAM
from tfscissor.compile.tflm import quantization_table
from tfscissor.deploy import CropPolicy, read_model
from tfscissor.deploy._probe import Prober
from tfscissor.deploy.litert import dequantize
from tfscissor.errors import ModelError, UsageError

LABELS = ["a", "b", "c"]
POLICY = CropPolicy(scales=(0.5, 0.75), margin=1.25)


@pytest.fixture(scope="module")
def project(int8_model, whole_image_cropper, tmp_path_factory):
    out = tmp_path_factory.mktemp("two_stage") / "fw"
    # A sample image with a bright square, so that the cropper's box is whatever it makes of it.
    image = square_image(WHOLE_IMAGE_SHAPE)
    return write_tflm_project(
        int8_model("mobilenetv2"),
        out,
        labels=LABELS,
        name="pipe",
        cropper=whole_image_cropper,
        policy=POLICY,
        sample_image=image,
    )


def _c_values(text, symbol):
    body = re.search(rf"{symbol}\[[^\]]*\] = \{{(.*?)\}};", text, re.S).group(1)
    return np.array([int(token, 0) for token in re.findall(r"-?0x[0-9a-f]+|-?\d+(?:\.\d+)?", body) if "." not in token])


def _constant(text, name):
    return re.search(rf"constexpr \w+ {name} = ([^;]+);", text).group(1)


def test_one_project_holds_both_models_as_their_exact_bytes(project, int8_model, whole_image_cropper):
    assert project.file("cropper.tflite").read_bytes() == whole_image_cropper
    assert project.file("model.tflite").read_bytes() == int8_model("mobilenetv2")
    cropper_array = _c_values(project.file("cropper_data.cc").read_text(), "g_pipe_cropper")
    assert bytes(cropper_array.astype(np.uint8)) == whole_image_cropper
    assert "alignas(16) const unsigned char g_pipe_cropper[]" in project.file("cropper_data.cc").read_text()
    assert not project.file("cropper").exists()  # no second project: one firmware runs both
    for name in ("crop_policy.c", "crop_policy.h", "cropper_data.h", "main_functions.cc", "model_test.cc"):
        assert name in project.files and project.file(name).is_file()


def test_resolver_registers_the_ops_of_both_models_once(project, int8_model, whole_image_cropper):
    ops = set(read_model(int8_model("mobilenetv2")).op_counts) | set(read_model(whole_image_cropper).op_counts)
    header = project.file("op_resolver.h").read_text()
    assert _constant(header, "kOpCount") == str(len(ops)) and set(project.ops) == ops
    assert len(re.findall(r"resolver\.Add\w+\(\)", header)) == len(ops)
    assert set(read_model(whole_image_cropper).op_counts) - set(read_model(int8_model("mobilenetv2")).op_counts)


def test_settings_describe_both_models_and_the_policy(project, int8_model, whole_image_cropper):
    settings = project.file("model_settings.h").read_text()
    cropper, classifier = read_model(whole_image_cropper), read_model(int8_model("mobilenetv2"))
    assert (_constant(settings, "kImageRows"), _constant(settings, "kImageCols")) == ("24", "32")
    assert (_constant(settings, "kNumRows"), _constant(settings, "kNumChannels")) == ("16", "3")
    assert float(_constant(settings, "kCropperOutputScale").rstrip("f")) == pytest.approx(
        cropper.output.quantization[0], rel=1e-7
    )
    assert int(_constant(settings, "kCropperOutputZeroPoint")) == cropper.output.quantization[1]
    assert _constant(settings, "kCropScaleCount") == "2" and _constant(settings, "kCropMargin") == "1.25"
    assert int(_constant(settings, "kCropperArenaSize")) == project.cropper.arena_bytes
    assert int(_constant(settings, "kTensorArenaSize")) == project.arena_bytes
    source = project.file("model_settings.cc").read_text()
    assert "kCropScales[] = {0.5, 0.75};" in source
    for symbol, model in (("kCropperInputTable", cropper), ("kInputTable", classifier)):
        table = _c_values(source, symbol)
        np.testing.assert_array_equal(table, quantization_table(model.input.quantization))


def test_sample_is_what_each_stage_computes(project, int8_model, whole_image_cropper):
    manifest = json.loads(project.file("manifest.json").read_text())
    sample = manifest["sample"]
    image = _c_values(project.file("sample_data.cc").read_text(), "g_sample_image").astype(np.uint8)
    image = image.reshape(WHOLE_IMAGE_SHAPE)
    cropper, classifier = read_model(whole_image_cropper), read_model(int8_model("mobilenetv2"))
    # Stage 1: LiteRT's box for the quantised image is TFLM's within one step.
    box = litert_run(whole_image_cropper, quantization_table(cropper.input.quantization)[image][None])[0]
    assert np.abs(box.astype(int) - sample["box"]).max() <= 1
    # Stage 2: the window is the Python policy's for the known-good box.
    crops = POLICY.crop(image[None], dequantize(sample["box"], *cropper.output.quantization)[None], 16)
    assert sample["window"] == crops.windows[0].tolist() and sample["fallback"] == bool(crops.fallbacks[0])
    # Stage 3: LiteRT's scores for that crop are TFLM's within one step.
    scores = litert_run(int8_model("mobilenetv2"), quantization_table(classifier.input.quantization)[crops.images])
    assert np.abs(scores[0].astype(int) - sample["output"]).max() <= 1
    assert f"{{{', '.join(map(str, sample['box']))}}}" in project.file("sample_data.cc").read_text()


def test_each_arena_runs_its_model_and_ten_percent_less_does_not(project, int8_model, whole_image_cropper):
    for data, part in ((whole_image_cropper, project.cropper), (int8_model("mobilenetv2"), project)):
        tensor = np.zeros(read_model(data).input.shape, np.int8).tobytes()
        with Prober(data, tensor) as prober:
            assert prober.probe(part.measured_arena_bytes) is not None
            assert prober.probe(int(part.measured_arena_bytes * 0.9)) is None


def test_manifest_describes_the_pipeline(project):
    manifest = json.loads(project.file("manifest.json").read_text())
    assert manifest["crop_policy"] == POLICY.to_dict()
    assert manifest["cropper"]["model"]["file"] == "cropper.tflite"
    assert manifest["cropper"]["arena"]["bytes"] == project.cropper.arena_bytes
    assert manifest["buffers"] == {"image_bytes": 24 * 32 * 3, "crop_line_bytes": 4 * 32 * 3}
    assert sorted(manifest["files"]) == sorted(project.files)


def test_scales_none_writes_an_unread_placeholder(int8_model, whole_image_cropper, tmp_path):
    project = write_tflm_project(
        int8_model("plain"), tmp_path / "fw", cropper=whole_image_cropper, policy=CropPolicy(scales=None)
    )
    assert _constant(project.file("model_settings.h").read_text(), "kCropScaleCount") == "0"
    assert "kCropScales[] = {0.0};" in project.file("model_settings.cc").read_text()


def test_board_fit_counts_both_models_and_both_arenas(int8_model, whole_image_cropper, tmp_path):
    project = write_tflm_project(int8_model("plain"), tmp_path / "fw", cropper=whole_image_cropper, board="rp2040")
    assert project.fit.flash == RUNTIME_FLASH + project.model_bytes + project.cropper.model_bytes
    buffers = 24 * 32 * 3 + 4 * 32 * 3  # the whole image and one crop line of 32-bit sums
    assert project.buffer_bytes == buffers
    assert project.fit.ram == RUNTIME_RAM + project.arena_bytes + project.cropper.arena_bytes + buffers


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"policy": CropPolicy()}, UsageError, "a crop policy needs a cropper"),
        ({"cropper": "cropper", "policy": {"margin": 1.2}}, UsageError, "policy must be a tfscissor.deploy.CropPolicy"),
        ({"cropper": "classifier"}, ModelError, "not a box"),
        ({"cropper": "cropper", "sample_image": np.zeros((16, 16, 3))}, UsageError, "the cropper takes"),
    ],
)
def test_bad_two_stage_input_writes_nothing(int8_model, whole_image_cropper, tmp_path, kwargs, error, match):
    models = {"classifier": int8_model("plain"), "cropper": whole_image_cropper}
    kwargs = {key: models.get(value, value) if isinstance(value, str) else value for key, value in kwargs.items()}
    with pytest.raises(error, match=match):
        write_tflm_project(int8_model("plain"), tmp_path / "fw", **kwargs)
    assert not (tmp_path / "fw").exists()


def test_a_classifier_for_other_channels_is_refused(int8_model, tmp_path):
    from tfscissor.models.cropper import build_cropper
    from tfscissor.quantize import quantize_int8

    images = np.random.default_rng(0).uniform(0, 255, (8, 24, 32, 1)).astype(np.float32)
    grey = quantize_int8(build_cropper((24, 32, 1), view=24, width=0.25, stages=2, seed=0), images, num_samples=8)
    with pytest.raises(ModelError, match="square crops with the cropper's 1 channels"):
        write_tflm_project(int8_model("plain"), tmp_path / "fw", cropper=grey)
    assert not (tmp_path / "fw").exists()


# ------------------------------------------------------------------------------- built against fake TFLM

NO_HOST_TOOLS = shutil.which("make") is None or shutil.which("g++") is None or shutil.which("gcc") is None
WARNINGS = "-O1 -Wall -Wextra -Werror"


def _fake_sizes():
    # The fake interpreters are made in setup()'s order: the cropper (whole image in, a box out), the classifier.
    return f"-DFAKE_INPUT_BYTES={24 * 32 * 3}u,{16 * 16 * 3}u -DFAKE_OUTPUT_BYTES=4u,{len(LABELS)}u"


def _make(project, *args):
    return subprocess.run(["make", "-C", str(project.path), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def fake_tflm(tmp_path_factory):
    return write_fake_tflm(tmp_path_factory.mktemp("tflm-tree"))


@pytest.mark.skipif(NO_HOST_TOOLS, reason="needs make and the host compilers gcc and g++")
def test_host_build_runs_both_stages_each_loop(project, fake_tflm):
    result = _make(project, f"TFLM_DIR={fake_tflm}", f"TARGET_FLAGS={_fake_sizes()}", f"OPT={WARNINGS}", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Cropper arena: {24 * 32 * 3 + 4} of {project.cropper.arena_bytes} bytes used." in result.stdout
    assert f"Classifier arena: {16 * 16 * 3 + 3} of {project.arena_bytes} bytes used." in result.stdout
    # The fake cropper's box is 127 everywhere: xmax == xmin, no area, so each loop crops the whole image.
    assert result.stdout.count("Crop: x 0..32, y 0..24 (no box: the whole image).") == 3
    assert result.stdout.count("class 0 (a) score ") == 3
    # Built from every source in the folder, the C crop policy among them.
    assert "crop_policy.o" in {p.name for p in (project.path / "build").glob("*.o")}


def _fake_outputs(box, scores):
    # The fake interpreters then give this box (cropper) and these scores (classifier).
    return f"-DFAKE_OUTPUTS={','.join(str(int(v)) for v in (*box, *scores))}"


@pytest.mark.skipif(NO_HOST_TOOLS, reason="needs make and the host compilers gcc and g++")
def test_model_test_passes_when_each_stage_gives_its_known_output(project, fake_tflm, tmp_path):
    sample = json.loads(project.file("manifest.json").read_text())["sample"]
    flags = f"TARGET_FLAGS={_fake_sizes()} {_fake_outputs(sample['box'], sample['output'])}"
    copy = tmp_path / "fw"
    shutil.copytree(project.path, copy, ignore=shutil.ignore_patterns("build"))
    result = subprocess.run(
        ["make", "-C", str(copy), f"TFLM_DIR={fake_tflm}", flags, f"OPT={WARNINGS}", "test"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: box, window and 3 scores as known" in result.stdout
    # A known-good window that the C policy does not give is caught.
    data = copy / "sample_data.cc"
    window = ", ".join(map(str, sample["window"]))
    data.write_text(data.read_text().replace(f"g_sample_window[4] = {{{window}}}", "g_sample_window[4] = {0, 0, 1, 1}"))
    result = subprocess.run(
        ["make", "-C", str(copy), f"TFLM_DIR={fake_tflm}", flags, f"OPT={WARNINGS}", "test"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "FAIL: window" in result.stdout


@pytest.mark.skipif(NO_HOST_TOOLS, reason="needs make and the host compilers gcc and g++")
def test_loop_crops_the_window_the_python_policy_gives(project, fake_tflm, whole_image_cropper, tmp_path):
    # A box with area, so the runner really crops: its window is the Python policy's for the same int8 box.
    scale, zero = read_model(whole_image_cropper).output.quantization
    box = np.clip(np.rint(np.array([0.3, 0.2, 0.55, 0.6]) / scale + zero), -128, 127).astype(np.int8)
    windows, fallbacks = POLICY.windows(dequantize(box, scale, zero)[None], 24, 32)
    assert not fallbacks[0]
    copy = tmp_path / "fw"
    shutil.copytree(project.path, copy, ignore=shutil.ignore_patterns("build"))
    flags = f"TARGET_FLAGS={_fake_sizes()} {_fake_outputs(box, [-100, 50, 0])}"
    result = subprocess.run(
        ["make", "-C", str(copy), f"TFLM_DIR={fake_tflm}", flags, f"OPT={WARNINGS}", "run"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    x0, y0, x1, y1 = windows[0]
    assert result.stdout.count(f"Crop: x {x0}..{x1}, y {y0}..{y1}.") == 3
    assert result.stdout.count("class 1 (b) score ") == 3


@pytest.mark.skipif(NO_HOST_TOOLS, reason="needs make and the host compilers gcc and g++")
def test_model_test_stops_at_the_cropper_when_its_box_is_wrong(project, fake_tflm):
    result = _make(project, f"TFLM_DIR={fake_tflm}", f"TARGET_FLAGS={_fake_sizes()}", f"OPT={WARNINGS}", "test")
    assert result.returncode != 0
    assert result.stdout.count("FAIL: box value 0 is 127") == 1 and "score" not in result.stdout


NO_ARM_GCC = shutil.which("arm-none-eabi-g++") is None


@pytest.mark.skipif(NO_ARM_GCC, reason="arm-none-eabi-g++ is not on PATH (Debian: gcc-arm-none-eabi)")
def test_two_stage_glue_cross_compiles_for_cortex_m4(project, fake_tflm, tmp_path):
    copy = tmp_path / "fw"
    shutil.copytree(project.path, copy, ignore=shutil.ignore_patterns("build"))
    flags = f"-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 {_fake_sizes()}"
    result = subprocess.run(
        ["make", "-C", str(copy), f"TFLM_DIR={fake_tflm}", "CXX=arm-none-eabi-g++", "CC=arm-none-eabi-gcc"]
        + [f"TARGET_FLAGS={flags}", f"OPT={WARNINGS}", "objects"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    objects = sorted(p.name for p in (copy / "build").glob("*.o"))
    assert "crop_policy.o" in objects and "cropper_data.o" in objects and len(objects) == 9

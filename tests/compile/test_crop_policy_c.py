"""The firmware's plain-C crop policy (firmware/tflm/two_stage/crop_policy.c) against the Python pipeline.

On the same images and the cropper's raw int8 boxes, the C code must give exactly the int8 tensor that the
Python two-stage pipeline feeds its classifier in LiteRT: built with gcc on the host, and cross-compiled with
arm-none-eabi-gcc for a Cortex-M4 and run under qemu-system-arm (mps2-an386).
"""

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from tests.compile.conftest import WHOLE_IMAGE_SHAPE as IMAGE_SHAPE
from tfscissor.compile import csource
from tfscissor.compile.tflm import quantization_table
from tfscissor.crop import TwoStage
from tfscissor.deploy import CropPolicy
from tfscissor.deploy.litert import TFLiteModel, dequantize

HERE = Path(__file__).with_name("c")
POLICIES = (CropPolicy(), CropPolicy(scales=None), CropPolicy(scales=(0.3, 0.6), margin=1.2), CropPolicy(margin=0.7))
CORTEX_M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
C_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]


def _firmware_dir():
    return Path(str(resources.files("tfscissor.firmware").joinpath("tflm", "two_stage")))


@pytest.fixture(scope="module")
def pipeline_models(int8_model, whole_image_cropper):
    """The int8 cropper for 24x32 images and a 16-px int8 classifier, in LiteRT."""
    return TFLiteModel(whole_image_cropper, name="cropper"), TFLiteModel(int8_model("resnet"), name="classifier")


def _raw_boxes(rng, cropper, images):
    """The cropper's own int8 boxes for ``images``, then int8 boxes chosen to reach every branch of the
    policy: random ones (many degenerate or beyond the image), tiny ones, huge ones, and ones on exact halves."""
    own = [cropper.invoke(cropper.quantize_input(image)[None])[0] for image in images]
    scale, zero = cropper.output_quantization
    step = lambda value: int(np.clip(np.rint(value / scale + zero), -128, 127))  # noqa: E731
    chosen = [
        [step(0.4), step(0.4), step(0.45), step(0.45)],  # a few pixels: the smallest scale
        [step(0.1), step(0.2), step(0.9), step(0.7)],  # wider than tall
        [step(-0.5), step(-0.5), step(2.0), step(2.0)],  # beyond the image: capped, clamped
        [step(0.5), step(0.5), step(0.5), step(0.9)],  # no width: the whole image
        [step(0.9), step(0.1), step(0.2), step(0.8)],  # inverted
        [-128, -128, 127, 127],
        [0, 0, 1, 1],
    ]
    random = rng.integers(-128, 128, (40, 4))
    return np.concatenate([np.array(own), np.array(chosen), random]).astype(np.int8)


# Float boxes beyond what an int8 box reaches: huge and infinite coordinates (clamped in float before any integer
# conversion), NaN (the whole image), and a box whose window starts on an exact half pixel.
FLOAT_BOXES = np.array(
    [
        [0.5, 0.4, 1e20, 0.6],
        [-1e30, -1e30, 1e30, 1e30],
        [0.2, 0.2, np.inf, 0.5],
        [np.nan, 0.1, 0.5, 0.5],
        [0.9, 0.9, 3e38, 3.1e38],
        [0.25, 0.25, 0.5, 0.5],
    ],
    np.float32,
)


@pytest.fixture(scope="module")
def cases(pipeline_models):
    """Images, raw boxes, a policy per case, and what the Python pipeline gives for each: (window, tensor)."""
    cropper, classifier = pipeline_models
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (6, *IMAGE_SHAPE), dtype=np.uint8)
    images[1] = np.linspace(0, 255, IMAGE_SHAPE[1])[None, :, None].astype(np.uint8)  # smooth: many exact ties
    raw = _raw_boxes(rng, cropper, images)
    image_of = rng.integers(0, len(images), len(raw))
    image_of[: len(images)] = np.arange(len(images))  # the cropper's own boxes go with their images
    image_of = np.concatenate([image_of, rng.integers(0, len(images), len(FLOAT_BOXES))])
    policy_of = rng.integers(0, len(POLICIES), len(raw) + len(FLOAT_BOXES))
    boxes = np.concatenate([dequantize(raw, *cropper.output_quantization), FLOAT_BOXES])
    expected = []
    for n, box in enumerate(boxes):
        pipeline = TwoStage(cropper, classifier, POLICIES[policy_of[n]])
        crops, _ = pipeline.crops(images[image_of[n]][None], box[None])
        tensor = classifier.quantize_input(crops.images[0])  # what LiteRT's classifier is given
        expected.append((crops.windows[0].tolist(), int(crops.fallbacks[0]), tensor))
    assert sum(fallback for _, fallback, _ in expected) >= 5  # the degenerate branch is exercised
    assert expected[len(raw)][0][2] == IMAGE_SHAPE[1]  # the 1e20 box: pushed to the right edge
    return {"images": images, "raw": raw, "image_of": image_of, "policy_of": policy_of, "expected": expected}


def _check_data(cases, cropper, classifier):
    """check_data.h for crop_policy_check.c."""
    rows, cols, channels = IMAGE_SHAPE
    side = classifier.input_shape[0]
    scale, zero = cropper.output_quantization
    scales = [p.scales or (0.0,) for p in POLICIES]
    width = max(len(s) for s in scales)

    def array(ctype, name, rows_of_values):
        body = ",\n".join("{" + ", ".join(map(str, row)) + "}" for row in rows_of_values)
        return f"static const {ctype} {name}[][{len(rows_of_values[0])}] = {{\n{body}\n}};"

    return "\n".join(
        [
            "#include <stdint.h>",
            "#include <math.h>",
            f"#define CHECK_RAW_CASES {len(cases['raw'])}",
            f"#define CHECK_CASES {len(cases['raw']) + len(FLOAT_BOXES)}",
            f"#define CHECK_HEIGHT {rows}",
            f"#define CHECK_WIDTH {cols}",
            f"#define CHECK_CHANNELS {channels}",
            f"#define CHECK_SIDE {side}",
            f"#define CHECK_BOX_SCALE {csource.c_float(scale)}",
            f"#define CHECK_BOX_ZERO_POINT {zero}",
            array("uint8_t", "check_images", [image.ravel() for image in cases["images"]]),
            array("int8_t", "check_raw", cases["raw"]),
            array("float", "check_float_boxes", [[_c_float(v) for v in box] for box in FLOAT_BOXES]),
            f"static const int check_image[] = {{{', '.join(map(str, cases['image_of']))}}};",
            f"static const int check_policy[] = {{{', '.join(map(str, cases['policy_of']))}}};",
            array(
                "double", "check_scales", [[repr(float(v)) for v in (*s, *[0.0] * (width - len(s)))] for s in scales]
            ),
            f"static const int check_scale_counts[] = {{{', '.join(str(len(p.scales or ())) for p in POLICIES)}}};",
            f"static const double check_margins[] = {{{', '.join(repr(float(p.margin)) for p in POLICIES)}}};",
            "static const int8_t check_table[256] = {"
            + ", ".join(map(str, quantization_table(classifier.input_quantization)))
            + "};",
        ]
    )


def _c_float(value):
    if np.isnan(value):
        return "NAN"
    if np.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    return csource.c_float(value)


def _compare(stdout, cases):
    lines = stdout.splitlines()
    assert lines[-1] == f"done {len(cases['expected'])} cases", stdout[-500:]
    for n, (window, fallback, tensor) in enumerate(cases["expected"]):
        head, data = lines[2 * n], lines[2 * n + 1]
        assert head == f"case {n} window {' '.join(map(str, window))} fallback {fallback} status 0", (n, head)
        got = np.frombuffer(bytes.fromhex(data), dtype=np.int8).reshape(tensor.shape)
        np.testing.assert_array_equal(got, tensor, err_msg=f"case {n}, window {window}")


@pytest.fixture(scope="module")
def sources(cases, pipeline_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("crop_policy_c")
    (root / "check_data.h").write_text(_check_data(cases, *pipeline_models))
    return root, [HERE / "crop_policy_check.c", _firmware_dir() / "crop_policy.c"]


def _run(command, timeout=60):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host C compiler gcc (Debian: gcc)")
def test_host_c_gives_the_python_pipelines_int8_input(sources, cases):
    root, files = sources
    binary = root / "host_check"
    built = _run(["gcc", *C_FLAGS, f"-I{root}", f"-I{_firmware_dir()}", *map(str, files), "-lm", "-o", str(binary)])
    assert built.returncode == 0, built.stderr
    result = _run([str(binary)])
    assert result.returncode == 0, result.stderr
    _compare(result.stdout, cases)


NO_CORTEX_M = shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None


@pytest.mark.skipif(NO_CORTEX_M, reason="needs arm-none-eabi-gcc and qemu-system-arm (Debian: see make system-deps)")
def test_cortex_m4_under_qemu_gives_the_same_tensors(sources, cases):
    root, files = sources
    elf = root / "check.elf"
    built = _run(
        [
            "arm-none-eabi-gcc",
            *CORTEX_M4,
            *C_FLAGS,
            "--specs=rdimon.specs",  # newlib's semihosting: printf reaches qemu's stdout
            "-nostartfiles",
            "-T",
            str(HERE / "mps2_an386.ld"),
            f"-I{root}",
            f"-I{_firmware_dir()}",
            *map(str, files),
            str(HERE / "cortex_m4_startup.c"),
            "-lm",
            "-o",
            str(elf),
        ]
    )
    assert built.returncode == 0, built.stderr
    machine = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"]
    result = _run([*machine, "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)], timeout=120)
    assert result.returncode == 0, result.stderr
    _compare(result.stdout, cases)


def test_the_comparison_catches_a_one_pixel_difference(cases):
    # The check itself must be able to fail: the expected output with one value moved by one step.
    lines = []
    for n, (window, fallback, tensor) in enumerate(cases["expected"]):
        lines.append(f"case {n} window {' '.join(map(str, window))} fallback {fallback} status 0")
        data = tensor.copy()
        if n == 3:
            data.flat[7] = data.flat[7] - 1 if data.flat[7] > -128 else 1 - 128
        lines.append(data.view(np.uint8).tobytes().hex())
    lines.append(f"done {len(cases['expected'])} cases")
    with pytest.raises(AssertionError, match="case 3"):
        _compare("\n".join(lines), cases)

import hashlib
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.compile.helpers import litert_ops, litert_run, repack, tflm_run
from tfscissor.compile import RESOLVER_METHODS, tflm, write_tflm_project
from tfscissor.deploy import read_model
from tfscissor.errors import ModelError, UsageError

LABELS = ("cat", 'dog "quoted"', "café")
EXPECTED_FILES = {
    "Makefile",
    "README.md",
    "classification_responder.cc",
    "classification_responder.h",
    "debug_log_output.h",
    "image_provider.cc",
    "image_provider.h",
    "main.cc",
    "main_functions.cc",
    "main_functions.h",
    "manifest.json",
    "model.tflite",
    "model_data.cc",
    "model_data.h",
    "model_settings.cc",
    "model_settings.h",
    "model_test.cc",
    "op_resolver.h",
    "sample_data.cc",
    "sample_data.h",
}
# The sources that need no TFLM header: they must build for the host and for a Cortex-M4 as they are.
STANDALONE_SOURCES = (
    "model_data.cc",
    "model_settings.cc",
    "image_provider.cc",
    "classification_responder.cc",
    "sample_data.cc",
)
COMPILERS = {
    "g++": ["g++", "-std=c++17"],
    "arm-none-eabi-g++": [
        "arm-none-eabi-g++",
        "-std=c++17",
        "-mcpu=cortex-m4",
        "-mthumb",
        "-mfloat-abi=hard",
        "-mfpu=fpv4-sp-d16",
    ],
}


@pytest.fixture(scope="session")
def projects(int8_model, tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp("projects") / name
            cache[name] = write_tflm_project(int8_model(name), out, labels=LABELS, name=f"{name}_model")
        return cache[name]

    return get


def _c_array(text, symbol):
    body = re.search(rf"{symbol}\[[^\]]*\] = \{{(.*?)\}};", text, re.S).group(1)
    return [int(token, 0) for token in re.findall(r"-?0x[0-9a-f]+|-?\d+", body)]


def _constant(text, name):
    return re.search(rf"constexpr \w+ {name} = ([^;]+);", text).group(1)


def test_project_tree(projects, model_name):
    project = projects(model_name)
    assert set(project.files) == EXPECTED_FILES == {p.name for p in project.path.iterdir()}
    assert not list(project.path.parent.glob(".*"))  # no temporary directory left beside it


def test_model_array_parses_back_to_the_exact_bytes(projects, int8_model, model_name):
    project = projects(model_name)
    text = project.file("model_data.cc").read_text()
    data = int8_model(model_name)
    assert f"alignas(16) const unsigned char g_{model_name}_model[]" in text
    assert bytes(_c_array(text, f"g_{model_name}_model")) == data
    assert f"g_{model_name}_model_len = {len(data)};" in text
    assert project.file("model.tflite").read_bytes() == data and project.model_bytes == len(data)


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs the host C++ compiler g++")
def test_model_array_compiled_reads_back_the_exact_bytes(projects, int8_model, tmp_path):
    # Independent of the Python parser: the C++ compiler's idea of the array, written out by a program.
    project = projects("mobilenetv2")
    dump = tmp_path / "dump.cc"
    dump.write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_data.h"\n'
        "int main() {\n"
        "  if (reinterpret_cast<std::uintptr_t>(g_mobilenetv2_model) % 16 != 0) return 2;\n"
        "  return std::fwrite(g_mobilenetv2_model, 1, g_mobilenetv2_model_len, stdout) == g_mobilenetv2_model_len ? 0 : 1;\n"
        "}\n"
    )
    exe = tmp_path / "dump"
    subprocess.run(
        ["g++", "-std=c++17", f"-I{project.path}", str(dump), str(project.file("model_data.cc")), "-o", str(exe)],
        check=True,
    )
    assert subprocess.run([str(exe)], capture_output=True, check=True).stdout == int8_model("mobilenetv2")


def test_resolver_lists_exactly_the_ops_litert_sees(projects, int8_model, model_name):
    project = projects(model_name)
    ops = set(litert_ops(int8_model(model_name)))
    text = project.file("op_resolver.h").read_text()
    assert sorted(re.findall(r"resolver\.(Add\w+)\(\)", text)) == sorted(RESOLVER_METHODS[op] for op in ops)
    assert "MicroMutableOpResolver<kOpCount>" in text and _constant(text, "kOpCount") == str(len(ops))
    assert set(project.ops) == ops


def test_model_settings_match_the_model(projects, int8_model, model_name):
    project = projects(model_name)
    info = read_model(int8_model(model_name))
    text = project.file("model_settings.h").read_text()
    assert [int(_constant(text, k)) for k in ("kNumRows", "kNumCols", "kNumChannels")] == list(info.input.shape[1:])
    assert float(_constant(text, "kInputScale").rstrip("f")) == info.input.quantization[0]
    assert int(_constant(text, "kInputZeroPoint")) == info.input.quantization[1]
    assert float(_constant(text, "kOutputScale").rstrip("f")) == info.output.quantization[0]
    assert int(_constant(text, "kOutputZeroPoint")) == info.output.quantization[1]
    assert int(_constant(text, "kCategoryCount")) == len(LABELS)
    assert int(_constant(text, "kTensorArenaSize")) == project.arena_bytes
    assert project.arena_bytes >= project.measured_arena_bytes * 1.1 and project.arena_bytes % 16 == 0
    labels = project.file("model_settings.cc").read_text()
    assert '"dog \\"quoted\\""' in labels and '"caf\\303\\251"' in labels


def test_sample_output_is_what_tflm_and_litert_compute(projects, int8_model, model_name):
    project = projects(model_name)
    data = int8_model(model_name)
    shape = read_model(data).input.shape
    text = project.file("sample_data.cc").read_text()
    sample_in = np.array(_c_array(text, "g_sample_input"), np.int8).reshape(shape)
    sample_out = np.array(_c_array(text, "g_sample_output"))
    assert (tflm_run(data, sample_in, project.measured_arena_bytes).ravel() == sample_out).all()
    assert np.abs(litert_run(data, sample_in).ravel().astype(int) - sample_out).max() <= 1


def test_manifest(projects, int8_model, model_name):
    project = projects(model_name)
    manifest = json.loads(project.file("manifest.json").read_text())
    data = int8_model(model_name)
    assert (
        manifest["model"]["sha256"]
        == hashlib.sha256(data).hexdigest()
        == hashlib.sha256(project.file("model.tflite").read_bytes()).hexdigest()
    )
    assert manifest["model"]["bytes"] == len(data)
    assert manifest["ops"] == list(project.ops) and manifest["op_counts"] == project.op_counts
    assert (
        manifest["arena"]["bytes"] == project.arena_bytes
        and manifest["arena"]["measured_bytes"] == project.measured_arena_bytes
    )
    assert manifest["input"]["shape"] == [1, 16, 16, 3] and manifest["input"]["dtype"] == "int8"
    assert manifest["labels"] == list(LABELS) and set(manifest["files"]) == EXPECTED_FILES
    readme = project.file("README.md").read_text()
    assert f"{project.arena_bytes} bytes: {project.measured_arena_bytes} measured" in readme and "CONV_2D" in readme


@pytest.mark.parametrize("compiler", COMPILERS)
def test_standalone_sources_compile_without_warnings(projects, model_name, compiler, tmp_path):
    if shutil.which(compiler) is None:
        package = "g++" if compiler == "g++" else "gcc-arm-none-eabi"
        pytest.skip(reason=f"{compiler} is not on PATH (Debian: apt-get install {package})")
    project = projects(model_name)
    flags = [*COMPILERS[compiler], "-c", "-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-fno-rtti"]
    for source in STANDALONE_SOURCES:
        obj = tmp_path / f"{source}.o"
        subprocess.run([*flags, str(project.file(source)), "-o", str(obj)], check=True, capture_output=True)
        assert obj.stat().st_size > 0


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs the host C++ compiler g++")
def test_reference_image_provider_and_responder_run(projects, tmp_path):
    project = projects("resnet")
    driver = tmp_path / "driver.cc"
    driver.write_text(
        "#include <cstdio>\n#include <cstring>\n"
        '#include "classification_responder.h"\n#include "image_provider.h"\n#include "model_settings.h"\n#include "sample_data.h"\n'
        "int main() {\n"
        "  static int8_t image[kMaxImageSize];\n"
        "  if (!GetImage(kNumCols, kNumRows, kNumChannels, image)) return 1;\n"
        "  if (std::memcmp(image, g_sample_input, kMaxImageSize) != 0) return 2;\n"
        "  if (GetImage(kNumCols + 1, kNumRows, kNumChannels, image)) return 3;\n"
        "  RespondToClassification(2, kCategoryLabels[2], 0.5f, g_sample_output, kCategoryCount);\n"
        '  for (int p = 0; p < 256; ++p) std::printf("%d ", QuantizePixel(static_cast<uint8_t>(p)));\n'
        "  return 0;\n"
        "}\n"
    )
    sources = [
        project.file(s)
        for s in ("image_provider.cc", "classification_responder.cc", "model_settings.cc", "sample_data.cc")
    ]
    exe = tmp_path / "driver"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", f"-I{project.path}", str(driver), *map(str, sources), "-o", str(exe)],
        check=True,
    )
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("class 2 (café) score 0.500 scores ")
    # The camera pixel's int8 value is the Python pipeline's, for every pixel value.
    pixels = [int(v) for v in result.stdout.splitlines()[-1].split()]
    assert (
        pixels
        == tflm.quantization_table(read_model(project.file("model.tflite").read_bytes()).input.quantization).tolist()
    )


def test_sample_image_is_quantised_and_used(int8_model, tmp_path):
    image = np.full((16, 16, 3), 200.0)
    project = write_tflm_project(int8_model("plain"), tmp_path / "p", labels=LABELS, sample_image=image)
    text = project.file("sample_data.cc").read_text()
    assert set(_c_array(text, "g_sample_input")) == {72}  # round(200 / ~1.0) - 128
    assert "the sample image given to tfscissor" in text


def test_existing_project_is_replaced_whole(int8_model, tmp_path):
    """Files an earlier compile wrote (here a board's ports) go with it; nothing else is left beside it."""
    out = tmp_path / "p"
    write_tflm_project(int8_model("plain"), out, labels=LABELS, board="nano33ble")
    assert {p.name for p in out.iterdir()} > EXPECTED_FILES
    write_tflm_project(int8_model("plain"), out, labels=LABELS)
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


@pytest.mark.parametrize("change", ["added", "edited"])
def test_a_project_the_user_changed_is_not_replaced(int8_model, tmp_path, change):
    """A build folder or an edited main.cc would be lost without a word: the compile names them and stops."""
    out = tmp_path / "p"
    write_tflm_project(int8_model("plain"), out, labels=LABELS)
    if change == "added":
        (out / "build").mkdir()
        (out / "build" / "main.o").write_bytes(b"object")
    else:
        (out / "main.cc").write_text("// my changes\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(UsageError, match=f"files there were {change} (build/main.o|main.cc) since: replacing it"):
        write_tflm_project(int8_model("plain"), out, labels=LABELS)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("existing", [False, True])
def test_failure_mid_write_leaves_nothing_behind(int8_model, tmp_path, monkeypatch, existing):
    out = tmp_path / "p"
    if existing:
        write_tflm_project(int8_model("plain"), out, labels=LABELS, name="older")
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    written = []
    real_write = tflm._write_file

    def failing_write(path, content):
        if len(written) == 3:
            raise OSError("disk full")
        written.append(path.name)
        real_write(path, content)

    monkeypatch.setattr(tflm, "_write_file", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_tflm_project(int8_model("plain"), out, labels=LABELS)
    assert len(written) == 3
    assert [p.name for p in tmp_path.iterdir()] == (["p"] if existing else [])
    if existing:
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_labels_may_be_any_iterable_of_strings(int8_model, tmp_path):
    project = write_tflm_project(int8_model("plain"), tmp_path / "p", labels=(x for x in "xyz"))
    assert project.labels == ("x", "y", "z")


def test_output_that_holds_the_input_model(int8_model, tmp_path):
    model = tmp_path / "p" / "model.tflite"
    model.parent.mkdir()
    model.write_bytes(int8_model("plain"))
    with pytest.raises(UsageError, match="holds the input model"):
        write_tflm_project(model, tmp_path / "p", labels=LABELS)
    assert model.read_bytes() == int8_model("plain")


def test_output_that_is_a_file(int8_model, tmp_path):
    out = tmp_path / "p"
    out.write_text("not a directory")
    with pytest.raises(UsageError, match="not a directory"):
        write_tflm_project(int8_model("plain"), out, labels=LABELS)
    assert out.read_text() == "not a directory"


@pytest.mark.parametrize("name", ["my-model", "3model", "", "caf\u00e9", None])
def test_bad_project_name(int8_model, tmp_path, name):
    with pytest.raises(UsageError, match="not a C identifier"):
        write_tflm_project(int8_model("plain"), tmp_path / "p", labels=LABELS, name=name)


@pytest.mark.parametrize("margin", [-0.1, 11, "10%", True, None])
def test_bad_arena_margin(int8_model, tmp_path, margin):
    with pytest.raises(UsageError, match="arena_margin"):
        write_tflm_project(int8_model("plain"), tmp_path / "p", labels=LABELS, arena_margin=margin)


@pytest.mark.parametrize("labels", [["a", "b"], "abc", 5, ["a", "b", 3]])
def test_bad_labels(int8_model, tmp_path, labels):
    with pytest.raises(UsageError, match="label"):
        write_tflm_project(int8_model("plain"), tmp_path / "p", labels=labels)
    assert not (tmp_path / "p").exists()


def test_bad_sample_image(int8_model, tmp_path):
    with pytest.raises(UsageError, match="sample_image has shape"):
        write_tflm_project(int8_model("plain"), tmp_path / "p", labels=LABELS, sample_image=np.zeros((8, 8, 3)))


def _set_op(code):
    def mutate(model, schema):
        model.operatorCodes[0].builtinCode = model.operatorCodes[0].deprecatedBuiltinCode = getattr(
            schema.BuiltinOperator, code
        )
        if code == "CUSTOM":
            model.operatorCodes[0].customCode = b"MyOp"

    return mutate


@pytest.mark.parametrize(("code", "shown"), [("TILE", "TILE"), ("CUSTOM", "CUSTOM:MyOp")])
def test_op_without_tflm_kernel_is_named(int8_model, tmp_path, code, shown):
    with pytest.raises(ModelError, match=f"uses {shown}, which TFLite Micro has no kernel for"):
        write_tflm_project(repack(int8_model("plain"), _set_op(code)), tmp_path / "p", labels=LABELS)


def _io(model):
    graph = model.subgraphs[0]
    return graph, graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]


UNDEPLOYABLE = {
    "two inputs": (lambda m, s: setattr(_io(m)[0], "inputs", [_io(m)[0].inputs[0], 1]), "2 inputs and 1 outputs"),
    "float output": (lambda m, s: setattr(_io(m)[2], "type", s.TensorType.FLOAT32), "not an int8 model"),
    "uint8 input": (lambda m, s: setattr(_io(m)[1], "type", s.TensorType.UINT8), "not an int8 model.*input uint8"),
    "flat input": (lambda m, s: setattr(_io(m)[1], "shape", np.array([1, 768], np.int32)), "input of shape"),
    "batched output": (lambda m, s: setattr(_io(m)[2], "shape", np.array([3, 1], np.int32)), "output of shape"),
}


@pytest.mark.parametrize("case", UNDEPLOYABLE)
def test_undeployable_model(int8_model, tmp_path, case):
    mutate, message = UNDEPLOYABLE[case]
    with pytest.raises(ModelError, match=message):
        write_tflm_project(repack(int8_model("plain"), mutate), tmp_path / "p", labels=LABELS)


def test_zero_margin_configures_the_measured_arena(int8_model, tmp_path):
    project = write_tflm_project(int8_model("plain"), tmp_path / "p", labels=LABELS, arena_margin=0)
    assert project.arena_bytes == project.measured_arena_bytes
    assert f"kTensorArenaSize = {project.measured_arena_bytes};" in project.file("model_settings.h").read_text()


def test_labels_default_to_class_indices(int8_model, tmp_path):
    project = write_tflm_project(int8_model("plain"), tmp_path / "p")
    assert project.labels == tuple(str(i) for i in range(len(LABELS)))


def test_an_existing_directory_of_the_users_is_never_replaced(int8_model, tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "main.c").write_text("int main(void) { return 0; }")
    with pytest.raises(UsageError, match="not a tfscissor output"):
        write_tflm_project(int8_model("plain"), out, labels=LABELS)
    assert [p.name for p in out.iterdir()] == ["main.c"]

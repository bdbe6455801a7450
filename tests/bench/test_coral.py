"""The Edge TPU benchmark up to the device: runtime choice, device listing, every error, and the timing split,
with stand-ins for libedgetpu, its delegate, the interpreter and the sysfs and /dev trees. The real device path
runs only where an Edge TPU is attached."""

import time
from types import SimpleNamespace

import numpy as np
import pytest

from tests.bench.conftest import as_edgetpu
from tfscissor.bench import EdgeTpuUnavailable, bench, bench_coral, find_runtime
from tfscissor.bench.coral import DelegateRuntime, PycoralRuntime, list_pci, list_usb
from tfscissor.deploy import read_model
from tfscissor.errors import UsageError

UPLOAD_S = 0.05  # what the stand-in's first inference takes, as the real one uploads the parameters


def _usb(root, name, vendor, product):
    entry = root / "bus" / "usb" / "devices" / name
    entry.mkdir(parents=True)
    (entry / "idVendor").write_text(f"{vendor}\n")
    (entry / "idProduct").write_text(f"{product}\n")
    return entry


@pytest.fixture
def sysfs(tmp_path):
    """Two USB Edge TPUs (one before and one after its firmware load), a mouse, and a hub interface without IDs."""
    root = tmp_path / "sys"
    _usb(root, "2-1", "18d1", "9302")
    _usb(root, "1-1", "1a6e", "089a")
    _usb(root, "1-2", "046d", "c52b")
    (root / "bus" / "usb" / "devices" / "1-1:1.0").mkdir()
    return root


class FakeInterpreter:
    """Stands in for LiteRT's interpreter with the Edge TPU delegate: the first invoke is slow (the upload)."""

    def __init__(self, model_content, experimental_delegates):
        self.delegates = experimental_delegates
        self.input = read_model(model_content).input
        self.invocations = 0

    def allocate_tensors(self):
        pass

    def get_input_details(self):
        return [{"index": 0, "shape": np.array(self.input.shape), "dtype": np.dtype(self.input.dtype).type}]

    def set_tensor(self, index, tensor):
        assert tensor.shape == tuple(self.input.shape)

    def invoke(self):
        if self.invocations == 0:
            time.sleep(UPLOAD_S)
        self.invocations += 1


class FakeDelegates:
    """Records every load_delegate(library, options) call and hands out a token per delegate."""

    def __init__(self):
        self.calls = []

    def __call__(self, library, options):
        self.calls.append((library, options))
        return SimpleNamespace(options=options)


def _library_present(name):
    return None


def _library_missing(name):
    raise OSError(f"{name}: cannot open shared object file: No such file or directory")


def _runtime(sysfs_root, dev_root, open_library=_library_present, load_delegate=None):
    return DelegateRuntime(
        open_library=open_library,
        load_delegate=load_delegate or FakeDelegates(),
        interpreter_class=FakeInterpreter,
        sysfs_root=str(sysfs_root),
        dev_root=str(dev_root),
    )


@pytest.fixture(scope="module")
def tpu_model(tiny_model_bytes):
    return as_edgetpu(tiny_model_bytes)


# -- devices and runtimes ------------------------------------------------------------------------------------


def test_usb_devices_from_sysfs(sysfs):
    assert list_usb(sysfs) == [
        {"type": "usb", "path": str(sysfs / "bus/usb/devices/1-1"), "id": "1a6e:089a", "state": "not yet initialised"},
        {"type": "usb", "path": str(sysfs / "bus/usb/devices/2-1"), "id": "18d1:9302", "state": "initialised"},
    ]


def test_no_usb_tree(tmp_path):
    assert list_usb(tmp_path / "absent") == []


def test_pci_devices_by_number(tmp_path):
    for name in ("apex_10", "apex_1", "apex_0", "apex_x", "null"):
        (tmp_path / name).touch()
    assert [d["path"] for d in list_pci(tmp_path)] == [str(tmp_path / f"apex_{n}") for n in (0, 1, 10)]


def test_googles_pycoral_is_used_when_it_imports():
    edgetpu = SimpleNamespace(make_interpreter=lambda *a, **k: None, list_edge_tpus=lambda: [])
    runtime = find_runtime(lambda name: edgetpu)
    assert isinstance(runtime, PycoralRuntime) and runtime.edgetpu is edgetpu


def test_the_unrelated_pypi_pycoral_is_not_taken_for_googles():
    assert isinstance(find_runtime(lambda name: SimpleNamespace(__version__="0.1")), DelegateRuntime)


def test_without_pycoral_the_delegate_runs():
    def absent(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    assert isinstance(find_runtime(absent), DelegateRuntime)


# -- errors, each one line saying what is missing and how to fix it -----------------------------------------


def test_missing_library(tpu_model, sysfs, tmp_path):
    runtime = _runtime(sysfs, tmp_path, open_library=_library_missing)
    with pytest.raises(EdgeTpuUnavailable) as err:
        bench_coral(tpu_model, "usb", 0, runs=1, warmup=0, runtime=runtime)
    message = str(err.value)
    assert "libedgetpu.so.1 is not installed" in message and "cannot open shared object file" in message
    assert "libedgetpu1-std" in message and "github.com/google-coral/libedgetpu" in message
    assert "no Coral" not in message and "\n" not in message  # the devices are there


def test_missing_library_and_device(tpu_model, tmp_path):
    runtime = _runtime(tmp_path, tmp_path, open_library=_library_missing)
    with pytest.raises(EdgeTpuUnavailable, match="is not installed .*; and no Coral USB Edge TPU is attached"):
        bench_coral(tpu_model, "usb", 0, runs=1, warmup=0, runtime=runtime)


def test_no_usb_device(tpu_model, tmp_path):
    with pytest.raises(EdgeTpuUnavailable) as err:
        bench_coral(tpu_model, "usb", 0, runs=1, warmup=0, runtime=_runtime(tmp_path, tmp_path))
    message = str(err.value)
    assert message.startswith("no Coral USB Edge TPU found: plug the accelerator in")
    for rule in ('ATTRS{idVendor}=="1a6e",GROUP="plugdev"', 'ATTRS{idVendor}=="18d1",GROUP="plugdev"'):
        assert f'SUBSYSTEM=="usb",{rule}' in message
    assert "1a6e:089a and 18d1:9302" in message and "usermod -aG plugdev" in message


def test_no_pci_device_while_usb_ones_are_attached(tpu_model, sysfs, tmp_path):
    with pytest.raises(EdgeTpuUnavailable, match="no Coral PCIe Edge TPU found: .*gasket-dkms.*apex"):
        bench_coral(tpu_model, "pci", 0, runs=1, warmup=0, runtime=_runtime(sysfs, tmp_path))


def test_index_out_of_range_lists_what_was_found(tpu_model, sysfs, tmp_path):
    with pytest.raises(EdgeTpuUnavailable) as err:
        bench_coral(tpu_model, "usb", 2, runs=1, warmup=0, runtime=_runtime(sysfs, tmp_path))
    assert str(err.value) == (
        f"usb:2 asked for, but 2 Coral USB Edge TPUs found: usb:0 ({sysfs}/bus/usb/devices/1-1, 1a6e:089a), "
        f"usb:1 ({sysfs}/bus/usb/devices/2-1, 18d1:9302); pick one of these"
    )


def test_a_model_not_compiled_for_the_edge_tpu_is_refused_before_any_device(tiny_model_bytes):
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the runtime was asked for {name}")

    with pytest.raises(UsageError, match="not compiled for the Edge TPU .*tfscissor compile MODEL --target edgetpu"):
        bench_coral(tiny_model_bytes, "usb", 0, runtime=Untouchable())


def test_a_device_that_will_not_open(tpu_model, sysfs, tmp_path):
    def refuse(library, options):
        raise ValueError(f"Failed to load delegate from {library}\n")

    runtime = _runtime(sysfs, tmp_path, load_delegate=refuse)
    with pytest.raises(EdgeTpuUnavailable, match=r"libedgetpu delegate could not open usb:1 \(Failed to load delegate"):
        bench_coral(tpu_model, "usb", 1, runs=1, warmup=0, runtime=runtime)


def test_unknown_kind(tpu_model):
    with pytest.raises(UsageError, match="unknown Edge TPU kind 'tpu'"):
        bench_coral(tpu_model, "tpu", 0)


# -- the timing, with stand-ins for the delegate and the interpreter ----------------------------------------


def test_first_inference_is_apart_from_the_steady_state(tpu_model, sysfs, tmp_path):
    delegates = FakeDelegates()
    ticks = []
    result = bench_coral(
        tpu_model,
        "usb",
        1,
        runs=6,
        warmup=2,
        progress=ticks.append,
        runtime=_runtime(sysfs, tmp_path, load_delegate=delegates),
    )
    assert delegates.calls == [("libedgetpu.so.1", {"device": "usb:1"})]
    assert result["first_inference_ms"] >= UPLOAD_S * 1000 > result["max_ms"] >= result["p90_ms"] >= result["median_ms"]
    assert result["setup_ms"] >= 0 and ticks == [1] * 6 and result["runs"] == 6 and result["warmup"] == 2
    assert result["device"] == "usb:1" and result["device_path"] == str(sysfs / "bus/usb/devices/2-1")
    assert [d["id"] for d in result["devices_found"]] == ["1a6e:089a", "18d1:9302"]
    assert result["backend"] == "libedgetpu delegate" and result["model_bytes"] == len(tpu_model)
    info = read_model(tpu_model)
    assert result["edgetpu_ops"] == info.op_counts["CUSTOM:edgetpu-custom-op"] >= 1
    assert result["cpu_ops"] == [op for op in info.ops if op != "CUSTOM:edgetpu-custom-op"]
    assert result["input_shape"] == [1, 16, 16, 3] and result["input_dtype"] == "int8"


def test_the_interpreter_gets_the_delegate(tpu_model, sysfs, tmp_path):
    made = []

    class Recording(FakeInterpreter):
        def __init__(self, model_content, experimental_delegates):
            super().__init__(model_content, experimental_delegates)
            made.append((model_content, experimental_delegates))

    runtime = _runtime(sysfs, tmp_path)
    runtime.interpreter_class = Recording
    bench_coral(tpu_model, "usb", 0, runs=1, warmup=0, runtime=runtime)
    ((content, delegates),) = made
    assert content == tpu_model and [d.options for d in delegates] == [{"device": "usb:0"}]


def test_pycoral_path(tpu_model):
    calls = []

    def make_interpreter(model, device):
        calls.append(device)
        return FakeInterpreter(model, [])

    edgetpu = SimpleNamespace(
        make_interpreter=make_interpreter, list_edge_tpus=lambda: [{"type": "pci", "path": "/dev/apex_0"}]
    )
    result = bench(tpu_model, device="pci", runs=3, warmup=0, runtime=PycoralRuntime(edgetpu))
    assert calls == ["pci:0"] and result["backend"] == "pycoral" and result["device"] == "pci:0"
    assert result["stages"]["classifier"]["device_path"] == "/dev/apex_0"


def test_two_stages_on_one_edge_tpu(tpu_model, whole_image_cropper, sysfs, tmp_path):
    delegates = FakeDelegates()
    runtime = _runtime(sysfs, tmp_path, load_delegate=delegates)
    result = bench(
        tpu_model, device="usb:1", cropper=as_edgetpu(whole_image_cropper), runs=3, warmup=1, runtime=runtime
    )
    stages = result["stages"]
    assert list(stages) == ["cropper", "crop", "classifier"]  # the crop runs on the host between the two
    assert delegates.calls == [("libedgetpu.so.1", {"device": "usb:1"})] * 2
    assert stages["crop"]["output_shape"] == [1, 16, 16, 3]
    assert result["total"]["first_inference_ms"] >= 2 * UPLOAD_S * 1000
    assert result["total"]["median_ms"] == pytest.approx(sum(s["median_ms"] for s in stages.values()))

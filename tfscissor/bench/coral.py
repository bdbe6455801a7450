"""The Coral Edge TPU (USB accelerator, M.2 and mini PCIe cards): the runtime, the devices attached, and the
latency of a model compiled for it.

Two runtimes drive it. Google's pycoral (``pycoral.utils.edgetpu``: ``make_interpreter``, ``list_edge_tpus``)
when it imports; the package named ``pycoral`` on PyPI is an unrelated project, so a module without those two
functions is not taken for Google's. Otherwise LiteRT's ``load_delegate`` with Coral's ``libedgetpu``, the
devices then listed from sysfs (USB IDs) and ``/dev/apex_*`` (the PCIe driver's nodes).

The first inference uploads the model's parameters to the Edge TPU's memory, so it is reported apart from the
steady state; opening the device and creating the interpreter (``setup_ms``; on a USB accelerator's first use
this includes loading its firmware) is reported apart from both.
"""

import ctypes
import importlib
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfscissor.bench.cpu import INPUT_SEED
from tfscissor.bench.timing import check_schedule, time_invocations
from tfscissor.deploy.flatbuffer import read_model
from tfscissor.deploy.litert import check_tflite_path, read_tflite, seeded_input
from tfscissor.errors import TfscissorError, UsageError

EDGETPU_OP = "CUSTOM:edgetpu-custom-op"  # what edgetpu_compiler puts in place of the ops it maps
LIBRARY = {"Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}.get(platform.system(), "libedgetpu.so.1")
# A USB accelerator shows Global Unichip's ID until the runtime loads its firmware, then Google's.
USB_IDS = {("1a6e", "089a"): "not yet initialised", ("18d1", "9302"): "initialised"}
KINDS = ("usb", "pci")

INSTALL_RUNTIME = (
    "install Coral's runtime: add the apt repository 'deb https://packages.cloud.google.com/apt "
    "coral-edgetpu-stable main' and `apt-get install libedgetpu1-std`, or build it from "
    "github.com/google-coral/libedgetpu"
)
CONNECT = {
    "usb": (
        "plug the accelerator in, and let your user open it: the udev rules "
        'SUBSYSTEM=="usb",ATTRS{idVendor}=="1a6e",GROUP="plugdev" and '
        'SUBSYSTEM=="usb",ATTRS{idVendor}=="18d1",GROUP="plugdev" (for USB IDs 1a6e:089a and 18d1:9302; '
        "Coral's libedgetpu1-std package installs them), then `sudo usermod -aG plugdev $USER` and log in again"
    ),
    "pci": (
        "seat the card and install its driver, which creates /dev/apex_0: `apt-get install gasket-dkms` from "
        'Coral\'s apt repository, the udev rule SUBSYSTEM=="apex",MODE="0660",GROUP="apex", then '
        "`sudo groupadd apex && sudo usermod -aG apex $USER` and reboot"
    ),
}
TITLES = {"usb": "Coral USB Edge TPU", "pci": "Coral PCIe Edge TPU"}


class EdgeTpuUnavailable(TfscissorError):
    """The Edge TPU runtime or the device asked for is missing: the message says which and how to fix it."""


def list_usb(sysfs_root="/sys"):
    """USB Edge TPUs from ``sysfs_root/bus/usb/devices/*/idVendor`` and ``idProduct``, in sysfs order."""
    found = []
    for entry in sorted(Path(sysfs_root, "bus", "usb", "devices").glob("*")):
        try:
            ids = (entry / "idVendor").read_text().strip(), (entry / "idProduct").read_text().strip()
        except OSError:  # hubs' interfaces and root entries have no IDs
            continue
        if ids in USB_IDS:
            found.append({"type": "usb", "path": str(entry), "id": ":".join(ids), "state": USB_IDS[ids]})
    return found


def list_pci(dev_root="/dev"):
    """PCIe Edge TPUs: the ``apex_N`` nodes of Coral's gasket driver under ``dev_root``, by number."""
    nodes = Path(dev_root).glob("apex_*")
    numbered = sorted((int(n.name[5:]), n) for n in nodes if n.name[5:].isdigit())
    return [{"type": "pci", "path": str(node)} for _, node in numbered]


@dataclass
class PycoralRuntime:
    """Google's pycoral: its own device list and interpreter (which loads libedgetpu itself)."""

    edgetpu: object  # the pycoral.utils.edgetpu module
    name = "pycoral"
    library = LIBRARY

    def missing_library(self):
        return None  # pycoral imports only when libedgetpu loads

    def devices(self):
        return [dict(device) for device in self.edgetpu.list_edge_tpus()]

    def interpreter(self, model_bytes, device):
        return self.edgetpu.make_interpreter(model_bytes, device=device)


@dataclass
class DelegateRuntime:
    """LiteRT's interpreter with the libedgetpu delegate; devices from sysfs and ``/dev``.

    Every way it touches the system is a field, so tests can stand in for the library, the delegate, the
    interpreter and the device trees."""

    library: str = LIBRARY
    open_library: object = ctypes.CDLL
    load_delegate: object = None  # default: ai_edge_litert.interpreter.load_delegate
    interpreter_class: object = None  # default: ai_edge_litert.interpreter.Interpreter
    sysfs_root: str = "/sys"
    dev_root: str = "/dev"
    name = "libedgetpu delegate"

    def missing_library(self):
        """Why the library cannot be loaded (the loader's message), or None when it can."""
        try:
            self.open_library(self.library)
        except OSError as err:
            return str(err) or "not found"
        return None

    def devices(self):
        return list_usb(self.sysfs_root) + list_pci(self.dev_root)

    def interpreter(self, model_bytes, device):
        from ai_edge_litert import interpreter as litert

        load_delegate = self.load_delegate or litert.load_delegate
        delegate = load_delegate(self.library, {"device": device})
        interpreter_class = self.interpreter_class or litert.Interpreter
        return interpreter_class(model_content=model_bytes, experimental_delegates=[delegate])


def find_runtime(import_module=importlib.import_module):
    """Google's pycoral when it imports and has ``make_interpreter`` and ``list_edge_tpus``, else the delegate."""
    try:
        edgetpu = import_module("pycoral.utils.edgetpu")
    except ImportError:
        return DelegateRuntime()
    if all(callable(getattr(edgetpu, name, None)) for name in ("make_interpreter", "list_edge_tpus")):
        return PycoralRuntime(edgetpu)
    return DelegateRuntime()  # the unrelated PyPI `pycoral`, or a broken install


def _describe(devices):
    return ", ".join(
        f"{d['type']}:{i} ({d['path']}{', ' + d['id'] if 'id' in d else ''})" for i, d in enumerate(devices)
    )


def select_device(runtime, kind, index):
    """``(found, device)``: every Edge TPU of ``kind`` the runtime sees, and the one at ``index``.

    Raises :class:`EdgeTpuUnavailable` naming what is missing (the runtime library, any device, or the index
    asked for) and how to fix it."""
    missing = runtime.missing_library()
    found = [device for device in runtime.devices() if device.get("type") == kind]
    if missing is not None:
        library = f"the Edge TPU runtime library {runtime.library} is not installed ({missing}): {INSTALL_RUNTIME}"
        if not found:
            library += f"; and no {TITLES[kind]} is attached: {CONNECT[kind]}"
        raise EdgeTpuUnavailable(library)
    if not found:
        raise EdgeTpuUnavailable(f"no {TITLES[kind]} found: {CONNECT[kind]}")
    if index >= len(found):
        raise EdgeTpuUnavailable(
            f"{kind}:{index} asked for, but {len(found)} {TITLES[kind]}{'s' if len(found) > 1 else ''} found: "
            f"{_describe(found)}; pick one of these"
        )
    return found, found[index]


def check_compiled(info):
    """Refuse a model without the Edge TPU's custom op: the delegate would run every op of it on the CPU."""
    if EDGETPU_OP not in info.op_counts:
        raise UsageError(
            f"{info.name} is not compiled for the Edge TPU (it has no edgetpu-custom-op, so all of it would run on "
            "the CPU): run `tfscissor compile MODEL --target edgetpu` and bench the _edgetpu.tflite it writes"
        )


def bench_coral(model, kind="usb", index=0, runs=100, warmup=10, progress=None, runtime=None):
    """Latency of ``model`` (an ``_edgetpu.tflite``, bytes or a path) on the ``index``-th Edge TPU of ``kind``
    (``usb`` or ``pci``), as the runtime numbers them.

    ``setup_ms``: opening the device and creating the interpreter; ``first_inference_ms``: the first run, which
    uploads the parameters; then ``warmup`` untimed and ``runs`` timed runs, ``progress`` called with 1 after
    each. ``cpu_ops``: the ops the compiler left to the host CPU. ``runtime``: a :class:`PycoralRuntime` or
    :class:`DelegateRuntime` (default: :func:`find_runtime`). Raises UsageError for a model that is not compiled
    for the Edge TPU, :class:`EdgeTpuUnavailable` when the runtime or the device is missing.
    """
    tick = check_schedule(runs, warmup, progress)
    if kind not in KINDS:
        raise UsageError(f"unknown Edge TPU kind {kind!r}: use one of {', '.join(KINDS)}")
    check_tflite_path(model)
    data, name = read_tflite(model)
    info = read_model(data, name=name)
    check_compiled(info)
    runtime = runtime or find_runtime()
    found, chosen = select_device(runtime, kind, index)
    device = f"{kind}:{index}"
    start = time.perf_counter_ns()
    try:
        interpreter = runtime.interpreter(data, device)
        interpreter.allocate_tensors()
    except (OSError, ValueError, RuntimeError) as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise EdgeTpuUnavailable(
            f"{runtime.name} could not open {device} ({detail}): another process may hold it, or your user may not "
            f"be allowed to open it; {CONNECT[kind]}"
        ) from err
    setup_ns = time.perf_counter_ns() - start
    details = interpreter.get_input_details()[0]
    tensor = seeded_input(tuple(int(d) for d in details["shape"]), details["dtype"], seed=INPUT_SEED)
    interpreter.set_tensor(details["index"], tensor)
    stats = time_invocations(interpreter.invoke, runs, warmup, tick)
    return {
        "backend": runtime.name,
        "device": device,
        "device_path": chosen["path"],
        "devices_found": found,
        "model_bytes": len(data),
        "input_shape": [int(d) for d in tensor.shape],
        "input_dtype": np.dtype(tensor.dtype).name,
        "edgetpu_ops": info.op_counts[EDGETPU_OP],
        "cpu_ops": [op for op in info.ops if op != EDGETPU_OP],
        "runs": runs,
        "warmup": warmup,
        "setup_ms": setup_ns / 1e6,
        **stats,
    }

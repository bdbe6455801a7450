"""Child process that runs the TFLite Micro interpreter for :mod:`tfscissor.compile.tflm` (run as a script).

Why a separate process: TFLM's Python runtime does not always fail politely. With an arena below about 500
bytes it segfaults instead of raising RuntimeError, and on a degenerate model (an untrained network whose
activations collapse to a scale near 1e-9) SOFTMAX's Prepare aborts the process. Here a crash costs only this
process, and what TFLM writes to the C stderr goes to the log file the parent chose, not the user's terminal.

Protocol: ``argv[1]`` model file, ``argv[2]`` raw input tensor bytes. Each stdin line holds an arena size; each
answer is one line on the protocol channel (the original stdout): ``ok <output bytes as hex>`` or ``fail``.
Before each probe a ``--- arena N`` line goes to stderr, so the parent can cut the log per probe.
"""

import os
import sys


def _protocol_channel():
    # Keep the original stdout for answers and point fd 1 at stderr, so that nothing the C++ runtime might
    # print to stdout can corrupt the protocol.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return channel


def _no_core_dumps():
    # An expected crash on a too-small arena should not leave a core file in the user's directory.
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


def main(argv):
    # Running a file puts its folder first on sys.path; drop it so no sibling module can shadow a package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    _no_core_dumps()
    channel = _protocol_channel()
    import numpy as np
    from tflite_micro import runtime

    with open(argv[1], "rb") as f:
        model = f.read()
    with open(argv[2], "rb") as f:
        raw_input = f.read()
    for line in sys.stdin:
        size = int(line)
        print(f"--- arena {size}", file=sys.stderr, flush=True)
        interpreter = None
        try:
            interpreter = runtime.Interpreter.from_bytes(model, arena_size=size)
            details = interpreter.get_input_details(0)
            tensor = np.frombuffer(raw_input, dtype=details["dtype"]).reshape(details["shape"])
            interpreter.set_input(tensor, 0)
            interpreter.invoke()
            output = np.ascontiguousarray(interpreter.get_output(0))
        except RuntimeError as err:  # TFLM's way of saying the arena is too small (or the model cannot run)
            print(f"RuntimeError: {err}", file=sys.stderr, flush=True)
            channel.write("fail\n")
        else:
            channel.write(f"ok {output.tobytes().hex()}\n")
        channel.flush()
        del interpreter  # frees the arena before the next probe allocates one


if __name__ == "__main__":
    main(sys.argv)

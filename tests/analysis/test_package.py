"""The public face of tfscissor.analysis and what importing it costs."""

import subprocess
import sys
from pathlib import Path

import pytest

import tfscissor.analysis

REPO = Path(__file__).resolve().parents[2]


def test_public_names():
    assert sorted(tfscissor.analysis.__all__) == ["LayerProfile", "ModelProfile", "profile_model", "register_cost"]
    for name in tfscissor.analysis.__all__:
        assert getattr(tfscissor.analysis, name) is not None


@pytest.mark.slow
def test_import_loads_nothing_beyond_keras():
    # What keras itself imports (TensorFlow, as its backend) is given; the package must add no module of its own
    # choosing, such as TensorFlow's profiler or graph tools.
    code = (
        "import sys, keras\n"
        "before = set(sys.modules)\n"
        "import tfscissor.analysis\n"
        "print(sorted(m for m in set(sys.modules) - before if not m.startswith('tfscissor')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip().splitlines()[-1] == "[]"

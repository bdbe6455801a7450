import subprocess
import sys

import pytest

import tfscissor


@pytest.mark.parametrize("name", tfscissor.__all__)
def test_every_public_name_resolves(name):
    assert getattr(tfscissor, name) is not None


def test_unknown_name():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tfscissor.nope  # noqa: B018


def test_import_is_light():
    code = "import sys, tfscissor; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )

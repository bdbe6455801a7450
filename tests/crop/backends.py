"""The host crop's backends as test parameters: the C one runs only where the extension was built."""

import pytest

from tfscissor.deploy.crop_policy import BACKENDS, crop_backend

# setup.py builds the extension only where a C compiler and Python's headers exist (optional=True); elsewhere
# the host crops in numpy alone, and test_the_extension_is_built_where_a_compiler_is fails where it should exist.
needs_c = pytest.mark.skipif(
    crop_backend() != "c",
    reason="the C crop extension is not built here (no C compiler or Python headers at install): numpy alone runs",
)
BACKEND_PARAMS = [pytest.param(b, marks=needs_c) if b == "c" else b for b in BACKENDS]

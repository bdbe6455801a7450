"""Marks that a decorator cannot give."""

import pytest

# test_zoo's module-scoped ``case`` fixture is parametrised by model, and a mark on one of its params marks
# every test of that model. These two take over 5 s on 2 cores (an int8 conversion each) while their models'
# other tests are quick, so they are marked here alone.
SLOW = {
    "tests/trim/test_zoo.py::test_trimmed_model_saves_converts_and_runs_on_tflite_micro[resnet]",
    "tests/trim/test_zoo.py::test_trimmed_model_saves_converts_and_runs_on_tflite_micro[mobilenetv2]",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by mark
def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid in SLOW:
            item.add_marker(pytest.mark.slow)

"""Packages whose public names are imported on first use, so importing the package loads nothing heavy."""

import importlib


def lazy_api(package, api):
    """``__getattr__`` and ``__dir__`` for ``package`` (its name) whose public names are the keys of ``api``
    (name -> the module that defines it)."""

    def __getattr__(name):
        if name not in api:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(api[name]), name)

    def __dir__():
        return sorted({*api, *vars(importlib.import_module(package))})

    return __getattr__, __dir__

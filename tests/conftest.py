"""Shared test configuration.

* puts ``tests/`` on ``sys.path`` so test modules can ``import oracle`` under
  ``--import-mode=importlib`` (tests run against the INSTALLED package);
* tests marked ``@pytest.mark.slow`` are skipped unless a marker expression is given,
  e.g. ``pytest tests -m slow`` (only slow) or ``pytest tests -m "slow or not slow"`` (all).
"""
import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def pytest_collection_modifyitems(config, items):
    if config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

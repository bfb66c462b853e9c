"""Say at the top of a run whether the Ray tests can run, and if not, why."""

from __future__ import annotations

import importlib.util


def pytest_report_header() -> str:
    if importlib.util.find_spec("ray") is None:
        return "ray: not installed: tests/ray/test_ray.py skips; pip install 'reka-nb[ray]'"
    return "ray: installed (tests/ray/test_ray.py starts a local Ray with 2 CPUs)"

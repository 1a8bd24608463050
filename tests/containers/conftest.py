"""tests/containers run only when asked for with ``-m containers`` (``make test-containers``).

They build on four images (minutes of CPU to build the first time) and start six containers,
then replicas: far more than `make test` can spend on CI's 2-core machine in its 90 minutes
next to the rest of the suite. Anywhere else they are reported as skipped, with the reason.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "containers" in str(config.getoption("markexpr", "")):
        return
    skip = pytest.mark.skip(
        reason="container tests run with `make test-containers` (builds the images, Docker)"
    )
    for item in items:
        if "containers" in item.keywords:
            item.add_marker(skip)

"""The whole cluster, four real processes with the embedded models, on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from launcher.cluster import Cluster, ClusterConfig


class RunningCluster:
    def __init__(self, cluster: Cluster, log_path: Path) -> None:
        self.cluster = cluster
        self.log_path = log_path

    def url(self, token: str | None = None) -> str:
        return f"{self.cluster.ws_url}/ws/{token or self.cluster.token()}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCluster]:
    log_path = tmp_path_factory.mktemp("cluster") / "cluster.log"
    with log_path.open("w") as log:
        config = ClusterConfig.on_free_ports(output=log, env={"OTEL_SDK_DISABLED": "true"})
        async with Cluster(config) as running:
            yield RunningCluster(running, log_path)

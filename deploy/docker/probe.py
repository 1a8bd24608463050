"""Health probe and build-time import check for the voice agent's container images.

Copied into every image as /app/probe.py; it needs only the standard library, plus grpcio and
grpcio-health-checking (in every image) for the ``grpc`` probe.

  python probe.py grpc STT_LISTEN 50051   exit 0 when the gRPC health service on the port named
                                          by STT_LISTEN (else 50051) answers SERVING
  python probe.py http GATEWAY_PORT 8000 /health/live
                                          exit 0 when GET 127.0.0.1:PORT/PATH answers 200
  python probe.py imports services.stt    import every module of the packages: run at build
                                          time, so a package missing from the image's
                                          requirements list fails the build, not the start

Docker's HEALTHCHECK and docker-compose use it; Kubernetes uses its own native gRPC and HTTP
probes instead.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import urllib.request


def _port(env_name: str, default: str) -> str:
    value = os.environ.get(env_name, "").strip() or default
    # STT_LISTEN and friends are host:port; GATEWAY_PORT is a bare port.
    return value.rpartition(":")[2] if ":" in value else value


def probe_grpc(env_name: str, default_port: str, timeout_s: float = 3.0) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"127.0.0.1:{_port(env_name, default_port)}"
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError as error:
            print(f"{target}: {error.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{target}: {status}")
    return 0 if status == "SERVING" else 1


def probe_http(env_name: str, default_port: str, path: str, timeout_s: float = 3.0) -> int:
    url = f"http://127.0.0.1:{_port(env_name, default_port)}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            print(f"{url}: {response.status}")
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1


def import_all(packages: list[str]) -> int:
    count = 0
    for name in packages:
        package = importlib.import_module(name)
        count += 1
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(info.name)
            count += 1
    print(f"imported {count} modules of {', '.join(packages)}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "grpc":
        return probe_grpc(argv[1], argv[2])
    if len(argv) >= 4 and argv[0] == "http":
        return probe_http(argv[1], argv[2], argv[3])
    if len(argv) >= 2 and argv[0] == "imports":
        return import_all(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

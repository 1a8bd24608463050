"""``make run``: start the whole cluster on this machine and keep it running until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from launcher.cluster import Cluster, ClusterConfig, ClusterStartError
from voice.settings import Env


async def run(config: ClusterConfig) -> int:
    cluster = Cluster(config)
    print("Starting stt, llm, tts and the gateway (loading models)...", flush=True)
    try:
        await cluster.start()
    except ClusterStartError as error:
        print(f"\n{error}", file=sys.stderr)
        return 1
    token = cluster.token()
    print(
        "\n"
        f"  Voice agent ready.\n"
        f"  Open in a browser:  {cluster.http_url}/?token={token}\n"
        f"  WebSocket:          {cluster.ws_url}/ws/{token}\n"
        f"  From a script:      .venv/bin/python -m tools.client --token {token} question.wav\n"
        f"  Health:             {cluster.http_url}/health\n"
        f"  Press Ctrl-C to stop.\n",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exited = asyncio.create_task(cluster.wait_any_exit())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if exited.done():
        print(f"\n{exited.result()} exited unexpectedly; stopping the rest", file=sys.stderr)
        code = 1
    else:
        exited.cancel()
        print("\nStopping...", flush=True)
    await cluster.stop()
    print("Stopped.", flush=True)
    return code


def main() -> int:
    env = Env()
    parser = argparse.ArgumentParser(description="Run the voice agent cluster on this machine.")
    parser.add_argument("--host", default=env.text("127.0.0.1", "GATEWAY_HOST"))
    parser.add_argument("--port", type=int, default=env.integer(8000, "GATEWAY_PORT"))
    args = parser.parse_args()
    config = ClusterConfig(
        gateway_port=args.port,
        host=args.host,
        token_secret=env.text("", "GATEWAY_TOKEN_SECRET"),
        output=sys.stdout,
    )
    return asyncio.run(run(config))


if __name__ == "__main__":
    raise SystemExit(main())

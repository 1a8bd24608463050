"""llama.cpp's own OpenAI-compatible HTTP server for the peer pipeline (runs in .venv-peer).

``python -m bench.peer.llama --model FILE.gguf --port N`` serves ``/health`` and
``/v1/chat/completions`` on 127.0.0.1:N until it gets SIGTERM or its parent goes away. It is
the server that llama.cpp's ``llama-server`` runs (cpp-httplib and the server core), from the
prebuilt ``xllamacpp`` wheel, which the project also uses in-process; the settings are
llama-server's defaults except the slots and the context per slot, which are the project's
(``LLM_PARALLEL``, ``LLM_CONTEXT_TOKENS``).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time

import xllamacpp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=1, help="slots (sessions at once)")
    parser.add_argument("--ctx", type=int, default=4096, help="context tokens per slot")
    args = parser.parse_args()
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx * args.parallel
    params.verbosity = -1
    parent = os.getppid()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xllamacpp.Server(params)  # serves HTTP on its own threads from here on
    print(f"llama.cpp server on {server.listening_address}", flush=True)
    while not stop.wait(0.5):
        if os.getppid() != parent:  # the peer server died without stopping us
            break
    del server
    time.sleep(0.1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

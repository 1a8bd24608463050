"""Run the gateway: ``python -m gateway``."""

from __future__ import annotations

import sys

from aiohttp import web

from gateway.app import create_app
from gateway.settings import GatewaySettings
from voice.errors import SettingsError
from voice.telemetry import setup_logging, setup_tracing


def main() -> int:
    try:
        settings = GatewaySettings.from_env()
    except SettingsError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.common.log_level)
    provider = setup_tracing("gateway")
    app = create_app(settings)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=lambda _msg: None,
            access_log=None,
            shutdown_timeout=10.0,
        )
    finally:
        if provider is not None:
            provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

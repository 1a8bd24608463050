"""The gateway's HTTP surface: the web client, health, and the WebSocket sessions."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth import TokenVerifier
from gateway.metrics import GatewayMetrics
from gateway.session import Session, new_session_id
from gateway.settings import GatewaySettings
from gateway.transports.browser import BrowserTransport
from gateway.upstream import Upstreams

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SETTINGS = web.AppKey("settings", GatewaySettings)
UPSTREAMS = web.AppKey("upstreams", Upstreams)
VERIFIER = web.AppKey("verifier", TokenVerifier)
SESSIONS = web.AppKey[set[Session]]("sessions")
METRICS = web.AppKey("metrics", GatewayMetrics)


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def live(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health(request: web.Request) -> web.Response:
    """Readiness: every stage answers its gRPC health check with SERVING."""
    upstreams = await request.app[UPSTREAMS].health()
    ready = all(status == "SERVING" for status in upstreams.values())
    body = {
        "status": "ok" if ready else "degraded",
        "sessions": len(request.app[SESSIONS]),
        "upstreams": upstreams,
    }
    return web.json_response(body, status=200 if ready else 503)


def _origin_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or "*" in allowed or origin in allowed


async def websocket(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    identity = app[VERIFIER].verify(request.match_info.get("token", ""))
    if identity is None:
        raise web.HTTPUnauthorized(text="unknown, expired or malformed token\n")
    if not _origin_allowed(request, settings.allowed_origins):
        raise web.HTTPForbidden(text="origin not allowed\n")
    if len(app[SESSIONS]) >= settings.max_sessions:
        raise web.HTTPServiceUnavailable(text="the gateway is at its session limit\n")
    # The session closes frames over max_frame_bytes itself (with 1009 and a reason); the
    # transport limit above it only guards memory against absurd frames.
    ws = web.WebSocketResponse(max_msg_size=settings.max_frame_bytes * 4, heartbeat=20.0)
    await ws.prepare(request)
    session_id = new_session_id()
    transport = BrowserTransport(
        ws,
        input_rate=settings.input_sample_rate,
        output_rate=settings.output_sample_rate,
        max_frame_bytes=settings.max_frame_bytes,
        idle_timeout_s=settings.idle_timeout_s,
        count_error=lambda code: app[METRICS].errors.labels(code).inc(),
        name=session_id,
    )
    session = Session(session_id, transport, app[UPSTREAMS], settings, app[METRICS])
    app[SESSIONS].add(session)
    app[METRICS].sessions.inc()
    log.info("session %s opened for %s (%d open)", session.id, identity.subject, len(app[SESSIONS]))
    try:
        await session.run()
    except Exception:
        log.exception("session %s failed", session.id)
        await session.send_error("internal", "the session failed")
    finally:
        app[SESSIONS].discard(session)
        app[METRICS].sessions.dec()
        if not ws.closed:
            await ws.close()
        log.info("session %s closed (%d open)", session.id, len(app[SESSIONS]))
    return ws


async def _connect_upstreams(app: web.Application) -> None:
    app[UPSTREAMS] = Upstreams.connect(app[SETTINGS])


async def _close_upstreams(app: web.Application) -> None:
    await app[UPSTREAMS].close()


async def _drain_sessions(app: web.Application) -> None:
    """On SIGTERM: current turns finish (or time out), then clients get close 1001."""
    sessions: set[Session] = app[SESSIONS]
    if sessions:
        log.info("draining %d session(s)", len(sessions))
        timeout = app[SETTINGS].drain_timeout_s
        await asyncio.gather(*(session.drain(timeout) for session in list(sessions)))


def create_app(settings: GatewaySettings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[VERIFIER] = TokenVerifier(settings.tokens, settings.token_secret)
    app[SESSIONS] = set()
    app[METRICS] = GatewayMetrics()
    app.on_startup.append(_connect_upstreams)
    app.on_shutdown.append(_drain_sessions)
    app.on_cleanup.append(_close_upstreams)
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/ws/{token}", websocket)
    app.router.add_static("/static/", STATIC_DIR)
    return app

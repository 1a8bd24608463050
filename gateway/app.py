"""The gateway's HTTP surface: the web client, health, and the WebSocket sessions."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.admission import AdmissionPolicy, Decision, ReplicaView, decide
from gateway.auth import TokenVerifier
from gateway.metrics import GatewayMetrics
from gateway.phone import (
    CALL_SID_MAX,
    STREAM_PATH,
    VOICE_PATH,
    CallTokens,
    busy_twiml,
    connect_twiml,
    signature_valid,
    stream_url,
)
from gateway.session import Session, new_session_id
from gateway.settings import GatewaySettings
from gateway.transports.base import Transport
from gateway.transports.browser import BrowserTransport
from gateway.transports.twilio import TwilioTransport
from gateway.upstream import LoadMonitor, Upstreams

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SETTINGS = web.AppKey("settings", GatewaySettings)
UPSTREAMS = web.AppKey("upstreams", Upstreams)
VERIFIER = web.AppKey("verifier", TokenVerifier)
SESSIONS = web.AppKey[set[Session]]("sessions")
METRICS = web.AppKey("metrics", GatewayMetrics)
CALL_TOKENS = web.AppKey("call_tokens", CallTokens)
MONITOR = web.AppKey("load_monitor", asyncio.Task[None])
HOLD_LINE = web.AppKey("hold_line", asyncio.Lock)
# How often a held session checks whether it can start.
HOLD_CHECK_S = 0.5
# A phone stream must send its start (with the call's token) within this long.
STREAM_START_TIMEOUT_S = 10.0


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


def _policy(settings: GatewaySettings) -> AdmissionPolicy:
    return AdmissionPolicy(
        mode=settings.admission,
        budget_ms=settings.latency_budget_ms,
        max_sessions=settings.max_sessions,
        overhead_ms=settings.admission_overhead_ms,
        retry_after_s=settings.retry_after_s,
    )


def admission(app: web.Application) -> Decision:
    """Whether one more session may start now (gateway/admission.py), from the last loads."""
    views: dict[str, list[ReplicaView]] = app[UPSTREAMS].views()
    decision = decide(_policy(app[SETTINGS]), len(app[SESSIONS]), views)
    app[METRICS].predicted_latency.set(decision.predicted_ms / 1000)
    return decision


def refusal(decision: Decision) -> web.Response:
    """503 with Retry-After, before any WebSocket upgrade (counted by load tests as refused)."""
    log.info("refused a new session: %s", decision.reason)
    body = {
        "error": decision.outcome,
        "message": decision.reason,
        "retry_after_s": decision.retry_after_s,
        "predicted_ms": round(decision.predicted_ms),
    }
    return web.json_response(body, status=503, headers={"Retry-After": str(decision.retry_after_s)})


async def hold_until_admitted(app: web.Application, transport: Transport, first: Decision) -> bool:
    """GATEWAY_ADMISSION=hold: tell the client to hold, and wait in line until the session can
    start (True) or the hold times out (False: the client is told; the caller closes)."""
    settings = app[SETTINGS]
    app[METRICS].admissions.labels("held").inc()
    await transport.send_event("hold", retry_after_s=first.retry_after_s, message=first.reason)
    try:
        async with asyncio.timeout(settings.hold_timeout_s), app[HOLD_LINE]:
            while True:  # admission changes with the polled loads: checked, not awaited
                if admission(app).admit:
                    return True
                await asyncio.sleep(HOLD_CHECK_S)
    except TimeoutError:
        pass
    app[METRICS].admissions.labels("hold_timeout").inc()
    await transport.send_event(
        "error", code="busy", message="the agent is still busy; please try again later"
    )
    return False


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
    decision = admission(app)
    if not decision.admit and settings.admission != "hold":
        app[METRICS].admissions.labels(decision.outcome).inc()
        return refusal(decision)
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
    if not decision.admit and not await hold_until_admitted(app, transport, decision):
        await ws.close(code=1013, message=b"the agent is busy; try again later")
        return ws
    await _run_session(app, session_id, transport, ws, identity.subject)
    return ws


async def twilio_voice(request: web.Request) -> web.Response:
    """Twilio's webhook for an incoming call: TwiML connecting it to the media stream."""
    app = request.app
    settings = app[SETTINGS]
    form = await request.post()
    params: dict[str, list[str]] = {}
    for name, value in form.items():
        if isinstance(value, str):
            params.setdefault(name, []).append(value)
    url = settings.public_url + request.path_qs
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature_valid(settings.twilio_auth_token, url, params, signature):
        log.warning("refused a %s request whose Twilio signature does not verify", VOICE_PATH)
        app[METRICS].errors.labels("bad_signature").inc()
        raise web.HTTPForbidden(text="the X-Twilio-Signature does not verify\n")
    call_sid = (params.get("CallSid") or [""])[0]
    if not call_sid or len(call_sid) > CALL_SID_MAX:
        raise web.HTTPBadRequest(text="CallSid is missing\n")
    decision = admission(app)
    if not decision.admit:
        app[METRICS].admissions.labels(decision.outcome).inc()
        log.info("call %s: refused (%s)", call_sid, decision.reason)
        message = "Sorry, all our agents are busy right now. Please call again in a few minutes."
        return web.Response(text=busy_twiml(message), content_type="text/xml")
    token = app[CALL_TOKENS].issue(call_sid)
    log.info("call %s: answering with a media stream", call_sid)
    twiml = connect_twiml(stream_url(settings.public_url), token)
    return web.Response(text=twiml, content_type="text/xml")


async def twilio_stream(request: web.Request) -> web.StreamResponse:
    """Twilio's media stream for a call answered by ``twilio_voice`` (its start carries the
    call's token: the transport refuses the stream without it)."""
    app = request.app
    settings = app[SETTINGS]
    if settings.max_sessions and len(app[SESSIONS]) >= settings.max_sessions:
        raise web.HTTPServiceUnavailable(text="the gateway is at its session limit\n")
    # Media messages are ~300 bytes; no heartbeat: a live stream sends media every 20 ms.
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    await ws.prepare(request)
    session_id = new_session_id()
    transport = TwilioTransport(
        ws,
        output_rate=settings.output_sample_rate,
        verify_start=app[CALL_TOKENS].accepts,
        idle_timeout_s=settings.idle_timeout_s,
        start_timeout_s=STREAM_START_TIMEOUT_S,
        count_error=lambda code: app[METRICS].errors.labels(code).inc(),
        name=session_id,
    )
    await _run_session(app, session_id, transport, ws, "phone")
    return ws


async def _run_session(
    app: web.Application,
    session_id: str,
    transport: Transport,
    ws: web.WebSocketResponse,
    subject: str,
) -> None:
    session = Session(session_id, transport, app[UPSTREAMS], app[SETTINGS], app[METRICS])
    app[SESSIONS].add(session)
    app[METRICS].admissions.labels("admitted").inc()
    app[METRICS].sessions.inc()
    log.info("session %s opened for %s (%d open)", session.id, subject, len(app[SESSIONS]))
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


async def _connect_upstreams(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[UPSTREAMS] = Upstreams.connect(settings)
    app[HOLD_LINE] = asyncio.Lock()
    monitor = LoadMonitor(
        app[UPSTREAMS],
        poll_s=settings.load_poll_ms / 1000,
        resolve_s=settings.resolve_interval_s,
    )
    app[MONITOR] = asyncio.create_task(monitor.run(), name="load-monitor")


async def _close_upstreams(app: web.Application) -> None:
    app[MONITOR].cancel()
    await asyncio.gather(app[MONITOR], return_exceptions=True)
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
    if settings.twilio_auth_token:
        app[CALL_TOKENS] = CallTokens(settings.twilio_auth_token)
        app.router.add_post(VOICE_PATH, twilio_voice)
        app.router.add_get(STREAM_PATH, twilio_stream)
    return app

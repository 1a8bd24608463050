"""The gateway's settings (``GATEWAY_*``), read once from the environment at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.agent_file import AgentFileError, agent_voice
from gateway.turns.barge_in import DEFAULT_BACKCHANNELS, DEFAULT_INTERRUPTS
from gateway.turns.check_in import DEFAULT_CHECK_IN_TEXT
from gateway.turns.policy import END_OF_TURN_RULES
from voice.settings import CommonSettings, Env


@dataclass(frozen=True)
class GatewaySettings:
    common: CommonSettings
    host: str
    port: int
    stt_address: str
    llm_address: str
    tts_address: str
    tokens: tuple[str, ...]
    token_secret: str
    allowed_origins: tuple[str, ...]
    input_sample_rate: int
    output_sample_rate: int
    max_sessions: int
    max_frame_bytes: int
    pipeline: str
    barge_in_ms: int
    early_thinking: bool
    end_of_turn: str
    end_of_turn_max_ms: int
    end_of_turn_short_ms: int
    end_of_turn_threshold: float
    idle_timeout_s: float
    turn_timeout_s: float
    drain_timeout_s: float
    # Phone calls (gateway/phone.py): off without the auth token.
    twilio_auth_token: str = ""
    public_url: str = ""
    # The agent file's voice (gateway/agent_file.py), for sessions that ask for none.
    agent_voice: str = ""
    # Admission and replica choice from the stages' load reports (gateway/admission.py).
    admission: str = "off"
    latency_budget_ms: int = 800
    admission_overhead_ms: int = 100
    retry_after_s: int = 5
    hold_timeout_s: float = 30.0
    load_poll_ms: int = 500
    resolve_interval_s: float = 10.0
    # Server-side echo cancelling of the agent's own voice in the microphone (gateway/echo.py).
    echo_cancel: bool = False
    # Barge-in like a person, paced output and the check-in (gateway/turns/barge_in.py,
    # playout.py, check_in.py).
    playout_lead_ms: int = 250
    barge_in_duck_gain: float = 0.25
    barge_in_max_backchannel_ms: int = 800
    backchannels: tuple[str, ...] = DEFAULT_BACKCHANNELS
    interrupt_words: tuple[str, ...] = DEFAULT_INTERRUPTS
    barge_in_echo_overlap: float = 0.6
    check_in_ms: int = 8000
    check_in_text: str = DEFAULT_CHECK_IN_TEXT
    check_in_then: str = "keep"

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = Env(environ)
        settings = GatewaySettings(
            common=CommonSettings.read(env),
            host=env.text("127.0.0.1", "GATEWAY_HOST"),
            port=env.integer(8000, "GATEWAY_PORT", low=0, high=65535),
            stt_address=env.address("127.0.0.1:50051", "GATEWAY_STT_ADDRESS"),
            llm_address=env.address("127.0.0.1:50052", "GATEWAY_LLM_ADDRESS"),
            tts_address=env.address("127.0.0.1:50053", "GATEWAY_TTS_ADDRESS"),
            tokens=env.items((), "GATEWAY_TOKENS"),
            token_secret=env.text("", "GATEWAY_TOKEN_SECRET"),
            allowed_origins=env.items(("*",), "GATEWAY_ALLOWED_ORIGINS"),
            input_sample_rate=env.integer(16000, "GATEWAY_INPUT_SAMPLE_RATE", low=8000, high=48000),
            output_sample_rate=env.integer(
                24000, "GATEWAY_OUTPUT_SAMPLE_RATE", low=8000, high=48000
            ),
            max_sessions=env.integer(32, "GATEWAY_MAX_SESSIONS", low=0, high=10000),
            max_frame_bytes=env.integer(65536, "GATEWAY_MAX_FRAME_BYTES", low=1024, high=1 << 22),
            pipeline=env.text("streaming", "GATEWAY_PIPELINE", choices=("streaming", "serial")),
            barge_in_ms=env.integer(300, "GATEWAY_BARGE_IN_MS", low=0, high=5000),
            early_thinking=env.flag(True, "GATEWAY_EARLY_THINKING"),
            end_of_turn=env.text("silence", "GATEWAY_END_OF_TURN", choices=END_OF_TURN_RULES),
            end_of_turn_max_ms=env.integer(1000, "GATEWAY_END_OF_TURN_MAX_MS", low=200, high=10000),
            end_of_turn_short_ms=env.integer(160, "GATEWAY_END_OF_TURN_SHORT_MS", low=0, high=5000),
            end_of_turn_threshold=env.number(
                0.2, "GATEWAY_END_OF_TURN_THRESHOLD", low=0.0, high=1.0
            ),
            idle_timeout_s=env.number(120.0, "GATEWAY_IDLE_TIMEOUT_S", low=1.0, high=86400.0),
            turn_timeout_s=env.number(30.0, "GATEWAY_TURN_TIMEOUT_S", low=1.0, high=600.0),
            drain_timeout_s=env.number(10.0, "GATEWAY_DRAIN_TIMEOUT_S", low=0.0, high=600.0),
            twilio_auth_token=env.text("", "TWILIO_AUTH_TOKEN"),
            public_url=env.text("", "GATEWAY_PUBLIC_URL").rstrip("/"),
            agent_voice=_agent_voice(env),
            echo_cancel=env.text("off", "GATEWAY_ECHO_CANCEL", choices=("on", "off")) == "on",
            playout_lead_ms=env.integer(250, "GATEWAY_PLAYOUT_LEAD_MS", low=40, high=10000),
            barge_in_duck_gain=env.number(0.25, "GATEWAY_BARGE_IN_DUCK_GAIN", low=0.0, high=1.0),
            barge_in_max_backchannel_ms=env.integer(
                800, "GATEWAY_BARGE_IN_MAX_BACKCHANNEL_MS", low=0, high=10000
            ),
            backchannels=env.items(DEFAULT_BACKCHANNELS, "GATEWAY_BACKCHANNELS"),
            interrupt_words=env.items(DEFAULT_INTERRUPTS, "GATEWAY_INTERRUPT_WORDS"),
            barge_in_echo_overlap=env.number(
                0.6, "GATEWAY_BARGE_IN_ECHO_OVERLAP", low=0.0, high=1.0
            ),
            check_in_ms=env.integer(8000, "GATEWAY_CHECK_IN_MS", low=0, high=3600000),
            check_in_text=env.text(DEFAULT_CHECK_IN_TEXT, "GATEWAY_CHECK_IN_TEXT"),
            check_in_then=env.text("keep", "GATEWAY_CHECK_IN_THEN", choices=("keep", "end")),
            admission=env.text("off", "GATEWAY_ADMISSION", choices=("off", "refuse", "hold")),
            latency_budget_ms=env.integer(800, "GATEWAY_LATENCY_BUDGET_MS", low=50, high=60000),
            admission_overhead_ms=env.integer(
                100, "GATEWAY_ADMISSION_OVERHEAD_MS", low=0, high=10000
            ),
            retry_after_s=env.integer(5, "GATEWAY_RETRY_AFTER_S", low=1, high=3600),
            hold_timeout_s=env.number(30.0, "GATEWAY_HOLD_TIMEOUT_S", low=1.0, high=3600.0),
            load_poll_ms=env.integer(500, "GATEWAY_LOAD_POLL_MS", low=50, high=60000),
            resolve_interval_s=env.number(10.0, "GATEWAY_RESOLVE_INTERVAL_S", low=1.0, high=3600.0),
        )
        if settings.twilio_auth_token and not settings.public_url:
            env.problem(
                "GATEWAY_PUBLIC_URL must be set with TWILIO_AUTH_TOKEN: Twilio's signatures are "
                "checked against it (e.g. https://agent.example.com)"
            )
        if settings.public_url:
            scheme, _, rest = settings.public_url.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest or "?" in rest:
                env.problem(
                    "GATEWAY_PUBLIC_URL must be http:// or https:// and a host, with no path "
                    f"(got {settings.public_url!r})"
                )
        if not settings.tokens and not settings.token_secret:
            env.problem("set GATEWAY_TOKENS or GATEWAY_TOKEN_SECRET: every client needs a token")
        if settings.end_of_turn_short_ms >= settings.end_of_turn_max_ms:
            env.problem("GATEWAY_END_OF_TURN_SHORT_MS must be below GATEWAY_END_OF_TURN_MAX_MS")
        if settings.token_secret and len(settings.token_secret) < 16:
            env.problem("GATEWAY_TOKEN_SECRET must be at least 16 characters")
        env.check("gateway")
        return settings


def _agent_voice(env: Env) -> str:
    try:
        return agent_voice(env.text("", "LLM_AGENT_FILE"))
    except AgentFileError as error:
        env.problem(str(error))
        return ""

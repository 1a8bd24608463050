"""Admission and replica choice (gateway/admission.py), and the stage's load tracker."""

from __future__ import annotations

import pytest

from gateway.admission import (
    PRIOR_MS,
    AdmissionPolicy,
    ReplicaView,
    StageLoad,
    base_ms,
    choose_replica,
    decide,
    predict_ms,
    predicted_stage_ms,
)
from gateway.settings import GatewaySettings
from voice.errors import SettingsError
from voice.load import LoadTracker, p90

pytestmark = pytest.mark.unit


def load(stage: str = "tts", **fields: object) -> StageLoad:
    values: dict[str, object] = {"recent_p90_ms": 200.0, "recent_samples": 10}
    values.update(fields)
    return StageLoad(stage=stage, **values)  # type: ignore[arg-type]


def stages(active: int, p90_ms: float = 200.0) -> dict[str, list[ReplicaView]]:
    return {
        stage: [
            ReplicaView(
                f"{stage}:1",
                load(stage, active_streams=active, recent_p90_ms=p90_ms, recent_streams=1.0),
            )
        ]
        for stage in ("stt", "llm", "tts")
    }


def test_the_base_time_is_brought_back_to_one_session_per_worker() -> None:
    assert base_ms(load(recent_p90_ms=600, recent_streams=3, workers=1)) == 200
    assert base_ms(load(recent_p90_ms=600, recent_streams=3, workers=3)) == 600
    assert base_ms(load(recent_samples=0)) == PRIOR_MS["tts"]


def test_one_more_session_stretches_a_stage_by_its_share_of_the_workers() -> None:
    idle = load(recent_p90_ms=200, recent_streams=1)
    assert predicted_stage_ms(idle) == 200
    assert predicted_stage_ms(load(active_streams=1, recent_streams=1)) == 400
    assert predicted_stage_ms(load(active_streams=1, queue_depth=2, recent_streams=1)) == 800
    assert predicted_stage_ms(load(active_streams=3, workers=4, recent_streams=1)) == 200
    # the gateway's own streams count before a report shows them
    assert predicted_stage_ms(idle, assigned=2) == 600


def test_admitted_while_the_prediction_is_within_the_budget() -> None:
    policy = AdmissionPolicy(mode="refuse", budget_ms=800, overhead_ms=100)
    decision = decide(policy, 1, stages(active=0, p90_ms=100))
    assert decision.admit and decision.outcome == "admitted"
    assert decision.predicted_ms == 100 + 3 * 200  # the open session is counted on each stage


def test_refused_over_the_budget_with_a_reason_and_a_retry_after() -> None:
    policy = AdmissionPolicy(mode="refuse", budget_ms=800, overhead_ms=100, retry_after_s=7)
    decision = decide(policy, 2, stages(active=2))
    assert not decision.admit
    assert decision.outcome == "over_budget"
    assert decision.predicted_ms == 100 + 3 * 600
    assert "1900 ms" in decision.reason and "800 ms" in decision.reason
    assert decision.retry_after_s == 7


def test_a_lone_session_is_always_admitted_and_off_admits_everything() -> None:
    slow = stages(active=0, p90_ms=5000)
    assert decide(AdmissionPolicy(mode="refuse", budget_ms=800), 0, slow).admit
    assert not decide(AdmissionPolicy(mode="refuse", budget_ms=800), 1, slow).admit
    assert decide(AdmissionPolicy(mode="off", budget_ms=800), 5, slow).admit


def test_the_hard_cap_refuses_whatever_the_prediction() -> None:
    policy = AdmissionPolicy(mode="off", max_sessions=1)
    decision = decide(policy, 1, stages(active=0, p90_ms=1))
    assert not decision.admit and decision.outcome == "at_capacity"
    assert decide(AdmissionPolicy(mode="off", max_sessions=0), 1000, {}).admit


def test_no_reports_yet_predicts_from_the_priors() -> None:
    assert predict_ms({}, 100) == 100 + sum(PRIOR_MS.values())


def test_the_least_loaded_replica_is_chosen() -> None:
    busy = ReplicaView("a:1", load(active_streams=3, recent_streams=1))
    light = ReplicaView("b:1", load(active_streams=1, recent_streams=1))
    chosen = choose_replica([busy, light])
    assert chosen is not None and chosen.address == "b:1"
    # the gateway's own fresh streams make a replica busier before its next report
    assert choose_replica([busy, ReplicaView("b:1", light.load, assigned=5)]) == busy


def test_draining_full_and_unreachable_replicas_get_no_new_sessions() -> None:
    draining = ReplicaView("a:1", load(draining=True))
    full = ReplicaView("b:1", load(active_streams=4, max_streams=4))
    dead = ReplicaView("c:1", None, reachable=False)
    assert choose_replica([draining, full, dead]) is None
    busy_but_open = ReplicaView("d:1", load(active_streams=30))
    assert choose_replica([draining, full, dead, busy_but_open]) == busy_but_open
    unreported = ReplicaView("e:1", None)
    assert choose_replica([draining, unreported]) == unreported


def test_the_tracker_reports_its_recent_window() -> None:
    now = [0.0]
    streams = [1]
    tracker = LoadTracker("llm", workers=2, active_streams=lambda: streams[0], clock=lambda: now[0])
    for ms in (100, 200, 300, 400, 500, 600, 700, 800, 900, 1000):
        tracker.record(ms)
    streams[0] = 3
    report = tracker.report()
    assert report.stage == "llm" and report.workers == 2 and report.active_streams == 3
    assert report.recent_samples == 10 and report.recent_p90_ms == 900
    assert report.recent_streams == 1.0
    assert 100 < report.recent_ewma_ms < 1000
    now[0] = 120.0  # the window is only recent work
    assert tracker.report().recent_samples == 0
    assert tracker.report().recent_p90_ms == 0


def test_pending_work_beyond_the_workers_is_the_queue() -> None:
    tracker = LoadTracker("tts", workers=1)
    works = [tracker.begin() for _ in range(3)]
    assert tracker.report().queue_depth == 2
    works[0].answered()
    works[0].answered()  # once only
    works[1].abandon()
    assert tracker.report().queue_depth == 0
    assert tracker.report().recent_samples == 1
    works[2].on_done(None)
    assert tracker._waiting == 0


def test_p90_by_nearest_rank() -> None:
    assert p90([]) == 0
    assert p90([5.0]) == 5
    assert p90([float(v) for v in range(1, 21)]) == 18


def env(**values: str) -> dict[str, str]:
    return {"GATEWAY_TOKENS": "t", **values}


def test_admission_settings() -> None:
    settings = GatewaySettings.from_env(env())
    assert settings.admission == "off" and settings.latency_budget_ms == 800
    assert settings.load_poll_ms == 500
    assert GatewaySettings.from_env(env(GATEWAY_MAX_SESSIONS="0")).max_sessions == 0
    held = GatewaySettings.from_env(env(GATEWAY_ADMISSION="hold", GATEWAY_HOLD_TIMEOUT_S="5"))
    assert held.admission == "hold" and held.hold_timeout_s == 5
    with pytest.raises(SettingsError, match="GATEWAY_ADMISSION"):
        GatewaySettings.from_env(env(GATEWAY_ADMISSION="maybe"))
    with pytest.raises(SettingsError, match="GATEWAY_LATENCY_BUDGET_MS"):
        GatewaySettings.from_env(env(GATEWAY_LATENCY_BUDGET_MS="0"))


async def test_addresses_resolve_to_their_replicas() -> None:
    from gateway.upstream import resolve

    assert await resolve("127.0.0.1:50051") == ["127.0.0.1:50051"]  # make run: as before
    assert await resolve("[::1]:50051") == ["[::1]:50051"]
    assert await resolve("unix:/tmp/stt.sock") == ["unix:/tmp/stt.sock"]
    assert "127.0.0.1:50051" in (await resolve("dns:///localhost:50051") or [])
    assert await resolve("no-such-stage.invalid:50051") is None  # keeps what it had


def test_a_refused_call_is_told_so_in_twiml_and_hung_up() -> None:
    from xml.etree import ElementTree

    from gateway.phone import busy_twiml

    response = ElementTree.fromstring(busy_twiml("All busy <now> & later."))
    assert [child.tag for child in response] == ["Say", "Hangup"]
    assert response[0].text == "All busy <now> & later."

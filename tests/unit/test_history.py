"""History: a token budget trims the oldest turns; the system prompt always stays."""

from __future__ import annotations

import pytest

from services.llm.engine import Message
from services.llm.history import CHARS_PER_TOKEN, History, estimate_tokens

pytestmark = pytest.mark.unit

# 40 characters is 11 estimated tokens.
SYSTEM = "s" * 40


def text(tag: str) -> str:
    return tag + "." * (40 - len(tag))


def test_estimate_is_conservative() -> None:
    assert estimate_tokens("") == 1
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("a" * 40) == 11
    assert estimate_tokens("a" * 4000) >= 4000 // CHARS_PER_TOKEN


def test_first_turn_is_system_then_user() -> None:
    history = History(SYSTEM, budget_tokens=1000)
    assert history.prompt_for("hello") == (Message("system", SYSTEM), Message("user", "hello"))


def test_past_turns_come_in_order_before_the_new_user_text() -> None:
    history = History(SYSTEM, budget_tokens=1000)
    history.record("u1", "a1")
    history.record("u2", "a2")
    assert history.prompt_for("u3") == (
        Message("system", SYSTEM),
        Message("user", "u1"),
        Message("assistant", "a1"),
        Message("user", "u2"),
        Message("assistant", "a2"),
        Message("user", "u3"),
    )


def test_prompt_drops_the_oldest_turns_that_do_not_fit() -> None:
    # system 11 + new user 11 + two past pairs of 22 = 66 > 60: only the newest pair fits.
    history = History(SYSTEM, budget_tokens=60)
    history.turns = [
        (Message("user", text("old")), Message("assistant", text("old reply"))),
        (Message("user", text("new")), Message("assistant", text("new reply"))),
    ]
    prompt = history.prompt_for(text("now"))
    assert [m.content for m in prompt] == [SYSTEM, text("new"), text("new reply"), text("now")]
    assert sum(estimate_tokens(m.content) for m in prompt) <= 60


def test_prompt_never_skips_a_turn_to_fit_an_older_one() -> None:
    history = History(SYSTEM, budget_tokens=60)
    history.turns = [
        (Message("user", "a"), None),
        (Message("user", "b" * 200), Message("assistant", "c")),
    ]
    # The newest pair does not fit: nothing older is taken either, so no gap in the dialogue.
    assert [m.role for m in history.prompt_for("now")] == ["system", "user"]


def test_system_prompt_is_kept_even_over_budget() -> None:
    history = History(SYSTEM * 10, budget_tokens=20)
    history.record("u1", "a1")
    prompt = history.prompt_for("hi")
    assert prompt[0] == Message("system", SYSTEM * 10)
    assert prompt[-1] == Message("user", "hi")
    assert len(prompt) == 2


def test_record_forgets_the_oldest_turns_beyond_the_budget() -> None:
    history = History(SYSTEM, budget_tokens=60)
    for tag in ("t1", "t2", "t3"):
        history.record(text(tag), text(tag + " reply"))
    # Three pairs of 22 tokens are 66 > 60: the first goes.
    assert [user.content for user, _ in history.turns] == [text("t2"), text("t3")]


def test_record_keeps_the_latest_turn_even_if_alone_it_is_over_budget() -> None:
    history = History(SYSTEM, budget_tokens=20)
    history.record("short", "reply")
    history.record("question", "r" * 400)
    assert len(history.turns) == 1
    assert history.turns[0][1] == Message("assistant", "r" * 400)


def test_long_user_text_is_cut_to_half_the_budget() -> None:
    history = History(SYSTEM, budget_tokens=100)
    long_text = "x" * 1000
    user = history.prompt_for(long_text)[-1]
    assert user.content == long_text[: 50 * CHARS_PER_TOKEN]
    history.record(long_text, "ok")
    assert history.turns[-1][0].content == long_text[: 50 * CHARS_PER_TOKEN]


def test_cut_has_a_floor_for_small_budgets() -> None:
    history = History("", budget_tokens=10)
    assert len(history.prompt_for("y" * 500)[-1].content) == 16 * CHARS_PER_TOKEN


def test_text_within_the_limit_is_not_cut() -> None:
    history = History(SYSTEM, budget_tokens=100)
    exact = "z" * (50 * CHARS_PER_TOKEN)
    assert history.prompt_for(exact)[-1].content == exact


def test_interrupted_reply_is_recorded_as_the_text_heard() -> None:
    history = History(SYSTEM, budget_tokens=1000)
    history.record("tell me a story", "Once upon a time")
    prompt = history.prompt_for("go on")
    assert prompt[1:] == (
        Message("user", "tell me a story"),
        Message("assistant", "Once upon a time"),
        Message("user", "go on"),
    )


@pytest.mark.parametrize("heard", ["", "   "])
def test_reply_interrupted_before_any_audio_leaves_no_assistant_message(heard: str) -> None:
    history = History(SYSTEM, budget_tokens=1000)
    history.record("hello?", heard)
    assert history.turns == [(Message("user", "hello?"), None)]
    assert [m.role for m in history.prompt_for("are you there?")] == ["system", "user", "user"]

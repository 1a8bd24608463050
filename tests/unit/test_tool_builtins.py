"""The built-in tools: arithmetic without eval, the time in a zone, the knowledge base."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.llm.tools.builtins import ExpressionError, evaluate, now_text, spoken_number
from services.llm.tools.knowledge import KnowledgeBase, match_query, passages

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("17*23", 391),
        ("2 * (3 + 4)", 14),
        ("250 / 5", 50),
        ("17 times 23", 391),
        ("10 minus 4 plus 1", 7),
        ("2^10", 1024),
        ("-3 + 1,000", 997),
        ("7 % 3", 1),
    ],
)
def test_arithmetic_is_computed(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('x')",
        "a + 1",
        "[1, 2]",
        "1 if 1 else 2",
        "True + 1",
        "9 ** 99999",
        "1 / 0",
        "",
        "1" * 300,
    ],
)
def test_anything_but_arithmetic_is_refused(expression: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression)


def test_results_read_as_numbers() -> None:
    assert spoken_number(50.0) == "50"
    assert spoken_number(1 / 3) == "0.333333"


def test_the_time_is_told_in_the_zone() -> None:
    moment = dt.datetime(2026, 3, 2, 8, 5, tzinfo=dt.UTC)
    from zoneinfo import ZoneInfo

    assert (
        now_text(ZoneInfo("Europe/Paris"), moment)
        == "It is 9:05 AM on Monday, March 2, 2026 (CET)."
    )
    assert now_text(ZoneInfo("UTC"), moment).startswith("It is 8:05 AM on Monday")


def test_passages_keep_their_heading(tmp_path: Path) -> None:
    doc = tmp_path / "shop.md"
    doc.write_text(
        "# Opening hours\n\nWe open at 9.\n\nSundays 11 to 4.\n\n# Returns\n\nWithin 30 days.\n"
    )
    found = passages(doc, tmp_path)
    assert [(p.heading, p.text) for p in found] == [
        ("Opening hours", "We open at 9. Sundays 11 to 4."),
        ("Returns", "Within 30 days."),
    ]


def test_a_question_becomes_a_query_of_its_content_words() -> None:
    assert match_query("When does the shop open on Sunday?") == '"shop"* OR "open"* OR "sunday"*'
    assert match_query("what is it?") == ""


def test_the_knowledge_base_answers_from_the_best_passage(tmp_path: Path) -> None:
    (tmp_path / "hours.md").write_text(
        "# Hours\n\nOn Sundays the bakery opens at 11 and closes at 4.\n"
    )
    (tmp_path / "returns.txt").write_text("Refunds are given within 30 days with a receipt.\n")
    base = KnowledgeBase(tmp_path)
    assert base.search("when do you open on sunday")[0].path == "hours.md"
    assert "30 days" in base.answer("can I get a refund")
    assert "nothing" in base.answer("parking spaces")


def test_the_index_follows_the_folder(tmp_path: Path) -> None:
    base = KnowledgeBase(tmp_path)
    assert base.search("parking") == []
    (tmp_path / "parking.md").write_text("Free parking behind the shop.\n")
    assert base.search("parking")[0].text == "Free parking behind the shop."
    assert base.refresh() is False


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        KnowledgeBase(tmp_path / "nope")

"""A local knowledge base: a folder of Markdown and text files behind a SQLite FTS5 index.

Files are cut into passages (paragraphs joined up to about ``PASSAGE_CHARS``, each under the
heading it sits below), indexed with the ``porter`` tokenizer, and searched by BM25. The
``search_knowledge`` tool answers with the best passages and the file each came from, so the
model can answer from the user's own facts. The index is rebuilt when a file is added, changed
or removed (checked on each search: a stat of the folder's files).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.llm.tools.spec import Tool, ToolSpec

log = logging.getLogger(__name__)

SUFFIXES = (".md", ".markdown", ".txt")
PASSAGE_CHARS = 700
# The share of the question's content words the best passage must hold to be given to the
# model unasked (ToolLoop.prefetch). BM25 scores depend on the folder's size (with one file
# every word is common), this does not: a question that shares one stray word with a passage
# ("end the call" and "call three days ahead") is no question about it.
LOOKUP_MIN_COVERAGE = 0.5
MAX_FILE_BYTES = 2_000_000
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "tell",
        "that",
        "the",
        "their",
        "there",
        "this",
        "to",
        "us",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


@dataclass(frozen=True)
class Passage:
    path: str
    heading: str
    text: str
    # The share of the question's content words the passage holds (stemmed, prefix match).
    coverage: float = 0.0


def passages(path: Path, root: Path) -> list[Passage]:
    """A file cut into passages under their nearest heading."""
    text = path.read_text(encoding="utf-8", errors="replace")
    name = str(path.relative_to(root))
    heading = ""
    found: list[Passage] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            found.append(Passage(name, heading, " ".join(current)))
            current.clear()

    for block in re.split(r"\n\s*\n", text):
        block = " ".join(block.split())
        if not block:
            continue
        if block.startswith("#"):
            flush()
            heading = block.lstrip("#").strip()
            continue
        if current and sum(len(part) for part in current) + len(block) > PASSAGE_CHARS:
            flush()
        current.append(block)
    flush()
    return found


def content_words(question: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", question.lower())
    kept = [w for w in words if w not in STOPWORDS and len(w) > 1 and not w.isdigit()]
    return list(dict.fromkeys(kept))


def match_query(question: str) -> str:
    """An FTS5 query from a spoken question: its content words, any of them (prefix match)."""
    return " OR ".join(f'"{word}"*' for word in content_words(question))


class KnowledgeBase:
    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ValueError(f"knowledge folder {folder} does not exist or is not a folder")
        self.folder = folder
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE passages USING fts5(path UNINDEXED, heading, text, "
            "tokenize='porter unicode61')"
        )
        self._seen: dict[str, tuple[float, int]] = {}
        self.refresh()

    def _files(self) -> dict[str, tuple[float, int]]:
        found: dict[str, tuple[float, int]] = {}
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in SUFFIXES:
                stat = path.stat()
                if stat.st_size <= MAX_FILE_BYTES:
                    found[str(path)] = (stat.st_mtime, stat.st_size)
                else:
                    log.warning("knowledge: %s skipped (over %d bytes)", path, MAX_FILE_BYTES)
        return found

    def refresh(self) -> bool:
        """Rebuild the index if the folder's files changed; True when it did."""
        with self._lock:
            files = self._files()
            if files == self._seen:
                return False
            rows = [
                (p.path, p.heading, p.text)
                for name in files
                for p in passages(Path(name), self.folder)
            ]
            with self._db:
                self._db.execute("DELETE FROM passages")
                self._db.executemany("INSERT INTO passages VALUES (?, ?, ?)", rows)
            self._seen = files
            log.info(
                "knowledge: %d passages from %d files in %s", len(rows), len(files), self.folder
            )
            return True

    def search(self, question: str, limit: int = 2) -> list[Passage]:
        self.refresh()
        query = match_query(question)
        if not query:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT rowid, path, heading, text FROM passages WHERE passages MATCH ? "
                "ORDER BY bm25(passages, 0.0, 2.0, 1.0) LIMIT ?",
                (query, limit),
            ).fetchall()
            words = content_words(question)
            found = []
            for rowid, path, heading, text in rows:
                held = sum(
                    self._db.execute(
                        "SELECT 1 FROM passages WHERE passages MATCH ? AND rowid = ?",
                        (f'"{word}"*', rowid),
                    ).fetchone()
                    is not None
                    for word in words
                )
                found.append(Passage(path, heading, text, held / len(words)))
        return found

    def answer(self, question: str) -> str:
        found = self.search(question)
        if not found:
            return f"The knowledge base has nothing about {question!r}."
        return "\n".join(
            f"From {p.path}{f' ({p.heading})' if p.heading else ''}: {p.text}" for p in found
        )


def knowledge_tool(folder: Path, description: str = "") -> Tool:
    base = KnowledgeBase(folder)

    async def run(arguments: dict[str, Any]) -> str:
        return await asyncio.to_thread(base.answer, str(arguments.get("query", "")))

    async def lookup(words: str) -> str | None:
        found = await asyncio.to_thread(base.search, words)
        if not found or found[0].coverage < LOOKUP_MIN_COVERAGE:
            return None  # a stray shared word is no answer: the model does without
        return base.answer(words)

    spec = ToolSpec(
        "search_knowledge",
        description
        or "Search the business's own documents (opening hours, prices, policies, products, "
        "contacts), e.g. for 'When do you open?' or 'Do you deliver?'.",
        {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look up"}},
            "required": ["query"],
        },
    )
    return Tool(spec, run, timeout_s=2.0, source="builtin", lookup=lookup)

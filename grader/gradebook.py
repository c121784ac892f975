"""The class gradebook: an embedded SQLite file where every grading adds a row and none is lost."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS grades (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    student        TEXT NOT NULL,
    submission     TEXT NOT NULL,
    sha256         TEXT,
    fingerprint    TEXT NOT NULL,   -- submission + rubrics + grader version: unchanged means no regrade
    score          REAL NOT NULL,
    max_score      REAL NOT NULL,
    status         TEXT NOT NULL,   -- graded, or unusable (the file could not be read)
    graded_at      TEXT NOT NULL,
    result         TEXT NOT NULL    -- the results JSON (SPEC schema)
);
CREATE INDEX IF NOT EXISTS grades_student ON grades (student, id);
-- What the course's policy and the TA made of the raw score: a row whenever it changes (who, when).
CREATE TABLE IF NOT EXISTS finals (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    student        TEXT NOT NULL,
    raw_score      REAL NOT NULL,
    max_score      REAL NOT NULL,
    final_score    REAL NOT NULL,
    detail         TEXT NOT NULL,   -- JSON: lateness, adjustments applied, exercise scores after them
    computed_at    TEXT NOT NULL,
    who            TEXT NOT NULL
);
-- Every manual adjustment ever applied: when it first counted and, if deleted from the CSV, when it stopped.
CREATE TABLE IF NOT EXISTS adjustments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    student        TEXT NOT NULL,
    exercise       TEXT NOT NULL,
    change         TEXT NOT NULL,
    comment        TEXT NOT NULL,
    who            TEXT NOT NULL,
    applied_at     TEXT NOT NULL,
    withdrawn_at   TEXT
);
"""


@dataclass(frozen=True)
class Row:
    student: str
    submission: str
    fingerprint: str
    score: float
    max_score: float
    status: str
    result: dict


class Gradebook:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def add(self, student: str, submission: str, sha256: str | None, fingerprint: str, result: dict,
            status: str) -> None:
        """One transaction per grading: after a crash a row is either all there or absent."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO grades (student, submission, sha256, fingerprint, score, max_score, status, graded_at, result)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (student, submission, sha256, fingerprint, float(result.get("score", 0.0)),
                 float(result.get("max_score", 0.0)), status, _now(),
                 json.dumps(result)),
            )
            self._db.execute("COMMIT")

    def latest(self) -> dict[str, Row]:
        """Each student's most recent grading."""
        with self._lock:
            rows = self._db.execute(
                "SELECT student, submission, fingerprint, score, max_score, status, result FROM grades"
                " WHERE id IN (SELECT MAX(id) FROM grades GROUP BY student) ORDER BY student"
            ).fetchall()
        return {r[0]: Row(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows}

    def history(self, student: str) -> list[tuple[str, float, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT graded_at, score, fingerprint FROM grades WHERE student = ? ORDER BY id", (student,)
            ).fetchall()

    def record_final(self, student: str, raw: float, max_score: float, final: float, detail: dict, who: str) -> bool:
        """Adds a row when the student's final score or its breakdown changed; True if it did."""
        text = json.dumps(detail, sort_keys=True)
        with self._lock:
            last = self._db.execute("SELECT raw_score, max_score, final_score, detail FROM finals WHERE student = ?"
                                    " ORDER BY id DESC LIMIT 1", (student,)).fetchone()
            if last == (raw, max_score, final, text):
                return False
            self._db.execute("INSERT INTO finals (student, raw_score, max_score, final_score, detail, computed_at, who)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)", (student, raw, max_score, final, text, _now(), who))
            return True

    def final_history(self, student: str) -> list[tuple[str, float, float, str]]:
        with self._lock:
            return self._db.execute("SELECT computed_at, raw_score, final_score, who FROM finals WHERE student = ?"
                                    " ORDER BY id", (student,)).fetchall()

    def sync_adjustments(self, adjustments) -> None:
        """The CSV's rows as the history of adjustments: new ones start now, deleted ones are withdrawn now."""
        keys = {(a.student, a.exercise, a.change, a.comment, a.who) for a in adjustments}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            active = self._db.execute("SELECT id, student, exercise, change, comment, who FROM adjustments"
                                      " WHERE withdrawn_at IS NULL").fetchall()
            now = _now()
            for row in active:
                if tuple(row[1:]) not in keys:
                    self._db.execute("UPDATE adjustments SET withdrawn_at = ? WHERE id = ?", (now, row[0]))
            known = {tuple(row[1:]) for row in active}
            for key in sorted(keys - known):
                self._db.execute("INSERT INTO adjustments (student, exercise, change, comment, who, applied_at)"
                                 " VALUES (?, ?, ?, ?, ?, ?)", (*key, now))
            self._db.execute("COMMIT")

    def adjustment_history(self, student: str) -> list[tuple]:
        with self._lock:
            return self._db.execute("SELECT exercise, change, comment, who, applied_at, withdrawn_at FROM adjustments"
                                    " WHERE student = ? ORDER BY id", (student,)).fetchall()

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()

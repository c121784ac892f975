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
                 float(result.get("max_score", 0.0)), status, datetime.now(timezone.utc).isoformat(),
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

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

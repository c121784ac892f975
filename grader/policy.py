"""The course's late policy: due date, penalty, extensions — applied to raw scores, never to grading.

One YAML file (`rubrics/policy.yml` beside the assignment's YAML, or `grader grade --policy FILE`):

    due: 2026-11-30 23:59          # a zone in the value (+01:00) or in `timezone`
    timezone: Europe/Berlin
    zip_timezone: UTC              # the zone the LMS stamps its zip entries in (default: `timezone`)
    late:
      per: day                     # or hour; every started period counts
      rate: 0.1                    # share of the earned score deducted per period
      cap: 0.5                     # at most this share is ever deducted
      floor: 0.2                   # the penalty never takes a score below floor x max (a lower raw score stays)
      grace_minutes: 5
    extensions:
      "4711": 2026-12-02 23:59     # a new due date for this student id
      "4712": {hours: 48}          # or extra hours
    canvas: {assignment: Intro to PyTorch, assignment_id: 1234}

The penalty is recomputed on every run from the cached raw result, so moving a deadline never regrades.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .assignment import _only
from .errors import ConfigError

POLICY_FILES = ("policy.yml", "policy.yaml")
TOP_KEYS = {"due", "timezone", "zip_timezone", "late", "extensions", "canvas"}
LATE_KEYS = {"per", "rate", "cap", "floor", "grace_minutes"}
PERIOD_HOURS = {"hour": 1.0, "day": 24.0}

NO_TIME_NOTE = "no submission time known: no late penalty applied"
LATE_FLAG_NOTE = "Canvas marks this submission LATE but its {source} ({when}) is before the due date; no penalty"
ON_TIME_FLAG_NOTE = ("Canvas does not mark this submission LATE but its {source} ({when}) is {hours:g} h after the due "
                     "date; penalty applied (if Canvas granted an extension, add it to the policy's `extensions`)")


@dataclass(frozen=True)
class Lateness:
    """How late one submission was and what it costs; all of it goes into the gradebook."""

    due: str
    submitted_at: str | None
    time_source: str
    hours_late: float
    credit: float  # the share of the score kept, 1.0 when on time
    extension: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    source: str
    due: datetime | None = None
    zone: ZoneInfo | timezone = timezone.utc
    per: str = "day"
    rate: float = 0.0
    cap: float = 1.0
    floor: float = 0.0
    grace: timedelta = timedelta(0)
    extensions: dict = field(default_factory=dict)  # student -> datetime | timedelta
    canvas: dict = field(default_factory=dict)
    digest: str = ""
    zip_zone: ZoneInfo | timezone | None = None  # None: `zone`

    def due_for(self, student: str) -> tuple[datetime | None, str]:
        ext = self.extensions.get(student)
        if ext is None or self.due is None:
            return self.due, ""
        if isinstance(ext, timedelta):
            return self.due + ext, f"extension of {ext.total_seconds() / 3600:g} h"
        return ext, f"extension to {ext.isoformat()}"

    def lateness(self, student: str, submitted_at: datetime | None, time_source: str,
                 late_flag: bool | None = None) -> Lateness:
        due, extension = self.due_for(student)
        if due is None:
            return Lateness("", _iso(submitted_at), time_source, 0.0, 1.0, extension)
        if submitted_at is None:
            return Lateness(due.isoformat(), None, time_source, 0.0, 1.0, extension, (NO_TIME_NOTE,))
        if submitted_at.tzinfo is None:  # a zip entry's time has no zone: read in the one the policy names
            zone = self.zip_zone or self.zone
            submitted_at = submitted_at.replace(tzinfo=zone)
            time_source = f"{time_source}, read as {zone}"
        late = submitted_at - due - self.grace
        hours = max(0.0, late.total_seconds() / 3600)
        notes = []
        if late_flag and hours == 0:
            notes.append(LATE_FLAG_NOTE.format(source=time_source, when=submitted_at.isoformat()))
        elif late_flag is False and hours > 0:
            notes.append(ON_TIME_FLAG_NOTE.format(source=time_source, when=submitted_at.isoformat(), hours=round(hours, 2)))
        periods = math.ceil(hours / PERIOD_HOURS[self.per]) if hours > 0 else 0
        credit = 1.0 - min(self.cap, self.rate * periods)
        return Lateness(due.isoformat(), submitted_at.isoformat(), time_source, round(hours, 2), credit, extension,
                        tuple(notes))

    def apply(self, score: float, max_score: float, lateness: Lateness) -> float:
        """The score after the late penalty: never below floor x max, unless the raw score already was."""
        if lateness.credit >= 1.0:
            return score
        return max(score * lateness.credit, min(score, self.floor * max_score))


NO_POLICY = Policy(source="")


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def find_policy(rubrics_dir: Path, explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not Path(explicit).is_file():
            raise ConfigError(f"{explicit}: no such policy file")
        return Path(explicit)
    for name in POLICY_FILES:
        if (Path(rubrics_dir) / name).is_file():
            return Path(rubrics_dir) / name
    return None


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return NO_POLICY
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the course policy: {e}") from None

    def bad(where: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {where}: {problem}", "see the policy example in grader/policy.py or the README")

    _only(raw, TOP_KEYS, "top level", bad)
    zone, zip_zone = _zone(raw, "timezone", bad), _zone(raw, "zip_timezone", bad)
    due = _when(raw.get("due"), zone, "due", bad) if raw.get("due") is not None else None
    late = raw.get("late") or {}
    _only(late, LATE_KEYS, "late", bad)
    per = str(late.get("per", "day"))
    if per not in PERIOD_HOURS:
        raise bad("late.per", f"'{per}' is not one of hour, day")
    numbers = {}
    for key, default in (("rate", 0.0), ("cap", 1.0), ("floor", 0.0)):
        value = late.get(key, default)
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise bad(f"late.{key}", f"{value!r} is not a share between 0 and 1")
        numbers[key] = float(value)
    grace = late.get("grace_minutes", 0)
    if not isinstance(grace, (int, float)) or grace < 0:
        raise bad("late.grace_minutes", f"{grace!r} is not a number of minutes >= 0")
    extensions = {}
    for student, ext in (raw.get("extensions") or {}).items():
        where = f"extensions.{student}"
        if isinstance(ext, dict):
            _only(ext, {"hours", "due"}, where, bad)
            if "hours" in ext:
                if not isinstance(ext["hours"], (int, float)):
                    raise bad(where, f"hours {ext['hours']!r} is not a number")
                extensions[str(student)] = timedelta(hours=float(ext["hours"]))
            else:
                extensions[str(student)] = _when(ext.get("due"), zone, where, bad)
        else:
            extensions[str(student)] = _when(ext, zone, where, bad)
    if extensions and due is None:
        raise bad("extensions", "extensions need a `due` date to extend")
    canvas = raw.get("canvas") or {}
    _only(canvas, {"assignment", "assignment_id"}, "canvas", bad)
    digest = hashlib.sha256(json.dumps(raw, default=str, sort_keys=True).encode()).hexdigest()[:12]
    return Policy(str(path), due, zone or (due.tzinfo if due else timezone.utc), per, numbers["rate"], numbers["cap"],
                  numbers["floor"], timedelta(minutes=float(grace)), extensions, dict(canvas), digest, zip_zone)


def _zone(raw: dict, key: str, bad):
    name = raw.get(key)
    try:
        return ZoneInfo(str(name)) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        raise bad(key, f"unknown time zone '{name}' (use an IANA name such as Europe/Berlin)") from None


def _when(value, zone, where: str, bad) -> datetime:
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise bad(where, f"'{value}' is not a date and time like 2026-11-30 23:59 or 2026-11-30T23:59+01:00") from None
    if when.tzinfo is None:
        if zone is None:
            raise bad(where, f"'{value}' has no time zone: add one (+01:00) or set `timezone`")
        when = when.replace(tzinfo=zone)
    return when


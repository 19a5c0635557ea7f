"""Log output: twistd's text lines, or one flat JSON object per line.

Every log call in the gateway is a twisted.logger event whose keyword fields
(message_id = our id, upstream_id = LINK's, account, connector, ...) are kept
as fields, not only formatted into the text. With `log_format = "json"` those
fields become keys of one JSON object per line, next to `time` (UTC, ISO 8601),
`level`, `namespace` and `message` (the formatted text), which journald stores
as is and Loki's `| json` turns into labels or filters without a regex.

How it gets installed under twistd: twistd builds its log observer after the
plugin's makeService and asks the application for an `ILogObserver` component
first, the hook .tac files use. makeService returns a `TopService`, which sets
that component when twistd adds it to the application, so the config alone
chooses the format. `twistd --logger gateway.logs.json_observer` does the same
from the command line (and wins over the config, as --logger always does).

Secrets: a field whose name says password, secret, token or authorization is
dropped, whatever logged it.

Volume: `[logging] level` drops events below it (debug by default is not
written); SIGHUP changes it (`LevelFilter`). Events that a client can cause
at will (a refused PDU, a refused bind, a report for an unknown message) go
through `Repeats`, which lets the first of a kind through and then one line
per interval with how many were left out, so that no client can fill the disk
through the log.
"""

from __future__ import annotations

import json
import math
import re
import signal
import sys
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from typing import IO, Any, cast

from twisted.application.service import MultiService
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from twisted.python.components import Componentized
from twisted.python.logfile import LogFile

_SECRET = re.compile(
    r"(^|_)(pass|pw)($|_)|passw(or)?d|passphrase|secret|token|authori[sz]ation|credential", re.I
)
# Keys that twisted.python.log (legacy) events always have, already reflected in the
# formatted text or in the fixed keys; only dropped from such events.
_LEGACY = frozenset(
    ("format", "message", "isError", "system", "time", "why", "failure", "printed", "logLevel")
)
_LEVELS = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warning",  # the word journald, Loki and most tools expect
    LogLevel.error: "error",
    LogLevel.critical: "critical",
}
_FIXED = ("time", "level", "namespace", "message")
# A field is a value, not a document: keep one log line readable and bounded.
MAX_FIELD = 2000


def _value(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value  # NaN and infinities are not JSON: they go as text
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD] + "..."


def event_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's own keyword fields, flat and JSON-ready, secrets dropped."""
    fields: dict[str, Any] = {}
    legacy = "isError" in event and isinstance(event.get("message"), tuple)
    for key, value in event.items():
        if key.startswith("log_") or (legacy and key in _LEGACY) or _SECRET.search(key):
            continue
        # The fixed keys always mean the same thing; a field of that name is kept aside.
        fields[f"{key}_field" if key in _FIXED else key] = _value(value)
    return fields


def event_as_json(event: LogEvent) -> str | None:
    """One event as one line of JSON (with its newline), for FileLogObserver."""
    when = event.get("log_time")
    stamp = datetime.fromtimestamp(when if isinstance(when, int | float) else 0, UTC)
    # LogLevel's constants are NamedConstants, not LogLevel instances: look them up as they are.
    level = event.get("log_level")
    # The fixed keys first: a line read by eye starts with when, how bad and what.
    record: dict[str, Any] = {
        "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": _LEVELS.get(level, "info"),
        "namespace": event.get("log_namespace") or "-",
        "message": formatEvent(event),
    }
    record.update(event_fields(event))
    failure = event.get("log_failure")
    if failure is not None:
        record["level"] = "error" if record["level"] in ("debug", "info") else record["level"]
        record["exception"] = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, default=str) + "\n"


def json_file_observer(out: IO[str]) -> FileLogObserver:
    """An ILogObserver writing `out` one JSON line per event, flushed at once."""
    return FileLogObserver(out, event_as_json)


def json_observer() -> FileLogObserver:
    """For `twistd --logger gateway.logs.json_observer`: JSON lines on standard output."""
    return json_file_observer(sys.stdout)


LEVELS: Mapping[str, Any] = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}


class LevelFilter(LogLevelFilterPredicate):
    """Drops events below the configured level; `set` changes it (SIGHUP)."""

    def __init__(self, level: str = "info") -> None:
        super().__init__(defaultLogLevel=LEVELS[level])
        self.level = level

    def set(self, level: str) -> None:
        self.level = level
        self.setLogLevelForNamespace("", LEVELS[level])


def observer_for(
    log_format: str, twistd_options: Mapping[str, Any], level: LevelFilter | None = None
) -> ILogObserver | None:
    """The observer for the config's `log_format` and level; None leaves twistd's own.

    Lines go where twistd would put them: `--logfile` (rotated like twistd's, and on
    SIGUSR1), standard output with --nodaemon (systemd's journal), else twistd.log.
    `--syslog` keeps twistd's syslog observer, unfiltered: syslog lines have a format
    and levels of their own.
    """
    if twistd_options.get("syslog"):
        return None
    path = twistd_options.get("logfile") or ""
    out: IO[str]
    if path == "-" or (not path and twistd_options.get("nodaemon")):
        out = sys.stdout
    else:
        logfile = LogFile.fromFullPath(path or "twistd.log")
        _rotate_on_sigusr1(logfile)
        # LogFile is not an IO but has write() and flush(), all that FileLogObserver calls.
        out = cast(IO[str], logfile)
    observer = json_file_observer(out) if log_format == "json" else textFileLogObserver(out)
    # zope interfaces: the observer and the predicate provide them without subclassing.
    filtered: Any = FilteringLogObserver(cast(Any, observer), [cast(Any, level or LevelFilter())])
    return cast(ILogObserver, filtered)


def _rotate_on_sigusr1(logfile: LogFile) -> None:
    """What twistd does for its own log file: SIGUSR1 (logrotate's postrotate) rotates."""
    if not hasattr(signal, "SIGUSR1"):
        return

    def rotate(signum: int, frame: Any) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(logfile.rotate)

    signal.signal(signal.SIGUSR1, rotate)


class Repeats:
    """Which of a run of alike events to log: the first, then one per `interval`.

    `note(key, now)` answers None (leave this one out) or how many of that key
    were left out since the last line, to be said in the line that is logged
    now. Keys are the caller's (a reason, a status, an address); at most
    `max_keys` are remembered, the quietest forgotten first.
    """

    def __init__(self, interval: float = 60.0, max_keys: int = 1000) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._seen: dict[Hashable, tuple[float, int]] = {}

    def note(self, key: Hashable, now: float, count: int = 1) -> int | None:
        """`count` events of `key` happened now (left out: counted as that many)."""
        seen = self._seen
        last = seen.get(key)
        if last is not None and now - last[0] < self.interval:
            seen[key] = (last[0], last[1] + count)
            return None
        seen.pop(key, None)
        seen[key] = (now, 0)
        if len(seen) > self.max_keys:
            del seen[next(iter(seen))]
        return last[1] if last is not None else 0

    def left_out(self) -> dict[Hashable, int]:
        """Keys with events left out since their last line (to say at the end)."""
        return {key: count for key, (_, count) in self._seen.items() if count}


class TopService(MultiService):
    """The service makeService hands twistd: installs `observer` as the application's
    ILogObserver when twistd adds it, before twistd starts logging (see the module
    docstring). Without an observer it is a plain MultiService."""

    def __init__(self, observer: ILogObserver | None = None) -> None:
        super().__init__()
        self.observer = observer

    def setServiceParent(self, parent: Any) -> None:
        if (
            self.observer is not None
            and isinstance(parent, Componentized)
            and parent.getComponent(ILogObserver, None) is None
        ):
            parent.setComponent(ILogObserver, self.observer)
        super().setServiceParent(parent)


__all__ = [
    "LEVELS",
    "LevelFilter",
    "Repeats",
    "TopService",
    "event_as_json",
    "event_fields",
    "json_file_observer",
    "json_observer",
    "observer_for",
]

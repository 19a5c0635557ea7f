"""A GroupCommitter on a real SQLite file with one table `t (v INTEGER)`, for the
committer's unit tests; closed when the test ends."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from gateway.store.commit import GroupCommitter


def committer(test: TestCase, **options: Any) -> tuple[GroupCommitter, sqlite3.Connection]:
    path = str(Path(test.mktemp()) / "c.sqlite")
    Path(path).parent.mkdir(parents=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (v INTEGER)")
    commit = GroupCommitter(reactor, path, conn, durable=True, **options)
    test.addCleanup(commit.close)
    return commit, conn

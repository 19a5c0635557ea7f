"""gateway.store.gone: a key stays gone while a read that may predate its write is out."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from gateway.store.gone import Gone


def test_a_key_is_gone_until_its_write_commits() -> None:
    gone: Gone[str] = Gone()
    write: Deferred[None] = Deferred()
    gone.until(["m1", "m2"], write)
    assert "m1" in gone and "m2" in gone and "m3" not in gone
    write.callback(None)
    assert "m1" not in gone and "m2" not in gone


def test_a_read_out_at_the_commit_keeps_it_gone_until_every_read_is_in() -> None:
    gone: Gone[int] = Gone()
    first: Deferred[list[int]] = Deferred()
    second: Deferred[list[int]] = Deferred()
    gone.reading(first)
    write: Deferred[None] = Deferred()
    gone.until([7], write)
    gone.reading(second)
    write.callback(None)
    assert 7 in gone  # `first` began before the commit and may still bring it
    first.callback([7])
    assert 7 in gone  # `second` is still out
    second.callback([])
    assert 7 not in gone


def test_a_failed_write_or_read_leaves_the_key_gone_and_the_failure_to_its_caller() -> None:
    gone: Gone[int] = Gone()
    write: Deferred[None] = Deferred()
    gone.until([1], write)
    write.addErrback(lambda _: None)
    write.errback(RuntimeError("disk"))
    assert 1 in gone
    read: Deferred[None] = Deferred()
    failures: list[object] = []
    gone.reading(read).addErrback(failures.append)
    read.errback(RuntimeError("read"))
    assert len(failures) == 1
    gone.add(2)
    assert 2 in gone

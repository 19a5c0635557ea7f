"""`twistd` under a profiler: python -m bench.profiled_twistd OUTFILE TWISTD-ARGS...

OUTFILE ending in `.json` selects a sampling profiler: every 0.5 ms of the
process's CPU time (SIGPROF) it records the reactor thread's stack, and writes
how often each function was on it (inclusive), at its top (exclusive), and at
the top called from where. Unlike cProfile it does not slow every call down,
so the shares are those of the real run; `python -m bench.profiled_twistd
--show OUTFILE.json` prints them. Any other OUTFILE gets cProfile stats.

`python -m cProfile twistd ...` writes nothing when the gateway is stopped with
SIGTERM, because twistd ends by re-sending itself the signal
(twisted.application.app._exitWithSignal). This wrapper writes its file first,
then exits with the signal as twistd would.
"""

from __future__ import annotations

import cProfile
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

SAMPLE_EVERY = 0.0005  # seconds of process CPU time


def _where(frame: FrameType) -> str:
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"


class Sampler:
    def __init__(self) -> None:
        self.total = 0
        self.inclusive: Counter[str] = Counter()
        self.exclusive: Counter[str] = Counter()
        self.callers: Counter[str] = Counter()

    def sample(self, _signal: int, frame: FrameType | None) -> None:
        if frame is None:
            return
        self.total += 1
        top = _where(frame)
        self.exclusive[top] += 1
        if frame.f_back is not None:
            self.callers[f"{top} <- {_where(frame.f_back)}:{frame.f_back.f_lineno}"] += 1
        seen = set()
        current: FrameType | None = frame
        while current is not None:
            key = _where(current)
            if key not in seen:  # recursion counts once
                seen.add(key)
                self.inclusive[key] += 1
            current = current.f_back

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self.sample)
        signal.setitimer(signal.ITIMER_PROF, SAMPLE_EVERY, SAMPLE_EVERY)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)

    def dump(self, path: str) -> None:
        with open(path, "w") as out:
            json.dump(
                {
                    "total": self.total,
                    "inclusive": self.inclusive.most_common(200),
                    "exclusive": self.exclusive.most_common(100),
                    "callers": self.callers.most_common(100),
                },
                out,
            )


def show(path: str, limit: int = 40) -> None:
    with open(path) as f:
        data = json.load(f)
    total = max(data["total"], 1)
    print(f"{data['total']} samples ({SAMPLE_EVERY * 1000:g} ms of CPU each)")
    for title in ("inclusive", "exclusive", "callers"):
        print(f"--- {title}")
        for key, count in data[title][:limit]:
            print(f"{100 * count / total:5.1f}%  {key}")


def main() -> None:
    if sys.argv[1] == "--show":
        show(sys.argv[2])
        return
    outfile, sys.argv = sys.argv[1], ["twistd", *sys.argv[2:]]
    from twisted.application import app
    from twisted.scripts import twistd

    begin: Callable[[], Any]
    end: Callable[[], Any]
    if outfile.endswith(".json"):
        sampler = Sampler()
        begin, end = sampler.start, lambda: (sampler.stop(), sampler.dump(outfile))
    else:
        profile = cProfile.Profile()
        begin, end = profile.enable, lambda: (profile.disable(), profile.dump_stats(outfile))
    exit_with_signal = app._exitWithSignal

    def end_then_exit(sig: int) -> None:
        end()
        exit_with_signal(sig)

    app._exitWithSignal = end_then_exit
    begin()
    try:
        twistd.run()
    finally:
        end()


if __name__ == "__main__":
    main()

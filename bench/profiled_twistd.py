"""`twistd` under cProfile: python -m bench.profiled_twistd OUTFILE TWISTD-ARGS...

`python -m cProfile twistd ...` writes nothing when the gateway is stopped with
SIGTERM, because twistd ends by re-sending itself the signal
(twisted.application.app._exitWithSignal). This wrapper dumps the profile
first, then exits with the signal as twistd would.
"""

from __future__ import annotations

import cProfile
import sys


def main() -> None:
    outfile, sys.argv = sys.argv[1], ["twistd", *sys.argv[2:]]
    from twisted.application import app
    from twisted.scripts import twistd

    profile = cProfile.Profile()
    exit_with_signal = app._exitWithSignal

    def dump_then_exit(sig: int) -> None:
        profile.disable()
        profile.dump_stats(outfile)
        exit_with_signal(sig)

    app._exitWithSignal = dump_then_exit
    profile.enable()
    try:
        twistd.run()
    finally:
        profile.disable()
        profile.dump_stats(outfile)


if __name__ == "__main__":
    main()

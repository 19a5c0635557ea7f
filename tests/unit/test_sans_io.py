"""gateway/smpp/ stays sans-IO: importing all of it must not pull in Twisted."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import importlib
    import pkgutil
    import sys

    import gateway.smpp

    names = [
        info.name
        for info in pkgutil.walk_packages(gateway.smpp.__path__, "gateway.smpp.")
    ]
    for name in names:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m == "twisted" or m.startswith("twisted."))
    print(len(names))
    assert not leaked, leaked
    """
)


def test_smpp_package_does_not_import_twisted() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 2  # pdu and codec at least

"""The slow suite on a nearly full disk stops at once and says so (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = """
import collections, shutil, sys
Usage = collections.namedtuple("Usage", "total used free")
shutil.disk_usage = lambda path: Usage(100 * 2**30, 98 * 2**30, {free} * 2**30)
import pytest
sys.exit(pytest.main(["-q", "--runslow", "--collect-only", "-p", "no:cacheprovider", "tests/test_suite_disk.py"]))
"""


def test_a_slow_session_on_a_full_disk_stops_at_once_naming_the_problem():
    root = Path(__file__).parent.parent
    full = subprocess.run([sys.executable, "-c", CHILD.format(free=2)], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert full.returncode == 3 and "2.0 GiB free" in full.stdout and "needs about 8 GiB" in full.stdout
    roomy = subprocess.run([sys.executable, "-c", CHILD.format(free=50)], cwd=root, capture_output=True, text=True,
                           timeout=120)
    assert roomy.returncode == 0, roomy.stdout[-500:]

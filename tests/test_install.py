"""The Makefile's install step: torch's CPU build from PyTorch's index, the plain pin as fallback.

`make install` runs against a stand-in Python that records each pip call (and can refuse
the CPU index, as a machine without access to it does), so the logic is checked without
installing anything."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _install(tmp_path, index_reachable: bool) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/sh
echo "$*" >> {log}
case "$*" in *--index-url*) exit {0 if index_reachable else 1};; esac
exit 0
""")
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    venv.mkdir()
    r = subprocess.run(["make", "-B", "install", f"VENV={venv}", f"PY={fake}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    return r, log.read_text().splitlines()


def test_torch_comes_from_the_cpu_index(tmp_path):
    r, calls = _install(tmp_path, index_reachable=True)
    assert r.returncode == 0, r.stderr
    torch = [c for c in calls if "torch==" in c]
    assert torch == [c for c in torch if "--index-url https://download.pytorch.org/whl/cpu" in c] and len(torch) == 1
    assert calls.index(torch[0]) < next(i for i, c in enumerate(calls) if "-e .[" in c)  # before the project
    assert "cannot be reached" not in r.stderr


def test_unreachable_cpu_index_falls_back_to_the_plain_pin(tmp_path):
    r, calls = _install(tmp_path, index_reachable=False)
    assert r.returncode == 0, r.stderr
    torch = [c for c in calls if "torch==" in c]
    assert len(torch) == 2 and "--index-url" in torch[0] and "--index-url" not in torch[1]
    assert "cannot be reached" in r.stderr
    assert (tmp_path / "venv" / ".installed").exists()

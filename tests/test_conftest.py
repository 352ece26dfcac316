"""The shared test helpers in tests/conftest.py fail when they should."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from rag.config import Settings
from rag.models import ModelError, ensure_model
from tests.conftest import ROOT, browser_missing, missing_action, model_missing, run_workers


def test_run_workers_runs_every_worker():
    seen = []
    run_workers(seen.append, 8, timeout=30)
    assert sorted(seen) == list(range(8))


def test_a_worker_that_raises_fails_the_test_with_its_traceback():
    def worker(n):
        if n == 3:
            raise ZeroDivisionError("worker three broke")

    with pytest.raises(pytest.fail.Exception, match=r"(?s)worker 3 of 4 raised.*ZeroDivisionError: worker three broke"):
        run_workers(worker, 4, timeout=30)


def test_a_worker_still_running_after_the_timeout_fails_the_test():
    release = threading.Event()
    try:
        with pytest.raises(pytest.fail.Exception, match=r"worker 1 of 2 still running after 0.2 s"):
            run_workers(lambda n: n == 1 and release.wait(30), 2, timeout=0.2)
    finally:
        release.set()  # let the hanging thread end


# ---------------------------------------------------------------- browser and model tests
@pytest.mark.parametrize(("missing", "env", "action"), [
    (None, {}, "run"), (None, {"CI": "true"}, "run"),
    ("/usr/bin/chromium not found", {}, "skip"), ("/usr/bin/chromium not found", {"CI": "false"}, "skip"),
    ("/usr/bin/chromium not found", {"CI": "true"}, "fail"), ("model not on disk", {"CI": "1"}, "fail"),
])
def test_a_missing_browser_or_model_skips_locally_and_fails_in_ci(missing, env, action):
    assert missing_action(missing, env) == action


def test_browser_missing_names_what_to_install(tmp_path):
    chromium, driver = tmp_path / "chromium", tmp_path / "chromedriver"
    chromium.touch()
    assert browser_missing(chromium, driver) == (
        f"{driver} not found (install Debian's chromium and chromium-driver, or run `make test`)")
    driver.touch()
    assert browser_missing(chromium, driver) is None  # selenium is a dev dependency


def test_model_missing_until_its_weights_are_on_disk(tmp_path):
    settings = Settings(models_dir=tmp_path)
    folder = tmp_path / "embeddinggemma-300m"
    assert model_missing(settings) == f"embeddinggemma-300m not on disk at {folder}; run `rag model fetch`"
    folder.mkdir()
    assert model_missing(settings) is not None  # an empty folder: ensure_model would download
    (folder / "model.safetensors").touch()
    assert model_missing(settings) is None  # a damaged copy is ensure_model's error, not a download


def test_tests_never_download_the_model(tmp_path):
    with pytest.raises(ModelError, match="tests never download the model"):
        ensure_model("embeddinggemma-300m", tmp_path)


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    # an empty cache: no model on disk; and no package index, so even a broken check cannot download
    environ.update(PIP_NO_INDEX="1", **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)


MODEL_TEST = "tests/test_models.py::test_the_model_on_disk_verifies_against_its_pin"


def test_without_the_model_model_tests_are_skipped_with_one_line_or_fail_in_ci(tmp_path):
    line = (f"model tests skipped (1): embeddinggemma-300m not on disk at {tmp_path}/rag/models/embeddinggemma-300m; "
            "run `rag model fetch`")
    local = _pytest(MODEL_TEST, XDG_CACHE_HOME=str(tmp_path))
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-3000:]
    assert line in local.stdout.splitlines()
    ci = _pytest(MODEL_TEST, XDG_CACHE_HOME=str(tmp_path), CI="true")
    assert ci.returncode == 1 and "1 error" in ci.stdout, ci.stdout[-3000:]
    assert "model test in CI, but embeddinggemma-300m not on disk" in ci.stdout
    assert not (tmp_path / "rag" / "models").exists()  # nothing was fetched

"""The shared test helpers in tests/conftest.py fail when they should."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import run_workers


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

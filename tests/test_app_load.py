"""Several chat sessions at once share one engine: no cross-talk, memory stays flat.

AppTest drives eight sessions in turn (AppTest itself is not thread-safe); eight real
headless-chromium sessions then ask at the same time against one running server.
"""

from __future__ import annotations

import threading
import time
import traceback

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from tests import test_browser as tb
from tests.conftest import run_workers
from tests.test_app import APP, app_env, ask  # noqa: F401 - app_env is a fixture

CASES = [("Geneva snow airport closed", "corpus/en_weather.md", "three hours"),
         ("تماس تلفنی پوتین و ترامپ چند دقیقه", "corpus/fa_call.txt", "۵۰ دقیقه"),
         ("اجتماع كيري وظريف في نيويورك", "corpus/ar_meeting.txt", "نيويورك")]


def test_eight_sessions_keep_their_own_history_and_answers(app_env, tiny_engine):  # noqa: F811
    app_env(tiny_engine.settings.project_root, model="hash-256", abstain_threshold="0.05")
    sessions = [AppTest.from_file(APP, default_timeout=120).run() for _ in range(8)]
    for round_ in range(3):
        for n, at in enumerate(sessions):  # interleaved: each session asks, then the next
            q, want, _ = CASES[(n + round_) % len(CASES)]
            html = ask(at, q)
            assert want in " ".join(html[1:]), (n, round_, q)
    for n, at in enumerate(sessions):
        users = [m for m in at.chat_message if m.name == "user"]
        assert [CASES[(n + r) % 3][0] in users[r].html[0].value for r in range(3)] == [True] * 3


@pytest.mark.browser
def test_eight_concurrent_browser_sessions(tiny_engine, tmp_path):
    root = tiny_engine.settings.project_root
    sampler_errors: list[str] = []
    rss: list[int] = []

    def session(n: int, url: str) -> None:  # run_workers reports what it raises
        driver = tb.chromium(tmp_path / f"profile{n}", window_size="1000,900")
        try:
            q, source, _ = CASES[n % len(CASES)]
            answer = tb.ask(driver, url, q)
            page = driver.find_element("css selector", "body").text
            others = [c[1] for c in CASES if c[1] != source and c[1] in page]
            assert answer.text.strip() and q in page and source in page and not others, \
                f"session {n} asked {q!r}: page cites {source in page=} {others=}"
        finally:
            driver.quit()

    with tb.streamlit_app(root, tmp_path / "streamlit.log", model="hash-256", abstain_threshold="0.05") as url:
        server = next(p for p in psutil.process_iter(["cmdline"]) if url.rsplit(":", 1)[1] in " ".join(p.info["cmdline"] or []))
        stop = threading.Event()

        def sample() -> None:
            try:
                while not stop.is_set():
                    rss.append(server.memory_info().rss)
                    time.sleep(0.2)
            except Exception:  # noqa: BLE001 - reported below
                sampler_errors.append(traceback.format_exc())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.monotonic()
        try:
            run_workers(lambda n: session(n, url), 8, timeout=400)
        finally:
            stop.set()
            sampler.join(timeout=10)
    assert not sampler_errors, sampler_errors
    assert not sampler.is_alive(), "the memory sampler did not stop"
    print(f"\n8 concurrent browser sessions answered in {time.monotonic() - start:.0f} s; "
          f"server RSS {rss[0] / 2**20:.0f} → peak {max(rss) / 2**20:.0f} MiB")
    assert max(rss) - rss[0] < 400 * 2**20

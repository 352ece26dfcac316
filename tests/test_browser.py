"""The chat app in a real headless Chromium (Debian's /usr/bin/chromium, via Selenium).

Each test starts `streamlit run ui/app.py` on a free localhost port over its own copy of
a project, waits for the health endpoint, then types into the page like a person.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import CHROMEDRIVER, CHROMIUM, ROOT

pytestmark = pytest.mark.browser  # skipped, or failed in CI, without chromium: see conftest.py
SCREENSHOT_COPY = Path("/tmp/rag-browser-screenshot.png")
CALL_DOC = "corpus/004_ef6e32c70ca40c0f.txt"
PWNED = ("Snow report\nGeneva snow report: <script>window.__pwned = 'script'</script> and "
         "<img src=x onerror=\"window.__pwned = 'img'\"> and <b onmouseover=alert(1)>bold</b>.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(project_root: Path, log: Path, **env: str):
    """The app on http://127.0.0.1:<free port>, stopped afterwards."""
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    environ.update({"RAG_PROJECT_ROOT": str(project_root), **{f"RAG_{k.upper()}": v for k, v in env.items()}})
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "app.py"),
           "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer on {url} within 60 s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def chromium(profile: Path, window_size: str = "1300,1400"):
    """A headless Debian chromium driven by Selenium, with its own profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--window-size={window_size}", "--lang=en"):
        opts.add_argument(arg)
    # an explicit driver path: Selenium Manager never tries to download a browser or driver
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


def ask(driver, url: str, question: str):
    """Opens the app, asks the question, returns the newest answer element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 120)  # the first visit loads the model
    box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, '[data-testid="stChatInputTextArea"]')))
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".rag-answer"))
    time.sleep(0.5)  # let the snippets under the answer render too
    return driver.find_elements(By.CSS_SELECTOR, ".rag-answer")[-1]


def open_first_document(driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    button = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if "whole document" in b.text)
    driver.execute_script("arguments[0].click()", button)
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "mark#rag-cited"))
    time.sleep(1)  # the dialog scrolls to the mark
    return driver.find_element(By.CSS_SELECTOR, "mark#rag-cited")


@pytest.mark.model
def test_persian_question_renders_right_to_left_with_citations(browser, seed_project, tmp_path):
    from selenium.webdriver.common.by import By

    with streamlit_app(seed_project.project_root, tmp_path / "streamlit.log") as url:
        answer = ask(browser, url, "مدت تماس پوتین و ترامپ چقدر بود؟")
        assert "ترامپ" in answer.text and "[1]" in answer.text
        assert browser.execute_script("return getComputedStyle(arguments[0]).direction", answer) == "rtl"
        snippets = browser.find_elements(By.CSS_SELECTOR, ".rag-snippet")
        assert snippets and CALL_DOC in snippets[0].text
        assert snippets[0].find_elements(By.TAG_NAME, "mark")
        ref = answer.find_element(By.CSS_SELECTOR, "a.rag-ref")
        assert ref.get_attribute("href").endswith("#" + snippets[0].get_attribute("id"))
        user = browser.find_element(By.CSS_SELECTOR, ".rag-user")
        assert browser.execute_script("return getComputedStyle(arguments[0]).direction", user) == "rtl"
        box = browser.find_element(By.CSS_SELECTOR, '[data-testid="stChatInputTextArea"]')
        assert browser.execute_script("return getComputedStyle(arguments[0]).unicodeBidi", box) == "plaintext"

        browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", browser.find_element(By.TAG_NAME, "h1"))
        time.sleep(0.5)
        shot = tmp_path / "persian-answer.png"
        assert browser.save_screenshot(str(shot))
        shutil.copyfile(shot, SCREENSHOT_COPY)

        mark = open_first_document(browser)
        assert mark.text.strip() and mark.text.strip()[:20] in snippets[0].text
        top, bottom, height = browser.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.top, r.bottom, window.innerHeight]", mark)
        assert 0 <= top and bottom <= height  # scrolled into view
        browser.save_screenshot(str(tmp_path / "document.png"))


def test_script_in_a_document_stays_text_in_the_browser(browser, tiny_project, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    root = tiny_project.project_root
    (root / "corpus" / "pwned.txt").write_text(PWNED, encoding="utf-8")
    # no index yet: the app builds it when it starts
    with streamlit_app(root, tmp_path / "streamlit.log", model="hash-256", abstain_threshold="0.05") as url:
        ask(browser, url, "Geneva snow report script")
        snippet = browser.find_elements(By.CSS_SELECTOR, ".rag-snippet")[0]
        assert "corpus/pwned.txt" in snippet.text
        assert "<script>window.__pwned = 'script'</script>" in snippet.text
        assert "<img src=x onerror=" in snippet.text
        open_first_document(browser)
        assert "<img src=x onerror=" in browser.find_element(By.CSS_SELECTOR, ".rag-doc").text
        assert browser.execute_script("return window.__pwned === undefined")
        assert not browser.find_elements(By.CSS_SELECTOR, ".rag-block img, .rag-doc img, .rag-block b, .rag-doc script")
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        browser.save_screenshot(str(tmp_path / "script-document.png"))

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
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.config import Settings
from tests.conftest import CHROMEDRIVER, CHROMIUM, ROOT, browser_missing, model_missing
from ui.i18n import FA

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


def chromium(profile: Path, window_size: str = "1300,1400", lang: str = "en"):
    """A headless Debian chromium driven by Selenium, with its own profile folder, asking
    for pages in `lang` (navigator.language and the Accept-Language header)."""
    from selenium import webdriver
    from selenium.common.exceptions import SessionNotCreatedException
    from selenium.webdriver.chrome.service import Service

    for attempt in range(3):  # eight browsers starting at once on two cores: one may not come up in time
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        data_dir = profile if attempt == 0 else profile.with_name(f"{profile.name}-retry{attempt}")  # no stale lock
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={data_dir}", f"--window-size={window_size}", f"--lang={lang}"):
            opts.add_argument(arg)
        opts.add_experimental_option("prefs", {"intl.accept_languages": lang})
        try:
            # an explicit driver path: Selenium Manager never tries to download a browser or driver
            return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
        except SessionNotCreatedException:
            if attempt == 2:
                raise
            time.sleep(2 * (attempt + 1))


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


def open_first_document(driver, label: str = "Open the whole document"):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    button = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button") if label in b.text)
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


def test_an_upload_is_indexed_in_the_background_and_the_page_follows(browser, tiny_project, tmp_path):
    """After an upload nobody touches the page: the build status refreshes itself, says what
    changed when the update is in, and the page reruns with the new document count."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    mars = tmp_path / "mars.txt"
    mars.write_text("Mars landing\nThe Curiosity rover landed on Mars in August 2012 near Gale crater.", "utf-8")
    with streamlit_app(tiny_project.project_root, tmp_path / "streamlit.log", model="hash-256",
                       abstain_threshold="0.05") as url:
        browser.get(url)
        wait = WebDriverWait(browser, 60)
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, '[data-testid="stChatInputTextArea"]')))
        sidebar = browser.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"]')
        assert browser.find_element(By.CSS_SELECTOR, ".rag-facts td:nth-child(2)").text == "3"
        sidebar.find_element(By.CSS_SELECTOR, 'input[type="file"]').send_keys(str(mars))
        wait.until(lambda d: "Index updated: 1 added, 0 updated, 0 removed" in sidebar.text)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".rag-facts td:nth-child(2)").text == "4")
        answer = ask(browser, url, "When did the Curiosity rover land on Mars?")
        assert "August 2012" in answer.text
        assert "corpus/mars.txt" in browser.find_elements(By.CSS_SELECTOR, ".rag-snippet")[0].text


CONVERSATION_DOC = "corpus/002_27d2148a64835134.txt"  # Kerry–Zarif meeting, Kerry–Lavrov call (Arabic)


def say(driver, question: str, answers: int):
    """Types a question into the open chat (the same session) and waits for answer number
    `answers` and what comes under it; returns that answer's chat message element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 180)
    box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, '[data-testid="stChatInputTextArea"]')))
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".rag-answer")) >= answers
               and not d.find_elements(By.CSS_SELECTOR, '[data-testid="stSpinner"]'))
    time.sleep(1)  # the snippets, note and buttons under the answer
    return driver.find_elements(By.CSS_SELECTOR, '[data-testid="stChatMessage"]')[2 * answers - 1]


@dataclass
class Seen:
    """What a person sees of one turn of the conversation."""

    answer: str
    answer_class: str
    answer_dir: str
    refs: int  # [n] markers in the answer
    marks: int  # cited sentences marked in the snippets
    sources: list[str]  # the snippets' headers
    note: str  # the "understood as" note ("" when there is none)
    note_dir: str
    buttons: list[str]


TURNS = ("لاوروف با چه کسی تماس تلفنی داشت؟",  # who did Lavrov phone? (the Arabic article: Kerry)
         "درباره چه موضوعی صحبت کردند؟",  # what did they talk about? (only answerable with turn 1)
         "What is the capital of Australia?",  # not in the corpus
         "ممنون")  # thanks: small talk, not a question


@pytest.fixture(scope="module")
def conversation(seed_index_dir, tmp_path_factory):
    """The four turns asked once in a headless chromium asking for Persian pages: what
    each turn showed, and the computed direction of the page's parts."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    if (why := browser_missing()) is not None or (why := model_missing(Settings())) is not None:
        pytest.skip(why)  # the tests using it are marked; this keeps the fixture from failing first
    tmp = tmp_path_factory.mktemp("conversation")
    root = tmp / "project"
    shutil.copytree(seed_index_dir, root, symlinks=True)
    driver = chromium(tmp / "chromium-profile", lang="fa")
    style = "return getComputedStyle(arguments[0]).direction"
    seen: list[Seen] = []
    page: dict[str, object] = {}
    try:
        with streamlit_app(root, tmp / "streamlit.log") as url:
            driver.get(url)
            WebDriverWait(driver, 180).until(
                ec.element_to_be_clickable((By.CSS_SELECTOR, '[data-testid="stChatInputTextArea"]')))
            page["navigator.language"] = driver.execute_script("return navigator.language")
            page["title"] = driver.find_element(By.TAG_NAME, "h1").text
            for n, question in enumerate(TURNS, start=1):
                message = say(driver, question, n)
                answer = message.find_element(By.CSS_SELECTOR, ".rag-answer")
                notes = message.find_elements(By.CSS_SELECTOR, ".rag-reading")
                seen.append(Seen(answer.text, answer.get_attribute("class"), driver.execute_script(style, answer),
                                 len(answer.find_elements(By.CSS_SELECTOR, "a.rag-ref")),
                                 len(message.find_elements(By.CSS_SELECTOR, ".rag-snippet mark")),
                                 [h.text for h in message.find_elements(By.CSS_SELECTOR, ".rag-snippet .rag-head")],
                                 notes[0].text if notes else "", driver.execute_script(style, notes[0]) if notes else "",
                                 [b.text for b in message.find_elements(By.TAG_NAME, "button")]))
            for css in RTL_PARTS:
                page[css] = driver.execute_script(style, driver.find_element(By.CSS_SELECTOR, css))
            sidebar, main = (driver.find_element(By.CSS_SELECTOR, f'[data-testid="{t}"]') for t in ("stSidebar", "stMainBlockContainer"))
            page["sidebar right of main"] = sidebar.rect["x"] > main.rect["x"]
            page["slider"] = driver.execute_script("""
                const track = document.querySelector('[data-testid="stSlider"] [role="group"] > [data-orientation]');
                const [fill, thumb] = track.children, t = track.getBoundingClientRect(), h = thumb.getBoundingClientRect();
                return [(h.left + h.width / 2 - t.left) / t.width, getComputedStyle(fill).transform];""")
            page["uploader"] = driver.execute_script("""
                const p = document.querySelector('[data-testid="stFileUploaderDropzone"] button p');
                const s = document.querySelector('[data-testid="stFileUploaderDropzoneInstructions"] span');
                return [getComputedStyle(p, '::after').content, getComputedStyle(p).fontSize,
                        getComputedStyle(s, '::after').content, getComputedStyle(s).fontSize];""")
            page["toolbar"] = [e.text for e in driver.find_elements(
                By.CSS_SELECTOR, '[data-testid="stAppDeployButton"], [data-testid="stMainMenu"]')]
            passage = driver.find_elements(By.CSS_SELECTOR, ".rag-passage")[0]
            page["passage"] = (driver.execute_script(style, passage), passage.get_attribute("dir"))

            driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", driver.find_element(By.TAG_NAME, "h1"))
            time.sleep(0.5)
            shot = tmp / "conversation.png"
            assert driver.save_screenshot(str(shot))
            shutil.copyfile(shot, SCREENSHOT_COPY.with_name("rag-browser-conversation.png"))

            # Streamlit's own parts: the document dialog, and an alert (a refused upload)
            open_first_document(driver, FA["open_document"])
            dialog = driver.find_element(By.CSS_SELECTOR, '[role="dialog"]')
            page["dialog"] = (driver.execute_script(style, dialog), dialog.text.split("\n")[0])
            driver.find_element(By.CSS_SELECTOR, '[role="dialog"] button[aria-label="Close"]').click()
            junk = tmp / "tool.txt"
            junk.write_bytes(bytes(range(256)) * 4)
            driver.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"] input[type="file"]').send_keys(str(junk))
            alert = WebDriverWait(driver, 60).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] [data-testid="stAlert"]'))[0]
            page["alert"] = (driver.execute_script(style, alert), alert.text)
    finally:
        driver.quit()
    return seen, page


# the parts of the page that run right to left with a Persian or Arabic interface
RTL_PARTS = ("body", ".stApp", '[data-testid="stSidebar"]', '[data-testid="stMainBlockContainer"]', "h1",
             '[data-testid="stSidebar"] button', '[data-testid="stSidebar"] [data-testid="stWidgetLabel"]',
             '[data-testid="stChatMessage"]', ".rag-reading", '[data-testid="stBottom"]')


@pytest.mark.model
def test_the_conversation_runs_right_to_left_in_the_persian_interface(conversation):
    seen, page = conversation
    assert str(page["navigator.language"]).startswith("fa") and page["title"] == FA["title"]
    assert {css: page[css] for css in RTL_PARTS} == dict.fromkeys(RTL_PARTS, "rtl")
    assert page["sidebar right of main"] and page["passage"] == ("rtl", "rtl")  # document text keeps its own dir
    # k = 5 of 1…20 sits a fifth of the way from the right, and the fill is mirrored to end there
    at, transform = page["slider"]
    assert at == pytest.approx(1 - 4 / 19, abs=0.03) and transform.startswith("matrix(-1, 0, 0, 1,")
    assert seen[2].answer_dir == "ltr"  # an English answer keeps its own direction too
    assert page["dialog"] == ("rtl", FA["dialog_title"])
    direction, text = page["alert"]
    assert direction == "rtl" and text.startswith("tool.txt") and ("خوانده نمی‌شود" in text or "سندی برای افزودن" in text)
    assert all(FA["open_document"] in " ".join(s.buttons) for s in seen[:2])
    # Streamlit's own words: the uploader's are drawn from the catalogue over its hidden
    # English ones, and the "Deploy" button and developer menu are not shown at all
    button, button_size, limit, limit_size = page["uploader"]
    assert button == f'"{FA["upload_button"]}"' and button_size == "0px", page["uploader"]
    assert limit.startswith('"' + FA["upload_limit"].split("{")[0]) and "PDF" in limit and limit_size == "0px"
    assert page["toolbar"] == []


@pytest.mark.model
def test_the_conversation_notes_how_each_later_turn_was_understood(conversation):
    seen, _ = conversation
    assert seen[0].note == ""  # a first question has one reading
    for s in seen[1:3]:
        assert s.note_dir == "rtl" and s.note
        if s.note == FA["reading_alone"]:
            assert any(FA["ask_in_context"] in b for b in s.buttons)
        else:
            assert s.note == FA["reading_in_context"].format(previous=TURNS[seen.index(s) - 1])
            assert any(FA["ask_alone"] in b for b in s.buttons)


@pytest.mark.model
def test_the_conversation_cites_what_it_answers_and_the_off_topic_question_abstains(conversation):
    seen, _ = conversation
    first, _, third, _ = seen
    assert first.refs and first.marks and first.sources  # answered, cited, the sentence marked
    assert "rag-abstain" in third.answer_class and third.refs == 0 and third.marks == 0
    assert third.answer == "The sources do not answer this question."
    assert third.note == FA["reading_alone"]  # an unrelated question is not read as a follow-up


# Since the judge decides (2026-12-08), "who did Lavrov phone?" asked in Persian is answered
# from the Persian article about another phone call (the judge reads the Persian sentence on
# Ushakov and the Putin–Trump call as more likely than the Arabic one on Lavrov and Kerry,
# a pair, fa>ar, it never saw in training), and the follow-up leans on that article. Kept
# visible: both fail until the judge reads across languages better.
@pytest.mark.model
@pytest.mark.xfail(reason="fa>ar: the judge prefers a Persian sentence on another call", raises=AssertionError,
                   strict=True)
def test_the_first_turn_cites_the_arabic_article(conversation):
    first = conversation[0][0]
    assert "كيري" in first.answer and CONVERSATION_DOC in first.sources[0]  # Lavrov phoned Kerry


@pytest.mark.model
@pytest.mark.xfail(reason="follows the first turn to the Persian article", raises=AssertionError, strict=True)
def test_the_follow_up_is_answered_from_the_previous_turn(conversation):
    """"What did they talk about?" only makes sense after "Who did Lavrov phone?": read as a
    follow-up, it is answered from the same article — the coalition against ISIS."""
    from rag.text import normalize

    second = conversation[0][1]
    assert second.note == FA["reading_in_context"].format(previous=TURNS[0])
    assert second.refs and CONVERSATION_DOC in second.sources[0]
    assert any(normalize(w) in normalize(second.answer) for w in ("تحالف", "الدولة الإسلامية", "داعش")), second.answer


@pytest.mark.model
def test_thanks_gets_the_small_talk_reply_right_to_left_with_no_reading(conversation):
    from rag.small_talk import SMALL_TALK_REPLY

    thanks = conversation[0][3]
    assert thanks.answer == SMALL_TALK_REPLY["fa"] and "rag-abstain" in thanks.answer_class
    assert thanks.answer_dir == "rtl" and thanks.refs == 0 and thanks.marks == 0 and thanks.sources == []
    assert thanks.note == "" and not any(FA["ask_alone"] in b or FA["ask_in_context"] in b for b in thanks.buttons)

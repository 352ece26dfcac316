"""HTML for the chat: every piece of document or user text goes through `html.escape`.

Streamlit markdown cannot set a direction per block, so the app renders its own small
HTML (with `st.html`, which DOMPurify sanitises as a second line of defence). The
direction of each block is decided from its own text: Persian and Arabic right-to-left,
English left-to-right; inline pieces of the other direction are isolated with `<bdi>`.
"""

from __future__ import annotations

import unicodedata
from html import escape

from ui import i18n
from ui.chat import READ_IN_CONTEXT, Snippet, Turn

STYLE = """<style>
.rag-block { line-height: 1.9; }
.rag-user { white-space: pre-wrap; }
.rag-answer { font-size: 1.05rem; }
.rag-ref { text-decoration: none; font-weight: 600; font-size: .85em; padding: 0 .15em; }
.rag-abstain { font-weight: 600; }
.rag-note { font-size: .85rem; opacity: .75; }
.rag-snippet { border-inline-start: 3px solid #cbd5e1; background: rgba(127,127,127,.07);
  border-radius: 4px; padding: .35rem .75rem; margin: .35rem 0; scroll-margin-top: 4rem; }
.rag-snippet:target { border-inline-start-color: #f59e0b; }
.rag-head { font-size: .85rem; opacity: .85; margin-bottom: .2rem; }
.rag-title { font-weight: 600; }
.rag-source, .rag-date { font-family: ui-monospace, monospace; font-size: .8rem; }
.rag-passage { white-space: pre-wrap; line-height: 1.8; }
.rag-doc { white-space: pre-wrap; line-height: 1.9; max-height: 65vh; overflow-y: auto;
  padding: .5rem .75rem; border: 1px solid rgba(127,127,127,.3); border-radius: 4px; }
.rag-block mark, .rag-doc mark { background: #fde68a; color: inherit; padding: 0 .1em; border-radius: 2px; }
.rag-facts { font-size: .85rem; border-collapse: collapse; width: 100%; }
.rag-facts td { padding: .1rem .3rem; border: none; vertical-align: top; }
.rag-facts td:first-child { opacity: .7; white-space: nowrap; }
[data-testid="stChatInput"] textarea { unicode-bidi: plaintext; text-align: start; }
</style>"""

# the whole page right to left (Persian or Arabic interface): the main area, sidebar, chat
# input, Streamlit's own alerts, spinners, status boxes, toasts and dialogs (dialogs and
# toasts are drawn in layers outside the app's root, hence html/body as well)
RTL_STYLE = """<style>
html, body, .stApp, [data-testid="stAppViewContainer"], [data-testid="stSidebar"], [data-testid="stMainBlockContainer"],
[data-testid="stBottom"], [data-testid="stToastContainer"], [data-baseweb="layer"], [role="dialog"] {
  direction: rtl; }
[data-testid="stSidebar"], [data-testid="stMainBlockContainer"], [data-testid="stAlert"], [data-testid="stToast"],
[data-testid="stExpander"] summary, [data-testid="stMarkdownContainer"], h1, h2, h3 { text-align: start; }
</style>"""

# Sliders place their handle by the *browser's* language (react-aria mirrors it where
# navigator.language is written right to left) but draw the filled part of the track left
# to right. Where the browser is right to left the fill is mirrored to follow the handle,
# and the 1…20 labels run right to left; elsewhere the whole slider stays left to right.
_SLIDER = '[data-testid="stSlider"] [role="group"]'
SLIDER_MIRRORED = (f"<style>{_SLIDER} {{ direction: rtl; }} "
                   f"{_SLIDER} > [data-orientation] > div:first-child {{ transform: translateY(-50%) scaleX(-1); }}</style>")
SLIDER_LTR = f"<style>{_SLIDER} {{ direction: ltr; }}</style>"


def layout_style(lang: str, browser_locale: str | None = None) -> str:
    """The page-wide style for an interface language (right to left for Persian and
    Arabic) in a browser whose own language (st.context.locale) is `browser_locale`."""
    rtl = i18n.direction(lang) == "rtl"
    if i18n.rtl_locale(browser_locale):
        return (RTL_STYLE if rtl else "") + SLIDER_MIRRORED
    return RTL_STYLE + SLIDER_LTR if rtl else ""


# Streamlit's file uploader has no parameter for its own words ("Upload", "… per file •
# TXT, …"; streamlit/streamlit#13500): they are hidden and drawn again from the catalogue
_DROPZONE = '[data-testid="stFileUploaderDropzone"]'
_INSTRUCTIONS = '[data-testid="stFileUploaderDropzoneInstructions"]'


def css_string(text: str) -> str:
    """text as a CSS string literal: quotes, backslashes, line breaks and '<' escaped (a
    '</style>' inside can then never end the style element)."""
    out = []
    for ch in text:
        out.append(f"\\{ord(ch):x} " if ch in '"\\<>\n\r' else ch)
    return '"' + "".join(out) + '"'


def uploader_style(lang: str, max_mb: int, types: list[str]) -> str:
    """The uploader's button and size/type line in the interface language; `types` as
    given to st.file_uploader ("txt", "pdf", …)."""
    button = css_string(i18n.t(lang, "upload_button"))
    limit = css_string(i18n.t(lang, "upload_limit", mb=max_mb, types=", ".join(t.upper() for t in types)))
    label = f'{_DROPZONE} button [data-testid="stMarkdownContainer"] p'
    return (f"<style>{label} {{ font-size: 0; }} {label}::after {{ content: {button}; font-size: .875rem; }} "
            f"{_INSTRUCTIONS} span {{ font-size: 0; white-space: normal; }} "
            f"{_INSTRUCTIONS} span::after {{ content: {limit}; font-size: .75rem; line-height: 1.4; }} "
            f"{_INSTRUCTIONS} * {{ overflow: visible; text-overflow: clip; }}</style>")


# scrolls the open document to its <mark id="rag-cited">; constant code, no data in it
SCROLL_TO_MARK = """<script>
(function () {
  let tries = 0;
  const go = () => {
    const marks = document.querySelectorAll('mark#rag-cited');
    if (marks.length) { marks[marks.length - 1].scrollIntoView({block: 'center'}); }
    else if (tries++ < 40) { setTimeout(go, 50); }
  };
  go();
})();
</script>"""


def direction(text: str) -> str:
    """'rtl' when most strongly directional characters are right-to-left, else 'ltr'."""
    rtl = ltr = 0
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            rtl += 1
        elif kind == "L":
            ltr += 1
    return "rtl" if rtl > ltr else "ltr"


def _text(text: str) -> str:
    return escape(text, quote=True)


def _isolated(text: str, cls: str = "") -> str:
    """Inline text isolated from its surroundings, with its own direction."""
    c = f' class="{cls}"' if cls else ""
    return f'<bdi dir="{direction(text)}"{c}>{_text(text)}</bdi>'


def short(text: str, limit: int = 90) -> str:
    """text cut at a word boundary to at most about `limit` characters (for titles)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ،,.…") + "…"


def _marked(text: str, start: int, end: int, mark_id: str = "") -> str:
    """text with text[start:end] wrapped in <mark>, all escaped (no mark when the span is empty)."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if end <= start:
        return _text(text)
    ident = f' id="{mark_id}"' if mark_id else ""
    return f"{_text(text[:start])}<mark{ident}>{_text(text[start:end])}</mark>{_text(text[end:])}"


def anchor(turn_no: int, i: int) -> str:
    """The element id of snippet i (0-based) of a turn; [n] markers link to it."""
    return f"rag-t{turn_no}-s{i}"


def user_html(text: str) -> str:
    return f'<div class="rag-block rag-user" dir="{direction(text)}">{_text(text)}</div>'


def answer_html(turn: Turn, turn_no: int) -> str:
    """The answer sentences, each with its [n] marker linking to its snippet, or the abstention."""
    if turn.abstained:
        return (f'<div class="rag-block rag-answer rag-abstain" dir="{direction(turn.message)}">'
                f"{_text(turn.message)}</div>")
    parts = []
    for n, sentence in turn.sentences:
        i = next((j for j, s in enumerate(turn.snippets) if s.n == n), 0)
        parts.append(f'{_isolated(sentence)} <a class="rag-ref" href="#{anchor(turn_no, i)}">[{n}]</a>')
    whole = " ".join(s for _, s in turn.sentences)
    return f'<div class="rag-block rag-answer" dir="{direction(whole)}">{" ".join(parts)}</div>'


def snippet_html(snippet: Snippet, element_id: str, lang: str = i18n.DEFAULT) -> str:
    """One source: [n], title, source file, date and page when known, and the passage with
    the cited sentence marked (`lang`: the interface language, for the page label)."""
    label = f"[{snippet.n}] " if snippet.n else ""
    where = [f'<bdi dir="ltr" class="rag-source">{_text(snippet.source)}</bdi>']
    if snippet.date:
        where.append(f'<bdi dir="ltr" class="rag-date">{_text(snippet.date)}</bdi>')
    if snippet.page is not None:
        where.append(_isolated(i18n.t(lang, "page", page=snippet.page), "rag-page"))
    where.append(f'<bdi dir="ltr" class="rag-source">{snippet.start}–{snippet.end}</bdi>')
    return (
        f'<div class="rag-block rag-snippet" id="{element_id}">'
        f'<div class="rag-head" dir="{direction(snippet.title)}">{label}{_isolated(short(snippet.title), "rag-title")} · '
        f'{" · ".join(where)}</div>'
        f'<div class="rag-passage" dir="{direction(snippet.passage)}">'
        f"{_marked(snippet.passage, snippet.mark_start, snippet.mark_end)}</div></div>"
    )


def note_html(text: str, dir: str | None = None) -> str:
    """A small note; `dir` defaults to the text's own direction."""
    return f'<div class="rag-note" dir="{dir or direction(text)}">{_text(text)}</div>'


def reading_html(turn: Turn, lang: str) -> str:
    """How a turn after the first was understood, in the interface language, the previous
    question quoted (escaped, isolated in its own direction)."""
    key = "reading_in_context" if turn.reading == READ_IN_CONTEXT else "reading_alone"
    template = _text(i18n.template(lang, key))
    body = template.format(previous=_isolated(turn.previous or "")) if "{previous}" in template else template
    return f'<div class="rag-note rag-reading" dir="{i18n.direction(lang)}">{body}</div>'


def sources_kept_html(turn: Turn, lang: str) -> str:
    """Which documents a question that names its sources' language was kept to, in the
    interface language ("" when it names none)."""
    if not turn.source_langs:
        return ""
    names = i18n.t(lang, "source_lang_and").join(i18n.t(lang, f"source_lang_{code}") for code in turn.source_langs)
    return note_html(i18n.t(lang, "sources_kept", langs=names), i18n.direction(lang))


def document_html(title: str, source: str, text: str, start: int, end: int) -> str:
    """The whole document, the cited span marked with id rag-cited (scrolled to by SCROLL_TO_MARK)."""
    return (
        f'<div class="rag-head" dir="{direction(title)}">{_isolated(title, "rag-title")} · '
        f'<bdi dir="ltr" class="rag-source">{_text(source)}</bdi></div>'
        f'<div class="rag-doc" dir="{direction(text[:2000])}">{_marked(text, start, end, "rag-cited")}</div>'
    )


def facts_html(rows: list[tuple[str, str]]) -> str:
    """A small two-column table of facts (label, value), values escaped and isolated."""
    body = "".join(f"<tr><td>{_text(k)}</td><td>{_isolated(v)}</td></tr>" for k, v in rows)
    return f'<table class="rag-facts">{body}</table>'

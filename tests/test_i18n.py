"""The interface catalogue: every string in English, Persian and Arabic, and no interface
text written in ui/app.py itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ui import i18n, render
from ui.chat import Turn

APP = Path(__file__).resolve().parent.parent / "ui" / "app.py"


def test_every_key_is_in_every_language_with_the_same_placeholders():
    keys = set(i18n.EN)
    for lang, strings in i18n.CATALOGUE.items():
        assert set(strings) == keys, (lang, keys ^ set(strings))
        for key in keys:
            assert strings[key].strip(), (lang, key)
            assert i18n.placeholders(strings[key]) == i18n.placeholders(i18n.EN[key]), (lang, key)
    assert set(i18n.CATALOGUE) == set(i18n.LANGS)


@pytest.mark.parametrize("lang", ["fa", "ar"])
def test_persian_and_arabic_strings_are_translated(lang):
    """No catalogue string of fa/ar is the English one, except names and codes."""
    same = {k for k, v in i18n.CATALOGUE[lang].items() if v == i18n.EN[k]}
    assert same <= {"progress_count"}, same
    assert i18n.direction(lang) == "rtl" and i18n.direction("en") == "ltr"


def test_t_formats_and_falls_back_to_english():
    assert i18n.t("fa", "upload_empty", name="a.txt") == "a.txt خالی است"
    assert i18n.t("de", "title") == i18n.EN["title"]
    with pytest.raises(KeyError):
        i18n.t("en", "no such key")


@pytest.mark.parametrize("locale, accept, expected", [
    ("fa-IR", None, "fa"), ("ar", "", "ar"), ("en-US", "fa;q=0.9", "en"), ("fa_IR", None, "fa"),
    (None, "fa-IR,fa;q=0.9,en-US;q=0.8,en;q=0.7", "fa"),
    ("de-DE", "de-DE,de;q=0.9,ar;q=0.8,en;q=0.7", "ar"),  # the first language the app has
    (None, "en;q=0.5, ar;q=0.8", "ar"),  # by q-value, not by position
    (None, "ar;q=0, en", "en"), (None, None, "en"), ("de", "fr, es", "en"), ("", "xx;q=abc", "en"),
])
def test_the_language_comes_from_the_browser(locale, accept, expected):
    assert i18n.from_browser(locale, accept) == expected


def test_the_reading_note_is_in_the_interface_language_and_escapes_the_question():
    from rag.conversation import Context

    turn = Turn("q", "q", "in-context", "<b>Kerry</b> و ظریف کجا دیدار کردند؟", Context("q", "q", ()),
                True, "", (), (), "hybrid", {})
    html = render.reading_html(turn, "en")
    assert html == ('<div class="rag-note rag-reading" dir="ltr">Understood as a follow-up to: '
                    '«<bdi dir="rtl">&lt;b&gt;Kerry&lt;/b&gt; و ظریف کجا دیدار کردند؟</bdi>»</div>')
    assert render.reading_html(turn, "fa").startswith('<div class="rag-note rag-reading" dir="rtl">به‌عنوان ادامهٔ')
    alone = Turn("q", "q", "alone", "earlier", Context("q", "q", ()), True, "", (), (), "hybrid", {})
    assert render.reading_html(alone, "ar") == f'<div class="rag-note rag-reading" dir="rtl">{i18n.AR["reading_alone"]}</div>'


def test_the_note_on_the_sources_a_question_names_is_in_the_interface_language():
    from rag.conversation import Context

    def turn(langs):
        return Turn("q", "q", "alone", None, Context("q", "q", ()), False, "", (), (), "hybrid", {},
                    source_langs=langs)

    assert render.sources_kept_html(turn(()), "en") == ""
    assert render.sources_kept_html(turn(("ar",)), "en") == \
        '<div class="rag-note" dir="ltr">Searched only the Arabic documents, which the question names</div>'
    assert render.sources_kept_html(turn(("ar", "fa")), "fa") == \
        '<div class="rag-note" dir="rtl">فقط در اسناد عربی و فارسی جست‌وجو شد، که پرسش از آن‌ها نام می‌برد</div>'
    assert render.sources_kept_html(turn(("ar", "fa")), "ar") == \
        '<div class="rag-note" dir="rtl">اقتصر البحث على الوثائق العربية والفارسية التي يذكرها السؤال</div>'


@pytest.mark.parametrize("lang, locale, expected", [
    ("en", None, ""), ("en", "en-GB", ""),
    ("fa", "en-US", render.RTL_STYLE + render.SLIDER_LTR),  # sliders stay as the browser lays them out
    ("ar", "ar-EG", render.RTL_STYLE + render.SLIDER_MIRRORED),
    ("en", "fa-IR", render.SLIDER_MIRRORED),
])
def test_the_layout_style_follows_the_interface_and_the_browser(lang, locale, expected):
    assert render.layout_style(lang, locale) == expected


@pytest.mark.parametrize("lang", ["en", "fa", "ar"])
def test_the_uploaders_own_words_come_from_the_catalogue(lang):
    from rag.corpus import SUFFIXES

    css = render.uploader_style(lang, 7, [x.lstrip(".") for x in SUFFIXES])
    assert f'content: "{i18n.t(lang, "upload_button")}"' in css
    assert f'content: "{i18n.t(lang, "upload_limit", mb=7, types=", ".join(x.lstrip(".").upper() for x in SUFFIXES))}"' in css
    assert css.count("<") == 2 and css.startswith("<style>") and css.endswith("</style>")


def test_a_css_string_cannot_end_its_quotes_or_the_style_element():
    assert render.css_string('a"b') == r'"a\22 b"'
    assert render.css_string("x</style><script>") == r'"x\3c /style\3e \3c script\3e "'
    assert render.css_string("back\\slash\nline") == r'"back\5c slash\a line"'
    assert render.css_string("بارگذاری") == '"بارگذاری"'


@pytest.mark.parametrize("locale, rtl", [("fa", True), ("ar-EG", True), ("he_IL", True), ("ur-PK", True),
                                         ("pa-Arab", True), ("en-US", False), ("fr", False), (None, False), ("", False)])
def test_right_to_left_browser_languages(locale, rtl):
    assert i18n.rtl_locale(locale) is rtl


# keyword arguments of st.* calls that are not text for a person
NOT_TEXT = {"key", "icon", "page_icon", "type", "width", "height", "state", "expanded", "value", "index",
            "horizontal", "max_chars", "max_upload_size", "accept_multiple_files", "unsafe_allow_javascript",
            "on_click", "args", "kwargs", "format_func", "show_spinner"}


def _streamlit_call(func: ast.expr) -> bool:
    """st.x(…), st.sidebar.x(…), and methods of what they return (status.update, bar.progress),
    but not st.session_state / st.context look-ups, whose strings are keys."""
    names = []
    while isinstance(func, ast.Attribute):
        names.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name) and func.id == "st":
        return not names or names[-1] not in ("session_state", "context")
    return bool(names) and names[0] in ("update", "progress", "toast")


def _literals(node: ast.AST):
    """String constants of an argument, not looking into calls (T("key") holds a key, not text)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif not isinstance(node, ast.Call | ast.Lambda):
        for child in ast.iter_child_nodes(node):
            yield from _literals(child)


def test_no_interface_text_is_written_in_app_py():
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not _streamlit_call(node.func):
            continue
        args = list(node.args) + [k.value for k in node.keywords if k.arg not in NOT_TEXT]
        if isinstance(node.func, ast.Attribute) and node.func.attr == "chat_message":
            args = args[1:]  # its role ("user", "assistant") picks an avatar; it is not shown
        for arg in args:
            found += [(node.lineno, s) for s in _literals(arg)
                      if any(ch.isalpha() for ch in s) and not s.startswith(":material/")]
    assert not found, f"text for people belongs in ui/i18n.py: {found}"
    # and the checker does find such text
    bad = ast.parse('st.button("Clear chat", key="clear")\nstatus.update(label=f"Indexed {n} documents")')
    hits = [s for n in ast.walk(bad) if isinstance(n, ast.Call) and _streamlit_call(n.func)
            for a in [*n.args, *(k.value for k in n.keywords if k.arg not in NOT_TEXT)] for s in _literals(a)]
    assert hits == ["Clear chat", "Indexed ", " documents"]

"""Persian/Arabic/English text for matching: normalisation, tokens, sentences, language.

Normalised text is used only to compare and score. What is shown and cited is always
the original text, addressed by character offsets into it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

NORMALIZATION_VERSION = "fa-ar-en-1"

_LETTERS = {
    "ي": "ی", "ى": "ی", "ئ": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه", "ە": "ه",
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ؤ": "و",
}
_DIGITS = {chr(0x06F0 + i): str(i) for i in range(10)} | {chr(0x0660 + i): str(i) for i in range(10)}
# harakat, Quranic marks, superscript alef, tatweel
_DROP = [chr(c) for c in range(0x064B, 0x0660)] + ["\u0670", "\u0640"]
_DROP += [chr(c) for c in range(0x06D6, 0x06EE)]
# zero-width joiners/non-joiners, bidi marks and isolates, BOM
_DROP += ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\ufeff"]
_DROP += [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)]
_TABLE = str.maketrans({**_LETTERS, **_DIGITS, **{c: None for c in _DROP}})

_TOKEN = re.compile(r"\w+", re.UNICODE)
_AR_PREFIXES = ("وال", "بال", "کال", "فال", "لل", "ال")

STOPWORDS = frozenset(
    """
    و در به از که این را با است برای آن یک تا بر هم نیز شد شده می ها های بود باشد
    کرد کرده کند کنند کردند دارد داشت اند ای او ما شما آنها خود دیگر پس اگر یا هر
    چه چرا چگونه کجا کی چند چقدر چطور آیا بوده شود شوند خواهد گفت گفته بین وی ان
    چیست کیست کدام
    في من على إلى الى عن مع هذا هذه ذلك التي الذي الذين ما لا لم لن قد كان كانت
    أن ان إن او أو ثم كما بعد قبل عند حول هل كم متى أين اين كيف لماذا ماذا هو هي
    the a an of in on at to for from by with and or is are was were be been it its
    this that these those what which who whom whose when where why how did do does
    has have had not no as into about than then there their they he she his her
    """.split()
)
STOPWORDS = frozenset(t.translate(_TABLE) for t in STOPWORDS)


def normalize(text: str) -> str:
    """Matching form: unified letters and digits, no diacritics/tatweel/ZWNJ/bidi, casefolded."""
    text = unicodedata.normalize("NFKC", text).translate(_TABLE).casefold()
    return text.translate(_TABLE)  # NFKC can produce letters the table maps


def tokens(text: str, *, stopwords: bool = False) -> list[str]:
    """Normalised word tokens, with a light Arabic article strip ('ال…')."""
    out = []
    for tok in _TOKEN.findall(normalize(text)):
        if not stopwords and tok in STOPWORDS:
            continue
        for prefix in _AR_PREFIXES:
            if tok.startswith(prefix) and len(tok) - len(prefix) >= 3:
                tok = tok[len(prefix):]
                break
        out.append(tok)
    return out


@dataclass(frozen=True)
class Span:
    start: int
    end: int


# a sentence ends after . ! ? ؟ ؛ … (with closing quotes/brackets) when followed by
# white space or directly by an Arabic-script letter (Persian text often has no space: "است.سخت")
_SENT_END = re.compile(r"[.!?؟؛…]+[\"'»”’)\]]*(?=\s|[\u0621-\u064a\u067e-\u06d3]|$)")
_NEWLINE = re.compile(r"\n+")
MAX_SENTENCE_CHARS = 400


def sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans inside text[start:end], trimmed of white space, in order.

    Offsets index `text` itself. Overlong runs without punctuation are cut at white
    space so no sentence exceeds MAX_SENTENCE_CHARS (a word is never cut).
    """
    end = len(text) if end is None else end
    spans: list[Span] = []
    for line in _split_keep(text, start, end, _NEWLINE):
        for piece in _split_keep(text, line.start, line.end, _SENT_END, keep_match=True):
            s, e = _trim(text, piece.start, piece.end)
            if e > s and any(ch.isalnum() for ch in text[s:e]):
                spans.extend(_cap(text, s, e))
    return spans


def _split_keep(text: str, start: int, end: int, pattern: re.Pattern, keep_match=False):
    pos = start
    for m in pattern.finditer(text, start, end):
        cut = m.end() if keep_match else m.start()
        if cut > pos:
            yield Span(pos, cut)
        pos = m.end()
    if pos < end:
        yield Span(pos, end)


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and (text[s].isspace() or unicodedata.category(text[s]) == "Cf"):
        s += 1
    while e > s and (text[e - 1].isspace() or unicodedata.category(text[e - 1]) == "Cf"):
        e -= 1
    return s, e


def _cap(text: str, s: int, e: int) -> list[Span]:
    out = []
    while e - s > MAX_SENTENCE_CHARS:
        cut = max(text.rfind(" ", s, s + MAX_SENTENCE_CHARS), text.rfind("،", s, s + MAX_SENTENCE_CHARS) + 1)
        if cut <= s:  # one enormous word: keep it whole
            nxt = text.find(" ", s + MAX_SENTENCE_CHARS, e)
            cut = e if nxt == -1 else nxt
        a, b = _trim(text, s, cut)
        if b > a:
            out.append(Span(a, b))
        s, _ = _trim(text, cut, e)
    if e > s:
        out.append(Span(s, e))
    return out


_FA_ONLY = set("پچژگ")
_FA_WORDS = {normalize(w) for w in "است را این که می برای شد کرد چه چقدر کدام چند آیا بود های هم نیز شده کند "
             # and what small talk is made of ("ممنون", "خیلی مرسی"), which has few function words
             "ممنون متشکرم مرسی سلام خیلی باشه خداحافظ سپاس سپاسگزارم خوبه".split()}
_AR_WORDS = {normalize(w) for w in "في من على إلى التي الذي الذين أن هل كم ما متى ماذا كيف عن مع هذا هذه كان "
             "شكرا جزيلا مرحبا أهلا حسنا عليكم وداعا جيد ممتاز شكرًا".split()}


def detect_lang(text: str) -> str:
    """'fa', 'ar', 'en' or 'other', from the script and a few function words.

    Persian is often typed with Arabic ي/ك, so letters are normalised before counting."""
    arabic = sum(1 for ch in text if "\u0600" <= ch <= "\u06ff" or "\ufb50" <= ch <= "\ufeff")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    letters = sum(1 for ch in text if ch.isalpha())
    if letters == 0:
        return "other"
    if arabic >= latin and arabic >= 0.3 * letters:
        words = re.findall(r"[\u0600-\u06ff]+", normalize(text))
        fa = 3 * sum(ch in _FA_ONLY for ch in text) + 2 * sum(w in _FA_WORDS for w in words)
        ar = 2 * sum(w in _AR_WORDS or (w[:1] == "و" and w[1:] in _AR_WORDS) for w in words)
        ar += 3 * text.count("ة") + 2 * text.count("ى") + sum(w.startswith("ال") and len(w) > 4 for w in words)
        return "ar" if ar > fa else "fa"
    if latin >= 0.5 * letters:
        return "en"
    return "other"


# a question that names the language of its source ("according to the Arabic report", "طبق
# خبر عربی", "في الخبر العربي") asks about the documents in that language; matched on the
# normalised text, the language word next to a word for a source (so "the Persian Gulf" is not)
_SOURCE_WORDS = {
    "en": r"reports?|articles?|news|stor(?:y|ies)|sources?|texts?|versions?|press|media|outlets?|documents?"
          r"|coverage|accounts?|pieces?",
    "fa": r"خبر|اخبار|خبرهای|گزارش|گزارشهای|مقاله|مقالات|متن|منبع|منابع|نسخه|رسانه|رسانههای|روزنامه|روایت",
    "ar": r"(?:ال)?(?:خبر|اخبار|تقریر|تقاریر|مقال|مقاله|نص|مصدر|مصادر|صحافه|اعلام|روایه|نسخه|صحف|صحیفه|وثیقه)"
          r"(?:ین|ان|ات)?",
}
_LANGUAGE_WORDS = {
    "ar": {"en": r"arabic", "fa": r"عربی", "ar": r"(?:ال)?عربی(?:ه)?"},
    "fa": {"en": r"persian|farsi", "fa": r"فارسی", "ar": r"(?:ال)?فارسی(?:ه)?"},
    "en": {"en": r"english", "fa": r"انگلیسی", "ar": r"(?:ال)?(?:انجلیزی|انکلیزی)(?:ه)?"},
}


def _source_pattern(words: dict[str, str]) -> re.Pattern:
    en, fa, ar = (f"(?:{words[k]})" for k in ("en", "fa", "ar"))
    noun_en, noun_fa, noun_ar = (f"(?:{_SOURCE_WORDS[k]})" for k in ("en", "fa", "ar"))
    # another language word coordinated with this one: "the Persian and (the) Arabic reports",
    # "خبرهای فارسی و عربی", "الخبرين الفارسي والعربي"
    any_en, any_fa, any_ar = ("|".join(w[k] for w in _LANGUAGE_WORDS.values()) for k in ("en", "fa", "ar"))
    return re.compile(
        rf"\b{en}\s+(?:(?:and|or)\s+(?:the\s+)?(?:{any_en})\s+)?{noun_en}\b"  # the Arabic (and Persian) report
        rf"|\b{noun_en}\s+(?:written\s+)?in\s+(?:(?:{any_en})\s+(?:and|or)\s+)?{en}\b"  # the report in Arabic
        rf"|\b{noun_fa}\s+(?:به\s*زبان\s+)?(?:(?:{any_fa})\s+و\s*)?{fa}\b"  # خبر عربی / گزارش به زبان عربی
        rf"|\b[وف]?[بل]?{noun_ar}\s+(?:(?:بال|ب)لغه\s+)?(?:(?:{any_ar})\s+و)?{ar}\b")  # (و)الخبر العربي / باللغة العربية


_NAMED_SOURCE = {lang: _source_pattern(words) for lang, words in _LANGUAGE_WORDS.items()}


def named_source_languages(text: str) -> frozenset[str]:
    """The languages ('fa', 'ar', 'en') of the sources a question names: "according to the
    Arabic report" → {'ar'}, "the Persian and the Arabic articles" → {'fa', 'ar'}; empty when
    it names none (a source named by its outlet, "the Asr Iran report", names no language)."""
    norm = normalize(text)
    return frozenset(lang for lang, pattern in _NAMED_SOURCE.items() if pattern.search(norm))


# "both …", "هر دو …", "كلا …", "كل من …": a question about two or more sources at once
_BOTH = re.compile(r"\b(both)\s+(?:(?:in|from|by)\s+)?(?:the\s+)?|(?:^|\s)(هر\s*دو|کلا|کلتا)\s+|(?:^|\s)(کل\s+من)\s+")


def names_other_sources(text: str) -> bool:
    """Whether a question about "both" of two sources names one of them other than by its
    language: "according to both the Asr Iran report and the Arabic report", "named both in
    the Arabic report and in Obama's remarks" ask about more than the Arabic articles, so
    they cannot be kept to them; "both Arabic reports", "هر دو خبر عربی" and "both the
    Persian and the Arabic articles" name theirs by language."""
    norm = normalize(text)
    if len(named_source_languages(text)) != 1:
        return False
    for m in _BOTH.finditer(norm):
        named = next((n for p in _NAMED_SOURCE.values() if (n := p.match(norm, m.end()))), None)
        # what follows names sources by their language, in the plural ("both Arabic reports");
        # Persian "هر دو" and Arabic "كلا" take a singular or dual noun and still mean two;
        # Arabic "كل من" lists its sources, and only one language is named: another is named otherwise
        if named is None or (m.group(1) and not named.group(0).endswith("s")) or m.group(3):
            return True
    return False


def language_pair(question_lang: str, doc_lang: str) -> str:
    """'fa>ar': the question's language > the language of the document that answers it."""
    return f"{question_lang}>{doc_lang}"

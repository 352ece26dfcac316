"""Repairs for Arabic-script text read out of PDFs (pure functions).

PDF extractors give Arabic and Persian in ways no reader wants: presentation-form letters
(U+FB50–U+FDFF, U+FE70–U+FEFF) instead of normal letters; lines in visual order (every
word and every run of letters reversed, numbers and Latin words left as they were); lines
broken in the middle of paragraphs and words hyphenated across lines. `repair_lines`
undoes each of these; `is_reversed` decides by the document's most common short words
("در", "به", "از" / "في", "من", "على"), which read as "رد", "هب", "زا" / "يف", "نم", "ىلع"
when reversed.
"""

from __future__ import annotations

import re
import unicodedata

_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_PRESENTATION = re.compile(r"[\ufb50-\ufdff\ufe70-\ufeff]")
COMMON = {
    # Persian
    "و", "در", "به", "از", "که", "این", "را", "با", "است", "های", "برای", "آن", "یک", "شد", "شده", "کرد", "می",
    "تا", "هم", "او", "بر", "خود", "اند", "نیز", "کند", "شود", "باید", "گفت", "سال", "روز", "هزار", "میلیون",
    # Arabic
    "في", "من", "على", "إلى", "الى", "أن", "ان", "عن", "التي", "الذي", "مع", "هذا", "هذه", "كان", "قال", "بعد",
    "إن", "أو", "لا", "ما", "كما", "بين", "حتى", "منذ", "عام", "وقال", "ألف", "مليون",
}
_MIRROR = str.maketrans("()[]{}«»<>", ")(][}{»«><")
# a left-to-right island inside a right-to-left line: numbers (with their separators) and Latin words
_LTR = re.compile(r"[0-9۰-۹٠-٩]+(?:[.,٫٬:/\-][0-9۰-۹٠-٩]+)*%?|[A-Za-z][A-Za-z0-9.'\-]*")


def unshape(text: str) -> str:
    """Presentation-form letters → the letters they show (NFKC on those characters only)."""
    if not _PRESENTATION.search(text):
        return text
    return _PRESENTATION.sub(lambda m: unicodedata.normalize("NFKC", m[0]), text)


def has_arabic(text: str) -> bool:
    return bool(_ARABIC.search(text))


def reversal_votes(lines: list[str]) -> tuple[int, int]:
    """(common words read as they are, common words read reversed) over Arabic-script lines."""
    forward = backward = 0
    for line in lines:
        if not has_arabic(line):
            continue
        for w in re.findall(r"[\w\u200c]+", line):
            forward += w in COMMON
            backward += w[::-1] in COMMON and w not in COMMON
        s = line.strip()
        if s[:1] in ".،؛:!؟" and s[-1:] not in ".،؛:!؟":
            backward += 1  # a sentence's final stop at the start of the line
    return forward, backward


def is_reversed(lines: list[str]) -> bool:
    """Whether the Arabic-script lines are in visual (reversed) order."""
    forward, backward = reversal_votes(lines)
    return backward > forward


def unreverse(line: str) -> str:
    """A line in visual order → logical order: the runs are put back in reading order and the
    letters of each right-to-left run reversed; numbers and Latin words stay as they are."""
    runs: list[tuple[bool, str]] = []
    pos = 0
    for m in _LTR.finditer(line):
        if m.start() > pos:
            runs.append((False, line[pos:m.start()]))
        runs.append((True, m[0]))
        pos = m.end()
    if pos < len(line):
        runs.append((False, line[pos:]))
    return "".join(text if ltr else text[::-1].translate(_MIRROR) for ltr, text in reversed(runs))


def join_lines(lines: list[str]) -> str:
    """Lines of one paragraph → one line: words hyphenated at a line end are joined, other lines
    meet with a space (a ZWNJ at a line end joins without one)."""
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if not out:
            out = line
        elif re.search(r"[A-Za-z]-$", out) and line[:1].islower():
            out = out[:-1] + line
        elif out.endswith("\u200c"):
            out += line
        else:
            out += " " + line
    return out


def repair_lines(lines: list[str], reversed_order: bool | None = None) -> list[str]:
    """Presentation forms unshaped, and visual-order Arabic-script lines put in reading order
    (`reversed_order`: None = decide from the lines themselves)."""
    lines = [unshape(line) for line in lines]
    if reversed_order is None:
        reversed_order = is_reversed(lines)
    if reversed_order:
        lines = [unreverse(line) if has_arabic(line) else line for line in lines]
    return lines

"""Dates as users' documents write them → ISO 8601 (`YYYY-MM-DD`, or a full datetime).

Persian and Arabic-Indic digits, Solar Hijri (Jalali) dates (a year below 1700, or a
Persian month name) converted to Gregorian, English and Arabic month names, PDF dates
(`D:20250614…`) and ISO strings. `date_line` finds a date written on a line of its own
among the first lines of an article. Everything here is pure; "" means "no date".
"""

from __future__ import annotations

import datetime as _dt
import re
import time

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")

_EN_MONTHS = {m: i for i, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
    ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
    ("november", "nov"), ("december", "dec")), start=1) for m in names}
_AR_MONTHS = {m: i for i, names in enumerate((
    ("يناير", "كانون الثاني", "ژانویه"), ("فبراير", "شباط", "فوریه"), ("مارس", "آذار"), ("أبريل", "ابريل", "نيسان", "آوریل"),
    ("مايو", "أيار", "ايار", "مه", "مى"), ("يونيو", "يونيه", "حزيران", "ژوئن"), ("يوليو", "يوليه", "تموز", "ژوئیه", "جولای"),
    ("أغسطس", "اغسطس", "آب", "اوت", "آگوست"), ("سبتمبر", "أيلول", "ايلول", "سپتامبر"), ("أكتوبر", "اكتوبر", "تشرين الأول", "اکتبر"),
    ("نوفمبر", "تشرين الثاني", "نوامبر"), ("ديسمبر", "كانون الأول", "دسامبر")), start=1) for m in names}
_FA_MONTHS = {m: i for i, names in enumerate((
    ("فروردین",), ("اردیبهشت",), ("خرداد",), ("تیر",), ("مرداد", "امرداد"), ("شهریور",), ("مهر",), ("آبان",),
    ("آذر",), ("دی",), ("بهمن",), ("اسفند",)), start=1) for m in names}
_WEEKDAYS = ("شنبه", "یکشنبه", "یک‌شنبه", "دوشنبه", "سه‌شنبه", "سه شنبه", "چهارشنبه", "پنجشنبه", "پنج‌شنبه", "جمعه",
             "السبت", "الأحد", "الاحد", "الإثنين", "الاثنين", "الثلاثاء", "الأربعاء", "الاربعاء", "الخميس", "الجمعة",
             "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
             "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def jalali_to_gregorian(jy: int, jm: int, jd: int) -> _dt.date:
    """A Solar Hijri (Jalali) date → the Gregorian date (the arithmetic calendar used in Iran
    for 1178–1633 AP, exact over that range)."""
    if not (1 <= jm <= 12 and 1 <= jd <= (31 if jm <= 6 else 30)):
        raise ValueError(f"not a Jalali date: {jy}/{jm}/{jd}")
    jy += 1595
    days = -355668 + 365 * jy + (jy // 33) * 8 + ((jy % 33) + 3) // 4 + jd
    days += (jm - 1) * 31 if jm < 7 else (jm - 7) * 30 + 186
    gy = 400 * (days // 146097)
    days %= 146097
    if days > 36524:
        days -= 1
        gy += 100 * (days // 36524)
        days %= 36524
        if days >= 365:
            days += 1
    gy += 4 * (days // 1461)
    days %= 1461
    if days > 365:
        gy += (days - 1) // 365
        days = (days - 1) % 365
    gd = days + 1
    leap = (gy % 4 == 0 and gy % 100 != 0) or gy % 400 == 0
    for gm, n in enumerate((31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1):
        if gd <= n:
            return _dt.date(gy, gm, gd)
        gd -= n
    raise ValueError(f"not a Jalali date: {jy - 1595}/{jm}/{jd}")


def _ymd(y: int, m: int, d: int, jalali: bool | None = None) -> str:
    """ISO of a year/month/day; a year below 1700 is Solar Hijri unless jalali=False."""
    try:
        if jalali or (jalali is None and y < 1700):
            if not 1200 <= y <= 1600:
                return ""
            return jalali_to_gregorian(y, m, d).isoformat()
        if not 1800 <= y <= 2200:
            return ""
        return _dt.date(y, m, d).isoformat()
    except ValueError:
        return ""


_NUM = r"(\d{1,4})"
_SEP = r"\s*[/\-.]\s*"
_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)"), "isotime"),
    (re.compile(rf"(?<!\d)(\d{{4}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})(?!\d)"), "ymd"),
    (re.compile(rf"(?<!\d)(\d{{1,2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{4}})(?!\d)"), "dmy"),
    (re.compile(r"(?<!\d)(\d{1,2})(?:st|nd|rd|th)?\s+([^\W\d_]+(?:\s(?:الثاني|الأول|الاول))?)[,،]?\s+(\d{4})(?!\d)"), "d month y"),
    (re.compile(r"([A-Za-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})(?!\d)"), "month d y"),
]


def _month(name: str) -> tuple[int, bool | None] | None:
    """(month number, jalali?) of a month name in English, Arabic or Persian."""
    key = name.strip().lower().rstrip(".")
    if key in _EN_MONTHS:
        return _EN_MONTHS[key], False
    if key in _FA_MONTHS:
        return _FA_MONTHS[key], True
    if key in _AR_MONTHS:
        return _AR_MONTHS[key], False
    return None


def find_date(text: str) -> tuple[str, tuple[int, int]]:
    """The first date written in `text`: (ISO, (start, end) of its match), or ("", (0, 0))."""
    plain = text.translate(_DIGITS)  # same length: offsets stay valid
    found: list[tuple[int, int, str]] = []
    for pattern, kind in _PATTERNS:
        for m in pattern.finditer(plain):
            iso = ""
            if kind == "isotime":
                iso = _ymd(int(m[1]), int(m[2]), int(m[3]))
                if iso:
                    iso = _iso_datetime(f"{m[1]}-{m[2]}-{m[3]}T{m[4]}") or iso
            elif kind == "ymd":
                iso = _ymd(int(m[1]), int(m[2]), int(m[3]))
            elif kind == "dmy":
                iso = _ymd(int(m[3]), int(m[2]), int(m[1]))
            elif kind == "d month y":
                month = _month(m[2])
                if month:
                    iso = _ymd(int(m[3]), month[0], int(m[1]), month[1] if month[1] else (None if int(m[3]) < 1700 else False))
            elif kind == "month d y":
                month = _month(m[1])
                if month and not month[1]:
                    iso = _ymd(int(m[3]), month[0], int(m[2]), False)
            if iso:
                found.append((m.start(), m.end(), iso))
                break
    if not found:
        return "", (0, 0)
    start, end, iso = min(found, key=lambda f: (f[0], -f[1]))  # the earliest, then the longest
    return iso, (start, end)


def _iso_datetime(value: str) -> str:
    try:
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return ""


def to_iso(value) -> str:
    """Any date value met in documents → ISO 8601, or "" when none can be read.

    Accepts date/datetime objects, time.struct_time (feedparser), PDF dates
    (`D:20250614102000+03'30'`) and any string `find_date` reads."""
    if value is None or value == "":
        return ""
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, time.struct_time):
        return _ymd(value.tm_year, value.tm_mon, value.tm_mday, False)
    text = str(value).strip()
    m = re.fullmatch(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?([Zz+\-].*)?", text)
    if m:  # PDF date string (ISO 32000 7.9.4); the date part is what matters here
        return _ymd(int(m[1]), int(m[2] or 1), int(m[3] or 1), False)
    iso, _ = find_date(text)
    return iso


def date_line(text: str, lines: int = 5) -> str:
    """The date of an article whose first lines hold a line that is only a date (a weekday,
    a label such as "Date:" or "تاریخ:" and punctuation may go with it); "" when none.
    Conservative on purpose: a date inside a sentence is not the article's date."""
    seen = 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        seen += 1
        if seen > lines:
            break
        iso, (a, b) = find_date(line)
        if not iso:
            continue
        rest = (line[:a] + " " + line[b:]).lower()
        for w in sorted(_WEEKDAYS, key=len, reverse=True):
            rest = rest.replace(w, " ")
        rest = re.sub(r"(?i)\b(date|published|updated|posted)\b|تاریخ(?: انتشار)?|انتشار|منتشر شده|نشر في|بتاريخ|تاريخ النشر", " ", rest)
        rest = re.sub(r"\d{1,2}:\d{2}(:\d{2})?|[\d۰-۹٠-٩]|[^\w]|_", " ", rest)
        if len("".join(rest.split())) <= 3:
            return iso
    return ""

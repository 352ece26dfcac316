"""Dates from documents → ISO 8601: digits, Jalali, month names, PDF dates, date lines."""

import datetime as dt
import time

import pytest

from rag.corpus import make_document
from rag.formats.dates import date_line, find_date, jalali_to_gregorian, to_iso


@pytest.mark.parametrize("jalali, gregorian", [
    ((1404, 1, 1), "2025-03-21"),  # Nowruz
    ((1403, 1, 1), "2024-03-20"),  # after a Gregorian leap day
    ((1403, 12, 30), "2025-03-20"),  # the leap Esfand 30 of 1403
    ((1402, 12, 29), "2024-03-19"),
    ((1404, 3, 24), "2025-06-14"),
    ((1360, 7, 8), "1981-09-30"),
])
def test_jalali_to_gregorian(jalali, gregorian):
    assert jalali_to_gregorian(*jalali).isoformat() == gregorian


def test_every_gregorian_day_of_a_decade_round_trips_through_nowruz_anchors():
    # consecutive Jalali days map to consecutive Gregorian days
    days = [jalali_to_gregorian(y, m, d) for y in range(1395, 1406) for m in range(1, 13)
            for d in range(1, (31 if m <= 6 else 30) + 1)
            if not (m == 12 and d == 30 and y not in (1395, 1399, 1403))]
    assert all(b - a == dt.timedelta(days=1) for a, b in zip(days, days[1:], strict=False))


@pytest.mark.parametrize("text, iso", [
    ("۱۴۰۴/۰۳/۲۵", "2025-06-15"),
    ("2025-06-14", "2025-06-14"),
    ("14 June 2025", "2025-06-14"),
    ("June 14, 2025", "2025-06-14"),
    ("Sat, 14 Jun 2025 10:20:00 GMT", "2025-06-14"),
    ("۲۴ خرداد ۱۴۰۴", "2025-06-14"),
    ("الأحد ١٥ حزيران ٢٠٢٥", "2025-06-15"),
    ("١٨ مايو ٢٠٢٥", "2025-05-18"),
    ("14/06/2025", "2025-06-14"),
    ("D:20250614102000+03'30'", "2025-06-14"),
    ("2025-06-14T10:20:00+03:30", "2025-06-14T10:20:00+03:30"),
    ("2025-02-30", ""),
    ("year 2025", ""),
    ("", ""),
])
def test_to_iso(text, iso):
    assert to_iso(text) == iso


def test_to_iso_of_objects():
    assert to_iso(dt.date(2025, 1, 2)) == "2025-01-02"
    assert to_iso(time.strptime("2024-12-31", "%Y-%m-%d")) == "2024-12-31"


def test_date_line_is_conservative():
    assert date_line("عنوان خبر\nشنبه ۲۴ خرداد ۱۴۰۴\nمتن خبر") == "2025-06-14"
    assert date_line("Title\nPublished: 14 June 2025, 10:20\nBody") == "2025-06-14"
    assert date_line("العنوان\nتاريخ النشر: ١٨ مايو ٢٠٢٥\nالنص") == "2025-05-18"
    assert date_line("در تاریخ ۱۴۰۴/۰۳/۲۵ جلسه‌ای در تهران برگزار شد") == ""  # a date inside a sentence
    assert date_line("a\nb\nc\nd\ne\n2025-06-14") == ""  # only the first five lines
    assert find_date("nothing here") == ("", (0, 0))


def test_documents_get_iso_dates_from_fields_and_date_lines():
    assert make_document("عنوان\n۱۴۰۴/۰۳/۲۴\nمتن خبر", "a.txt").date == "2025-06-14"
    assert make_document("Body text.", "b.jsonl#1", date="14 June 2025").date == "2025-06-14"
    assert make_document("Body text.", "c.jsonl#1", date="not a date").date == ""

"""Benchmark: what document extraction keeps and drops, per format, on the labelled
fixtures in tests/data/ (rebuild them with `python tests/data/make_fixtures.py`).

    python eval/bench_documents.py

- saved news pages: share of article characters kept, share of site furniture (menus,
  related links, comment forms, footers) dropped, publication date found — for the
  article extractor (trafilatura) and, for comparison, the visible-text reader;
- PDFs: whether the text read back equals what was written (after the repair of
  Arabic-script text), per extractor (pypdfium2, which rag uses, and pdfplumber);
- Word files: article characters kept, headings, tables.

Shares are over characters, after collapsing white space; nothing else is normalised
(a lost ZWNJ counts as a lost character).
"""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path

from rag.corpus import read_file
from rag.evaluation.bench import table
from rag.formats.html import visible_text
from rag.runtime import cpu_flags_line

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def squash(text: str) -> str:
    return " ".join(text.split())


def kept_chars(paragraph: str, text: str) -> int:
    """Characters of `paragraph` found in `text` (whole, else in matching runs of ≥ 10)."""
    p, t = squash(paragraph), squash(text)
    if p in t:
        return len(p)
    sm = difflib.SequenceMatcher(None, p, t, autojunk=False)
    return sum(b.size for b in sm.get_matching_blocks() if b.size >= 10)


def kept_share(article: list[str], text: str) -> float:
    total = sum(len(squash(p)) for p in article)
    return sum(kept_chars(p, text) for p in article) / total if total else 1.0


def dropped_share(noise: list[str], article: list[str], title: str, text: str) -> float:
    """Share of the furniture's characters not in `text` once the article and title are taken out."""
    rest = squash(text)
    for p in [*article, title]:
        rest = rest.replace(squash(p), " ")
    total = sum(len(n) for n in noise)
    return sum(len(n) for n in noise if squash(n) not in rest) / total if total else 1.0


def bench_pages(labels: list[dict]) -> None:
    rows, detail = [], []
    groups: dict[str, dict[str, list]] = {}
    for lab in labels:
        html = (DATA / lab["file"]).read_text("utf-8")
        t0 = time.perf_counter()
        doc, _ = read_file(DATA / lab["file"], lab["file"])  # the corpus reader: extraction + cleaning + date
        ms = (time.perf_counter() - t0) * 1000
        d = doc[0]
        _, vis = visible_text(html)
        k, dr = kept_share(lab["article"], d.text), dropped_share(lab["noise"], lab["article"], lab["title"], d.text)
        vk, vd = kept_share(lab["article"], vis), dropped_share(lab["noise"], lab["article"], lab["title"], vis)
        ok = d.date[:10] == lab["date"]
        detail.append([lab["file"], lab["lang"], lab["layout"], d.extractor, k, dr, d.date or "—", lab["date"],
                       "yes" if ok else "NO", f"{ms:.0f}"])
        for key in (lab["lang"], "all"):
            g = groups.setdefault(key, {"k": [], "d": [], "ok": [], "vk": [], "vd": []})
            g["k"].append(k), g["d"].append(dr), g["ok"].append(ok), g["vk"].append(vk), g["vd"].append(vd)
    for key, g in groups.items():
        n = len(g["k"])
        rows.append([key, n, sum(g["k"]) / n, sum(g["d"]) / n, f"{sum(g['ok'])}/{n}", sum(g["vk"]) / n,
                     sum(g["vd"]) / n])
    print(table("Saved news pages (targets: article kept ≥ .95, furniture dropped ≥ .90, dates ≥ 9 of 10)",
                ["pages", "n", "article kept", "furniture dropped", "date right",
                 "visible text: kept", "visible text: dropped"], rows))
    print(table("Per page", ["file", "lang", "layout", "extractor", "kept", "dropped", "date found", "date written",
                             "right", "ms"], detail))


def bench_docx(labels: list[dict]) -> None:
    rows = []
    for lab in labels:
        d = read_file(DATA / lab["file"], lab["file"])[0][0]
        rows.append([lab["file"], lab["lang"], kept_share(lab["article"], d.text),
                     f"{sum(r in d.text.split(chr(10)) for r in lab['table_rows'])}/{len(lab['table_rows'])}",
                     "yes" if d.title == lab["title"] else "NO", d.date or "—",
                     "yes" if d.date[:10] == lab["date"] else "NO"])
    print(table("Word files (python-docx)", ["file", "lang", "article kept", "table rows", "title right", "date",
                                             "date right"], rows))


def bench_pdfs(labels: list[dict]) -> None:
    from rag.formats.pdf import extract, extract_pdfium

    rows = []
    for lab in labels:
        data = (DATA / lab["file"]).read_bytes()
        if not lab["pages"]:
            try:
                read = extract(data)
                verdict = f"indexed {len(read.page_texts)} page(s)?"
            except Exception as e:  # noqa: BLE001 - the expected refusal is printed
                verdict = str(e)
            rows.append([lab["file"], "—", "—", "—", "—", "—", verdict[:60]])
            continue
        want = [squash(" ".join(p)) for p in lab["pages"]]
        t0 = time.perf_counter()
        plumber = read_file(DATA / lab["file"], lab["file"])[0][0]
        ms = (time.perf_counter() - t0) * 1000
        got = [squash(plumber.text[a:b]) for a, b in zip(plumber.pages, [*plumber.pages[1:], len(plumber.text)],
                                                         strict=True)]
        t0 = time.perf_counter()
        pdfium = [squash(t) for t in extract_pdfium(data)]
        ms_pdfium = (time.perf_counter() - t0) * 1000
        sim = lambda a, b: difflib.SequenceMatcher(None, " ".join(a), " ".join(b), autojunk=False).ratio()  # noqa: E731
        rows.append([lab["file"], lab["lang"], lab["columns"],
                     f"{'yes' if got == want else 'NO'} ({sim(got, want):.3f})",
                     f"{'yes' if pdfium == want else 'NO'} ({sim(pdfium, want):.3f})",
                     f"{len(plumber.pages)}/{len(want)}", f"{plumber.date[:10] == lab['date']} · {ms:.0f} / {ms_pdfium:.0f} ms"])
    print(table("PDFs: page text equal to what was written, after repair (similarity)",
                ["file", "lang", "columns", "pdfplumber (rag)", "pypdfium2", "pages", "date right · ms plumber / pdfium"],
                rows))


def main() -> None:
    labels = json.loads((DATA / "labels.json").read_text("utf-8"))
    print(cpu_flags_line())
    bench_pages(labels["pages"])
    bench_docx(labels["docx"])
    bench_pdfs(labels["pdf"])


if __name__ == "__main__":
    main()

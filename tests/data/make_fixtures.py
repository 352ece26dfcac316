"""Rebuild the document fixtures under tests/data/ from the articles in articles.py.

    python tests/data/make_fixtures.py          # pages/, pdf/, docx/, feed/ and labels.json

Saved news pages are rendered with six page layouts (dates in a meta tag, a <time>
element, JSON-LD, or only as visible text; "read also" links inside the body; an old table layout; menus, related links, comment forms, footers
around the article); short articles (a headline, a date and about 230 characters of body) in
two more: "short", the furniture in <nav>, <aside>, <form>, <footer> and classes named for
it, and "short-divs", the furniture in plain <div>s (paragraphs too) and only the article's
body marked (itemprop="articleBody"). PDFs are written with fpdf2, whose text shaping (HarfBuzz) produces
Arabic-script PDFs as real tools do; Word files with python-docx. Output is deterministic.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from rag.formats.dates import jalali_to_gregorian  # noqa: E402
from tests.data.articles import ARTICLES, FURNITURE, SHORT_ARTICLES  # noqa: E402

FA_MONTHS = ["فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان", "آذر", "دی", "بهمن", "اسفند"]
AR_MONTHS = ["يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو", "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر"]
FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
AR_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def to_jalali(d: dt.date) -> tuple[int, int, int]:
    for jy in (d.year - 622, d.year - 621):
        for jm in range(1, 13):
            for jd in range(1, 32 if jm <= 6 else 31):
                try:
                    if jalali_to_gregorian(jy, jm, jd) == d:
                        return jy, jm, jd
                except ValueError:
                    continue
    raise ValueError(d)


def visible_date(a: dict) -> str:
    d = dt.date.fromisoformat(a["date"])
    if a["lang"] == "fa":
        jy, jm, jd = to_jalali(d)
        return f"{jd} {FA_MONTHS[jm - 1]} {jy} - 10:30".translate(FA_DIGITS)
    if a["lang"] == "ar":
        return f"{d.day} {AR_MONTHS[d.month - 1]} {d.year}".translate(AR_DIGITS)
    return d.strftime("%-d %B %Y")


def esc(s: str) -> str:
    return html.escape(s, quote=True)


def page(a: dict, layout: int) -> str:
    f = FURNITURE[a["lang"]]
    rtl = a["lang"] in ("fa", "ar")
    iso = a["date"] + "T10:30:00+03:30" if a["lang"] == "fa" else a["date"] + "T08:00:00+00:00"
    url = f"https://news.example/{a['lang']}/{a['id']}"
    menu = "".join(f'<li><a href="/{i}">{esc(m)}</a></li>' for i, m in enumerate(f["menu"]))
    related = "".join(f'<li><a href="/r{i}">{esc(r)}</a></li>' for i, r in enumerate(f["related"]))
    most = "".join(f'<li><a href="/m{i}">{esc(r)}</a></li>' for i, r in enumerate(f["most_read"]))
    body = "\n".join(f"<p>{esc(p)}</p>" for p in a["body"])
    labels = f["comment_labels"]
    comments = (f'<section class="comments" id="comments"><h3>{esc(f["comments_title"])}</h3>'
                f'<div class="comment"><span class="author">user42</span><p>{esc(f["comments"][0])}</p></div>'
                f'<form action="/comment" method="post"><label>{esc(labels[0])}</label><input name="n">'
                f'<label>{esc(labels[1])}</label><input name="e"><textarea name="c"></textarea>'
                f'<button type="submit">{esc(labels[2])}</button></form></section>')
    head_meta = ""
    date_html = f'<span class="date">{esc(visible_date(a))}</span>'
    if layout == 0:
        head_meta = f'<meta property="article:published_time" content="{iso}">'
    elif layout == 1:
        date_html = f'<time datetime="{iso}">{esc(visible_date(a))}</time>'
    elif layout == 2:
        ld = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": a["title"], "datePublished": iso,
              "author": {"@type": "Person", "name": "Newsroom"}}
        head_meta = f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'
    elif layout == 3:
        date_html = f'<div class="news-date">{esc(visible_date(a))}</div>'
    else:  # 4, 5: a labelled date line in the page's own digits
        date_html = f'<p class="meta">{esc(f["published"])} {esc(visible_date(a))}</p>'
    head = (f'<head><meta charset="utf-8"><title>{esc(a["title"])} | {esc(f["footer"][:20])}</title>'
            f'<link rel="canonical" href="{url}">{head_meta}<style>body{{font-family:sans-serif}}</style>'
            f'<script>var ads = [];</script></head>')
    share = f'<div class="share"><span>{esc(f["share"])}</span><a href="#">X</a><a href="#">Telegram</a></div>'
    newsletter = f'<aside class="newsletter"><p>{esc(f["newsletter"])}</p><input type="email"></aside>'
    aside = (f'<aside class="sidebar"><h3>{esc(f["most_read_title"])}</h3><ul>{most}</ul></aside>')
    rel = f'<div class="related"><h3>{esc(f["related_title"])}</h3><ul>{related}</ul></div>'
    footer = f'<footer><p>{esc(f["footer"])}</p></footer>'
    if layout == 4:  # "read also" links inside the body, several reader comments
        paras = [f"<p>{esc(p)}</p>" for p in a["body"]]
        paras.insert(2, f'<div class="read-also"><b>{esc(f["read_also"])}</b> <a href="/r0">{esc(f["related"][0])}</a></div>')
        more = "".join(f'<div class="user-opinion"><b>user{i}</b><p>{esc(c)}</p></div>' for i, c in enumerate(f["comments"] * 3))
        main = (f'<div class="story"><h2>{esc(a["title"])}</h2>{date_html}{"".join(paras)}{share}</div>'
                f'<div class="opinions"><h4>{esc(f["comments_title"])}</h4>{more}'
                f'<form><input placeholder="{esc(labels[0])}"><button>{esc(labels[2])}</button></form>'
                f'<span>{esc(labels[1])}</span></div>{rel}')
    elif layout == 5:  # an old table layout: menu, article and widgets in cells
        main = (f'<table width="100%"><tr><td class="right">{aside}{newsletter}</td>'
                f'<td class="center"><h2>{esc(a["title"])}</h2>{date_html}{body}{share}{rel}{comments}</td></tr></table>')
        aside = ""
    elif layout in (0, 2):
        main = (f'<article><h1>{esc(a["title"])}</h1>{date_html}<div class="body">{body}</div>{share}</article>'
                f'{rel}{comments}')
    else:  # no <article>: the body is one div among many
        main = (f'<div class="breadcrumb"><a href="/">{esc(f["menu"][0])}</a> › <a href="/1">{esc(f["menu"][1])}</a></div>'
                f'<div class="news"><h1 class="headline">{esc(a["title"])}</h1>{date_html}'
                f'<div class="news-body">{body}</div>{share}</div>{newsletter}{rel}{comments}')
    return (f'<!DOCTYPE html><html lang="{a["lang"]}"{" dir=rtl" if rtl else ""}>{head}<body>'
            f'<header><nav><ul>{menu}</ul></nav></header><main>{main}</main>{aside}{footer}</body></html>\n')


def links(titles: list[str], prefix: str, tag: str) -> str:
    """Links to other pages, one per <li> or <div class="item">."""
    attr = ' class="item"' if tag == "div" else ""
    return "".join(f'<{tag}{attr}><a href="/{prefix}{i}">{esc(t)}</a></{tag}>' for i, t in enumerate(titles))


def short_page(a: dict, layout: str) -> str:
    """A short article among a menu, ads, related links, a comment form and a footer."""
    f = FURNITURE[a["lang"]]
    rtl = a["lang"] in ("fa", "ar")
    iso = a["date"] + "T10:30:00+03:30" if a["lang"] == "fa" else a["date"] + "T08:00:00+00:00"
    url = f"https://news.example/{a['lang']}/{a['id']}"
    body = "\n".join(f"<p>{esc(p)}</p>" for p in a["body"])
    labels = f["comment_labels"]
    form = (f'<form action="/comment" method="post"><label>{esc(labels[0])}</label><input name="n">'
            f'<label>{esc(labels[1])}</label><input name="e"><textarea name="c"></textarea>'
            f'<button type="submit">{esc(labels[2])}</button></form>')
    head_meta = ""
    if layout == "short":  # the furniture marked as such: <nav>, <aside>, <form>, <footer>, class names
        if a["lang"] == "fa":
            date_html = f'<time datetime="{iso}">{esc(visible_date(a))}</time>'
        else:
            head_meta = f'<meta property="article:published_time" content="{iso}">'
            date_html = f'<span class="date">{esc(visible_date(a))}</span>'
        page_body = (
            f'<header class="site-header"><a class="logo" href="/">news.example</a><nav class="main-menu"><ul>'
            f'{links(f["menu"], "s", "li")}</ul></nav></header>'
            f'<div class="ad ad-top"><a href="/ads/1" rel="sponsored">{esc(f["ad"])}</a></div>'
            f'<main><article class="news"><header><h1>{esc(a["title"])}</h1>{date_html}</header>'
            f'<div class="news-body">{body}</div>'
            f'<div class="share"><span>{esc(f["share"])}</span><a href="#">X</a><a href="#">Telegram</a></div></article>'
            f'<section class="related"><h3>{esc(f["related_title"])}</h3><ul>{links(f["related"], "r", "li")}</ul></section>'
            f'<section class="comments" id="comments"><h3>{esc(f["comments_title"])}</h3>'
            f'<div class="comment"><span class="author">user42</span><p>{esc(f["comments"][0])}</p></div>{form}</section>'
            f'</main><aside class="sidebar"><div class="ad"><a href="/ads/2" rel="sponsored">{esc(f["ad"])}</a></div>'
            f'<h3>{esc(f["most_read_title"])}</h3><ul>{links(f["most_read"], "m", "li")}</ul></aside>'
            f'<footer><p>{esc(f["footer"])}</p></footer>')
    else:  # "short-divs": every block a plain <div>, paragraphs too; only the body is marked
        body = "\n".join(f"<div>{esc(p)}</div>" for p in a["body"])
        if a["lang"] == "fa":  # the body marked alone; the date a labelled line of its own above it
            article = (f'<div class="news"><h1 class="title">{esc(a["title"])}</h1>'
                       f'<div>{esc(f["published"])} {esc(visible_date(a))}</div>'
                       f'<div class="text" itemprop="articleBody">{body}</div></div>')
        else:  # schema.org microdata: headline, date and body
            article = (f'<div itemscope itemtype="https://schema.org/NewsArticle">'
                       f'<h1 itemprop="headline">{esc(a["title"])}</h1>'
                       f'<span itemprop="datePublished" content="{iso}">{esc(visible_date(a))}</span>'
                       f'<div itemprop="articleBody">{body}</div></div>')
        page_body = (
            f'<div id="top"><div class="logo"><a href="/">news.example</a></div><div class="menu">'
            f'{links(f["menu"], "s", "div")}</div></div>'
            f'<div class="box1"><a href="/ads/1"><img src="/b/1.gif" alt="">{esc(f["ad"])}</a></div>'
            f'<div class="wrap"><div class="col-r">{article}'
            f'<div class="box2"><div class="box-title">{esc(f["related_title"])}</div>{links(f["related"], "r", "div")}</div>'
            f'<div class="box3"><div class="box-title">{esc(f["comments_title"])}</div>'
            f'<div class="item"><b>user42</b><div>{esc(f["comments"][0])}</div></div><div class="box-form">{form}</div></div>'
            f'</div><div class="col-l"><div class="box1"><a href="/ads/2">{esc(f["ad"])}</a></div>'
            f'<div class="box-title">{esc(f["most_read_title"])}</div>{links(f["most_read"], "m", "div")}</div></div>'
            f'<div id="bottom"><div>{esc(f["footer"])}</div></div>')
    head = (f'<head><meta charset="utf-8"><title>{esc(a["title"])} | {esc(f["footer"][:20])}</title>'
            f'<link rel="canonical" href="{url}">{head_meta}<style>body{{font-family:sans-serif}}</style>'
            f'<script>var ads = [];</script></head>')
    return f'<!DOCTYPE html><html lang="{a["lang"]}"{" dir=rtl" if rtl else ""}>{head}<body>{page_body}</body></html>\n'


def noise(a: dict) -> list[str]:
    """What surrounds the article on its page (extraction should drop it)."""
    f = FURNITURE[a["lang"]]
    return [*f["menu"], f["related_title"], *f["related"], f["most_read_title"], *f["most_read"],
            f["comments_title"], *f["comment_labels"], *f["comments"], f["share"], f["footer"], f["newsletter"],
            f["read_also"]]


def make_pages(out: Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for n, a in enumerate(ARTICLES):
        name = f"{a['id']}.html"
        (out / name).write_text(page(a, n % 6), "utf-8")
        labels.append({"file": f"pages/{name}", "lang": a["lang"], "layout": n % 6, "title": a["title"],
                       "date": a["date"], "article": a["body"], "noise": noise(a)})
    for a in SHORT_ARTICLES:
        for layout in ("short", "short-divs"):
            name = f"{a['id']}{layout[5:].replace('-', '_')}.html"
            (out / name).write_text(short_page(a, layout), "utf-8")
            labels.append({"file": f"pages/{name}", "lang": a["lang"], "layout": layout, "title": a["title"],
                           "date": a["date"], "article": a["body"], "noise": [*noise(a), FURNITURE[a["lang"]]["ad"]]})
    return labels


def make_docx(out: Path) -> list[dict]:
    """One Word file per language: Title style, a heading, the body, a table, a fixed date."""
    import docx

    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for a, rows in ((ARTICLES[1], [["ایستگاه", "طول خط (کیلومتر)"], ["میدان صنعت", "۲۷"]]),
                    (ARTICLES[6], [["الدورة", "الزوار"], ["السادسة والخمسون", "خمسة ملايين"]]),
                    (ARTICLES[10], [["Seats", "Books"], ["600", "400,000"]])):
        d = docx.Document()
        d.core_properties.created = dt.datetime(2023, 1, 1, 9, 0)  # the file's date: the date line wins
        d.core_properties.author = "Newsroom"
        d.add_paragraph(a["title"], style="Title")
        d.add_paragraph(visible_date(a))
        d.add_paragraph(a["body"][0])
        d.add_heading({"fa": "جزئیات", "ar": "التفاصيل", "en": "Details"}[a["lang"]], level=2)
        for p in a["body"][1:]:
            d.add_paragraph(p)
        t = d.add_table(rows=len(rows), cols=2)
        for r, row in enumerate(rows):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
        name = f"{a['id']}.docx"
        d.save(out / name)
        _fix_zip_dates(out / name)
        labels.append({"file": f"docx/{name}", "lang": a["lang"], "title": a["title"], "date": a["date"],
                       "article": a["body"], "table_rows": [" | ".join(r) for r in rows]})
    return labels


def _fix_zip_dates(path: Path) -> None:
    """Rewrite a zip (docx) with fixed member dates and a fixed modified date, so a rebuild is byte-identical."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            if name == "docProps/core.xml":
                data = re.sub(rb"<dcterms:modified[^>]*>[^<]*</dcterms:modified>", b"", data)
            z.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu-core: Arabic glyphs


def _pdf(a: dict):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(dt.datetime.fromisoformat(a["date"] + "T09:00:00+00:00"))
    pdf.set_title(a["title"])
    pdf.add_font("dejavu", fname=str(FONT))
    pdf.set_font("dejavu", size=12)
    pdf.set_text_shaping(True)  # HarfBuzz: contextual forms, lam-alef ligatures, right-to-left runs
    return pdf


def make_pdfs(out: Path) -> list[dict]:
    """Persian (two pages), Arabic and English articles in one column, a Persian one in two
    columns, and an image-only PDF (no text layer)."""
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for a, pages in ((ARTICLES[0], [[0, 1], [2]]), (ARTICLES[4], [[0, 1, 2]]), (ARTICLES[3], [[0, 1, 2]]),
                     (ARTICLES[8], [[0, 1], [2]])):
        rtl = a["lang"] in ("fa", "ar")
        pdf = _pdf(a)
        for n, paras in enumerate(pages):
            pdf.add_page()
            if n == 0:
                pdf.multi_cell(0, 8, a["title"], align="R" if rtl else "L")
                pdf.ln(4)
            for i in paras:
                pdf.multi_cell(0, 7, a["body"][i], align="R" if rtl else "L")
                pdf.ln(3)
        name = f"{a['id']}.pdf"
        pdf.output(str(out / name))
        labels.append({"file": f"pdf/{name}", "lang": a["lang"], "columns": 1, "title": a["title"],
                       "date": a["date"], "pages": [[a["title"]] * (n == 0) + [a["body"][i] for i in p]
                                                    for n, p in enumerate(pages)]})
    # two columns, right to left: the right column is read first
    a = ARTICLES[2]
    pdf = _pdf(a)
    pdf.add_page()
    pdf.multi_cell(0, 8, a["title"], align="R")
    pdf.ln(4)
    top, width = pdf.get_y(), (pdf.epw - 10) / 2
    pdf.set_xy(pdf.l_margin + width + 10, top)
    for i in (0, 1):
        pdf.set_x(pdf.l_margin + width + 10)
        pdf.multi_cell(width, 7, a["body"][i], align="R")
        pdf.ln(3)
    pdf.set_xy(pdf.l_margin, top)
    pdf.multi_cell(width, 7, a["body"][2], align="R")
    name = f"{a['id']}_2col.pdf"
    pdf.output(str(out / name))
    labels.append({"file": f"pdf/{name}", "lang": "fa", "columns": 2, "title": a["title"], "date": a["date"],
                   "pages": [[a["title"], *a["body"]]]})
    # a scan: a page with a drawing and no text
    pdf = _pdf(a)
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    pdf.output(str(out / "scan.pdf"))
    labels.append({"file": "pdf/scan.pdf", "lang": "", "columns": 0, "title": "", "date": "", "pages": []})
    return labels


def main() -> None:
    labels = {"pages": make_pages(HERE / "pages"), "docx": make_docx(HERE / "docx"), "pdf": make_pdfs(HERE / "pdf")}
    (HERE / "labels.json").write_text(json.dumps(labels, ensure_ascii=False, indent=1) + "\n", "utf-8")
    print(f"wrote {sum(len(v) for v in labels.values())} labelled fixtures under {HERE}")


if __name__ == "__main__":
    main()

"""Word files (.docx, python-docx): paragraphs and tables in document order, headings as
titles, one line per table row (cells separated by " | ")."""

from __future__ import annotations

import io

from rag.formats import Extracted, NoText
from rag.formats.dates import date_line, to_iso


def _is_heading(paragraph) -> bool:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    return name == "Title" or name.startswith("Heading")


def extract(data: bytes) -> Extracted:
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    lines: list[str] = []
    title = ""
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:  # a merged cell is repeated per grid column: keep it once
                    text = " ".join(cell.text.split())
                    if text and (not cells or cells[-1] != text):
                        cells.append(text)
                if cells:
                    lines.append(" | ".join(cells))
            lines.append("")
            continue
        text = block.text.strip()
        if not text:
            continue
        if _is_heading(block) and not title:
            title = text
        lines.append(text)
    text = "\n".join(lines).strip()
    if not any(ch.isalnum() for ch in text):
        raise NoText("no text in this Word file")
    props = document.core_properties
    date = date_line(text) or to_iso(props.created)[:10]  # the day the file was made, when the text has no date line
    return Extracted(text, title=(props.title or "").strip() or title, date=date,
                     author=(props.author or "").strip(), extractor="python-docx")

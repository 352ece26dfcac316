"""Feeds: `rag add FEED` stores each item with its link and date and skips items already
there; the feed and its linked pages are served from 127.0.0.1."""

import functools
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from rag.corpus import load_corpus
from rag.feeds import add_feed
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data"


def _rss(base: str, items: list[tuple[str, str, str, str]]) -> str:
    body = "".join(f"<item><title>{t}</title><link>{base}/{link}</link><pubDate>{date}</pubDate>"
                   f"<description><![CDATA[<p>{summary}</p>]]></description></item>"
                   for t, link, date, summary in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Example News</title>'
            f"<link>{base}/</link><description>test</description>{body}</channel></rss>")


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    for name in ("fa_dam.html", "en_bridge.html"):
        (root / name).write_bytes((DATA / "pages" / name).read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    items = [("سد کرج", "fa_dam.html", "Sat, 14 Jun 2025 07:00:00 GMT", "خلاصه خبر سد"),
             ("Harbour bridge", "en_bridge.html", "Mon, 07 Apr 2025 08:00:00 GMT", "Bridge summary"),
             ("Gone page", "missing.html", "Tue, 01 Jul 2025 08:00:00 GMT", "The page is gone but the feed says enough.")]
    (root / "feed.xml").write_text(_rss(base, items[:2]), "utf-8")
    (root / "feed2.xml").write_text(_rss(base, items), "utf-8")
    yield base, root
    server.shutdown()


def test_feed_items_become_documents_with_link_and_date_and_are_added_once(tmp_path, site):
    base, _ = site
    corpus = tmp_path / "corpus"
    first = add_feed(f"{base}/feed.xml", corpus)
    assert first.added == [f"{base}/fa_dam.html", f"{base}/en_bridge.html"] and first.known == []
    docs = {d.url: d for d in load_corpus(corpus, tmp_path).documents}
    dam = docs[f"{base}/fa_dam.html"]
    assert dam.date == "2025-06-14" and dam.title == "سد کرج" and dam.source.startswith("corpus/feeds/Example_News.jsonl#")
    assert "۲۲ درصد" in dam.text and "نظر شما" not in dam.text  # the linked page's article, not its furniture
    again = add_feed(f"{base}/feed2.xml", corpus)  # the same items plus one whose page is gone
    assert again.known == [f"{base}/fa_dam.html", f"{base}/en_bridge.html"]
    assert again.added == [f"{base}/missing.html"] and again.from_feed == [f"{base}/missing.html"]
    docs = {d.url: d for d in load_corpus(corpus, tmp_path).documents}
    assert len(docs) == 3 and docs[f"{base}/missing.html"].text == "The page is gone but the feed says enough."
    assert docs[f"{base}/missing.html"].date == "2025-07-01"


def test_not_a_feed_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.xml"
    bad.write_text("this is not xml at all", "utf-8")
    with pytest.raises(ValueError, match="not an RSS or Atom feed"):
        add_feed(str(bad), tmp_path / "corpus")


def test_rag_add_indexes_the_items_and_answers_from_them(tmp_path, site):
    base, _ = site
    (tmp_path / "corpus").mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAG_MODEL="hash-256", RAG_ABSTAIN_THRESHOLD="-1e9")
    run = lambda *a: subprocess.run([sys.executable, "-m", "rag.cli", *a], capture_output=True, text=True,  # noqa: E731
                                    env=env, cwd=tmp_path, timeout=300)
    out = run("add", f"{base}/feed.xml", "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert len(rep["added"]) == 2 and rep["indexed"]["documents"] == 2
    assert json.loads(run("add", f"{base}/feed.xml", "--json").stdout)["added"] == []
    ans = run("ask", "How much did the bridge repairs cost?", "--json", "--since", "2025-04-01")
    assert ans.returncode == 0, ans.stderr
    cited = json.loads(ans.stdout)["citations"]
    assert cited and all(c["source"].startswith("corpus/feeds/") for c in cited)

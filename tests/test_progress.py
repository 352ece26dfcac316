"""Terminal progress bars (rag.progress.TerminalProgress)."""


def test_terminal_progress_shows_no_bar_for_a_stage_with_nothing_to_do():
    import io

    from rag.progress import TerminalProgress

    out = io.StringIO()
    with TerminalProgress(file=out) as progress:
        progress("embedding", 0, 4)
        progress("embedding", 4, 4)
        progress("store", 0, 0)  # passed, nothing to send
        progress("store", 0, 0)
    text = out.getvalue()
    assert "embedding" in text and "4/4" in text
    assert "vector store" not in text

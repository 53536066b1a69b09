"""SSEDecoder: data lines split across reads, several per read, non-data lines skipped."""

from __future__ import annotations

from deploytune.loadgen.sse import SSEDecoder


def test_lines_split_across_reads_and_many_per_read() -> None:
    d = SSEDecoder()
    assert d.feed(b'data: {"a"') == []
    assert d.feed(b': 1}\n\ndata: {"b": 2}\r\n\ndata: [DO') == ['{"a": 1}', '{"b": 2}']
    assert d.feed(b"NE]\n\n") == ["[DONE]"]


def test_non_data_lines_are_skipped() -> None:
    d = SSEDecoder()
    got = d.feed(b": keep-alive\nevent: message\nid: 3\nretry: 10\ndata:\ndata:x\n")
    assert got == ["x"]


def test_flush_returns_a_last_line_without_newline() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: [DONE]") == []
    assert d.flush() == ["[DONE]"]
    assert d.flush() == []

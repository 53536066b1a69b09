"""SSEDecoder: data lines split across reads, several per read, non-data lines skipped, and
the line length bounded."""

from __future__ import annotations

import pytest

from deploytune.loadgen.sse import MAX_LINE_BYTES, SSEDecoder, SSELineTooLong


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


def test_a_line_longer_than_the_limit_fails_and_nothing_longer_is_kept() -> None:
    d = SSEDecoder(max_line_bytes=1000)
    assert d.feed(b"data: " + b"x" * 994 + b"\n") == ["x" * 994]  # exactly the limit
    assert d.feed(b"data: " + b"y" * 500) == []
    with pytest.raises(SSELineTooLong, match="longer than 1000 bytes"):
        d.feed(b"y" * 500)  # 1006 bytes and no newline yet
    assert d.flush() == []  # what was buffered is dropped, not kept
    with pytest.raises(SSELineTooLong):  # a whole over-long line inside one read
        SSEDecoder(max_line_bytes=1000).feed(b"data: " + b"z" * 2000 + b"\ndata: [DONE]\n")


def test_a_stream_without_newlines_fails_at_the_default_limit() -> None:
    d = SSEDecoder()
    block = b"x" * 65536
    fed = 0
    with pytest.raises(SSELineTooLong):
        while fed < 64 * MAX_LINE_BYTES:  # a hostile server would never stop
            d.feed(block)
            fed += len(block)
    assert MAX_LINE_BYTES <= fed <= MAX_LINE_BYTES + len(block)

"""Text anyone could have written is read as JSON or as "not JSON", never with an exception, and shown safely."""

from __future__ import annotations

import json

import pytest

from shared.untrusted_json import MAX_DEPTH, SHOWN_CHARACTERS, fit, parse, parse_object, printable, read, shown, text_field


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("[" * 100_000, "nested deeper than"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper than"),
        ('{"a": ' * 500 + "1" + "}" * 500, "nested deeper than"),
        ("this is not json {", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        ("1" * 5000, "not JSON"),  # more digits than Python converts
        ("", "not JSON"),
        (None, "no text"),
    ],
)
def test_what_is_not_json_we_can_handle_is_not_json_with_the_reason(raw: str | bytes | None, problem: str) -> None:
    reading = read(raw)

    assert not reading.is_json and reading.value is None
    assert problem in reading.problem
    assert parse(raw) is None and parse_object(raw) is None


def test_json_as_deep_as_allowed_and_of_any_shape_is_read() -> None:
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH

    assert read(deep).is_json
    assert parse("[1, 2, 3]") == [1, 2, 3] and parse_object("[1, 2, 3]") is None
    assert parse_object('{"contract": 5}') == {"contract": 5}
    assert parse(b'{"a": "\xc3\xa9"}') == {"a": "é"}
    assert read("null").is_json and parse("null") is None


def test_a_field_is_read_only_when_it_is_a_string() -> None:
    document = {"contract": 5, "correlation_id": {"a": [1]}, "message_id": "x" * 100, "name": "ok"}

    assert text_field(document, "contract") is None
    assert text_field(document, "correlation_id") is None
    assert text_field(document, "missing") is None
    assert text_field([1], "name") is None and text_field(None, "name") is None
    assert text_field(document, "name") == "ok"
    assert text_field(document, "message_id", 36) == "x" * 35 + "…"


def test_fit_keeps_what_fits_and_marks_what_is_cut() -> None:
    assert fit("abc", 3) == "abc"
    assert fit("abcd", 3) == "ab…" and len(fit("x" * 1000, 200)) == 200


def test_shown_text_is_capped_and_its_non_printable_characters_escaped() -> None:
    hostile = "\x1b[2J\x1b[31mred\x00\u200b\ud800 line\nbreak" + "x" * 5000

    text = shown(hostile)

    assert text.startswith("\\x1b[2J\\x1b[31mred\\x00\\u200b\\ud800 line\\nbreak")
    assert text.isprintable()
    assert text.endswith(f"({len(hostile) - SHOWN_CHARACTERS:,} more characters, {len(hostile):,} in all)")
    assert len(text) < SHOWN_CHARACTERS + 100
    json.dumps(text)  # and it goes into JSON as it is


def test_shown_bytes_are_capped_in_bytes_and_what_is_not_utf8_escaped() -> None:
    assert shown(b"\xff\xfe\x00garbage") == "\\xff\\xfe\\x00garbage"
    assert shown(b"a" * 3000, 2048).endswith("(952 more bytes, 3,000 in all)")


def test_printable_text_is_left_alone() -> None:
    assert printable("project 'PRJ-1' does not exist: é ✓") == "project 'PRJ-1' does not exist: é ✓"
    assert printable("a\tb\rc") == "a\\tb\\rc"

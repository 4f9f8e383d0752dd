"""Entity tags (RFC 9110 §8.8.3): lists, strong and weak comparison; hostile bytes never raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin_proxy.fields import parse_entity_tags, strong_match, weak_match


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b'"abc"', [(False, b'"abc"')], id="one"),
        pytest.param(b'W/"abc"', [(True, b'"abc"')], id="weak"),
        pytest.param(b'"a", W/"b" ,"c"', [(False, b'"a"'), (True, b'"b"'), (False, b'"c"')],
                     id="list-with-spaces"),
        pytest.param(b'"a",,\t"b"', [(False, b'"a"'), (False, b'"b"')], id="empty-elements"),
        pytest.param(b'"a,b"', [(False, b'"a,b"')], id="comma-inside"),
        pytest.param(b'""', [(False, b'""')], id="empty-tag"),
        pytest.param(b'"a", b, "c"', [(False, b'"a"')], id="stops-at-unquoted"),
        pytest.param(b'"a", "b', [(False, b'"a"')], id="stops-at-unterminated"),
        pytest.param(b'w/"a"', [], id="lower-case-weak-prefix-is-not-a-tag"),
        pytest.param(b"*", [], id="star-is-not-a-tag"),
        pytest.param(b"", [], id="empty"),
    ],
)  # fmt: skip
def test_parse_entity_tags(value: bytes, expected: list[tuple[bool, bytes]]) -> None:
    assert parse_entity_tags(value) == expected


@pytest.mark.parametrize(
    ("field_value", "etag", "strong", "weak"),
    [
        # RFC 9110 §8.8.3.2's own table.
        pytest.param(b'W/"1"', b'W/"1"', False, True, id="weak-weak"),
        pytest.param(b'W/"1"', b'W/"2"', False, False, id="weak-other-weak"),
        pytest.param(b'W/"1"', b'"1"', False, True, id="weak-strong"),
        pytest.param(b'"1"', b'"1"', True, True, id="strong-strong"),
        pytest.param(b'"x", "1"', b'"1"', True, True, id="in-a-list"),
        pytest.param(b'"1"', b' "1" ', True, True, id="tag-with-spaces"),
        pytest.param(b'"1"', b'w/"1"', False, True, id="lower-case-weak-etag"),
        # RFC 9110 §5.6.7: robust about one malformed tag, in a weak comparison only.
        pytest.param(b"abc", b'"abc"', False, True, id="unquoted-asks-for-quoted"),
        pytest.param(b"abc", b"abc", False, True, id="unquoted-both"),
        pytest.param(b'"abc"', b"abc", False, True, id="quoted-asks-for-unquoted"),
        pytest.param(b'w/"abc"', b'w/"abc"', False, True, id="lower-case-weak-prefix"),
        pytest.param(b'W\\"abc"', b'W\\"abc"', False, True, id="backslash-weak-prefix"),
        pytest.param(b'W"abc"', b'W"abc"', False, True, id="weak-prefix-without-slash"),
        pytest.param('"abc\xfc"'.encode("latin-1"), '"abc\xfc"'.encode("latin-1"), True, True,
                     id="obs-text"),
        pytest.param(b"abc", b"abd", False, False, id="other-content"),
        pytest.param(b'""', b'"abc"', False, False, id="empty-never-matches"),
        pytest.param(b"", b"", False, False, id="nothing-matches-nothing"),
        pytest.param(b"abc, def", b'"abc"', False, False, id="no-leniency-in-a-list"),
    ],
)  # fmt: skip
def test_comparison(field_value: bytes, etag: bytes, strong: bool, weak: bool) -> None:
    assert strong_match(field_value, etag) is strong
    assert weak_match(field_value, etag) is weak


TAG_PIECES = st.sampled_from([b'"', b"W/", b"w/", b"W", b"\\", b",", b" ", b"\t", b"a", b"*"])


@given(st.binary(max_size=64) | st.lists(TAG_PIECES, max_size=16).map(b"".join))
def test_any_bytes_give_a_list_of_quoted_tags(value: bytes) -> None:
    for weak, tag in parse_entity_tags(value):
        assert isinstance(weak, bool)
        assert len(tag) >= 2
        assert tag[:1] == tag[-1:] == b'"'
        assert tag in value


@given(st.binary(max_size=32), st.binary(max_size=32))
def test_a_strong_match_is_a_weak_match(field_value: bytes, etag: bytes) -> None:
    if strong_match(field_value, etag):
        assert weak_match(field_value, etag)

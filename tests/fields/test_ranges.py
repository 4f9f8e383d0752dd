"""Byte ranges (RFC 9110 §14): Range and Content-Range, one row per rule; hostile bytes never
raise, and whatever a Range gives lies inside the representation."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin_proxy.fields import parse_byte_range, parse_content_range


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        pytest.param(b"bytes=0-9", 100, (0, 10), id="first-bytes"),
        pytest.param(b"bytes=90-", 100, (90, 100), id="open-ended"),
        pytest.param(b"bytes=-10", 100, (90, 100), id="suffix"),
        pytest.param(b"bytes=-200", 100, (0, 100), id="suffix-longer-than-the-whole"),
        pytest.param(b"bytes=95-200", 100, (95, 100), id="end-clamped"),
        pytest.param(b"bytes=99-99", 100, (99, 100), id="last-byte"),
        pytest.param(b"BYTES=0-0", 100, (0, 1), id="unit-case-insensitive"),
        pytest.param(b"bytes = 0-0", 100, (0, 1), id="spaces-around-the-unit"),
        pytest.param(b"bytes= 0-9 ", 100, (0, 10), id="spaces-around-the-range"),
        pytest.param(b"bytes=0-9,", 100, (0, 10), id="empty-list-element-5.6.1"),
        pytest.param(b"bytes=007-008", 100, (7, 9), id="leading-zeros"),
        pytest.param(b"bytes=0-" + b"9" * 40, 100, (0, 100), id="huge-end"),
        pytest.param(b"bytes=100-", 100, "unsatisfiable", id="start-at-size"),
        pytest.param(b"bytes=100-200", 100, "unsatisfiable", id="beyond-the-end"),
        pytest.param(b"bytes=" + b"9" * 40 + b"-", 100, "unsatisfiable", id="huge-start"),
        pytest.param(b"bytes=-0", 100, "unsatisfiable", id="zero-suffix-14.1.1"),
        pytest.param(b"bytes=0-", 0, "unsatisfiable", id="any-range-of-nothing"),
        pytest.param(b"bytes=-5", 0, None, id="suffix-of-nothing-is-the-empty-whole"),
        pytest.param(b"bytes=10-5", 100, None, id="end-before-start-ignored"),
        pytest.param(b"bytes=abc", 100, None, id="garbage-ignored"),
        pytest.param(b"bytes=1-2-3", 100, None, id="two-dashes-ignored"),
        pytest.param(b"bytes=--5", 100, None, id="negative-suffix-ignored"),
        pytest.param(b"bytes=+1-5", 100, None, id="signed-ignored"),
        pytest.param("bytes=٠-٩".encode(), 100, None, id="non-ascii-digits-ignored"),
        pytest.param(b"bytes 0-9", 100, None, id="no-equals-ignored"),
        pytest.param(b"items=0-9", 100, None, id="other-unit-ignored"),
        pytest.param(b"bytes=", 100, None, id="empty-set-ignored"),
        pytest.param(b"bytes=0-1,5-6", 100, None, id="several-ranges-whole"),
        pytest.param(b"bytes=200-300,0-1", 100, None, id="several-ranges-never-416"),
    ],
)  # fmt: skip
def test_parse_byte_range(
    value: bytes, size: int, expected: tuple[int, int] | Literal["unsatisfiable"] | None
) -> None:
    assert parse_byte_range(value, size) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b"bytes 4-9/10", (4, 10, 10), id="part"),
        pytest.param(b"bytes 0-9/10", (0, 10, 10), id="all-of-it"),
        pytest.param(b" BYTES 0-0/1 ", (0, 1, 1), id="case-and-spaces"),
        pytest.param(b"bytes 4-9/*", None, id="unknown-total"),
        pytest.param(b"bytes */10", None, id="unsatisfied"),
        pytest.param(b"bytes 9-4/10", None, id="backwards"),
        pytest.param(b"bytes 4-10/10", None, id="past-the-end"),
        pytest.param(b"bytes -4-9/10", None, id="negative"),
        pytest.param(b"items 4-9/10", None, id="other-unit"),
        pytest.param(b"bytes 0-" + b"9" * 5000 + b"/" + b"9" * 5000, None, id="huge-numbers"),
        pytest.param(b"", None, id="empty"),
    ],
)  # fmt: skip
def test_parse_content_range(value: bytes, expected: tuple[int, int, int] | None) -> None:
    assert parse_content_range(value) == expected


RANGE_PIECES = st.sampled_from(
    [b"bytes", b"BYTES", b"=", b"-", b",", b" ", b"0", b"1", b"9", b"99", b"100", b"9" * 30,
     b"\t", b"/", b"*", b"+"]
)  # fmt: skip


@given(
    st.binary(max_size=64) | st.lists(RANGE_PIECES, max_size=12).map(b"".join),
    st.integers(min_value=0, max_value=2**63),
)
def test_any_range_is_inside_the_representation(value: bytes, size: int) -> None:
    selected = parse_byte_range(value, size)
    if isinstance(selected, tuple):
        start, stop = selected
        assert 0 <= start < stop <= size


@given(st.binary(max_size=64) | st.lists(RANGE_PIECES, max_size=12).map(b"".join))
def test_any_content_range_is_a_part_of_its_whole(value: bytes) -> None:
    parsed = parse_content_range(value)
    if parsed is not None:
        first, stop, complete = parsed
        assert 0 <= first < stop <= complete

"""Preconditions (RFC 9110 §13): the order of §13.2.2, each condition's comparison, If-Range;
hostile field values never raise."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from origin_proxy.fields import (
    CONDITION_FIELDS,
    condition_fields,
    evaluate_preconditions,
    format_http_date,
    if_range_holds,
    select_range,
)

ETAG = b'"1a-2b-64"'
MODIFIED = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
MODIFIED_TEXT = format_http_date(MODIFIED)
LATER = format_http_date(MODIFIED + 86_400)
EARLIER = format_http_date(MODIFIED - 86_400)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({b"if-none-match": ETAG}, 304, id="inm-match"),
        pytest.param({b"if-none-match": b"W/" + ETAG}, 304, id="inm-weak-comparison"),
        pytest.param({b"if-none-match": b'"a", ' + ETAG}, 304, id="inm-list"),
        pytest.param({b"if-none-match": b'"other"'}, None, id="inm-no-match"),
        pytest.param({b"if-none-match": b" * "}, 304, id="inm-star"),
        pytest.param({b"if-none-match": b"garbage"}, None, id="inm-malformed"),
        pytest.param({b"if-modified-since": MODIFIED_TEXT}, 304, id="ims-equal"),
        pytest.param({b"if-modified-since": LATER}, 304, id="ims-later"),
        pytest.param({b"if-modified-since": EARLIER}, None, id="ims-earlier"),
        pytest.param({b"if-modified-since": b"yesterday"}, None, id="ims-invalid-ignored"),
        pytest.param({b"if-none-match": b'"other"', b"if-modified-since": LATER}, None,
                     id="ims-ignored-when-inm-present-13.1.3"),
        pytest.param({b"if-match": ETAG}, None, id="im-match"),
        pytest.param({b"if-match": b'"other"'}, 412, id="im-no-match"),
        pytest.param({b"if-match": b"W/" + ETAG}, 412, id="im-strong-comparison"),
        pytest.param({b"if-match": b"*"}, None, id="im-star"),
        pytest.param({b"if-match": b'"x", ' + ETAG}, None, id="im-list"),
        pytest.param({b"if-unmodified-since": EARLIER}, 412, id="ius-earlier"),
        pytest.param({b"if-unmodified-since": MODIFIED_TEXT}, None, id="ius-equal"),
        pytest.param({b"if-unmodified-since": b"not a date"}, None, id="ius-invalid-ignored"),
        pytest.param({b"if-match": ETAG, b"if-unmodified-since": EARLIER}, None,
                     id="ius-ignored-when-im-present"),
        pytest.param({b"if-match": b'"other"', b"if-none-match": ETAG}, 412,
                     id="im-before-inm"),
        pytest.param({b"if-unmodified-since": EARLIER, b"if-none-match": ETAG}, 412,
                     id="ius-before-inm"),
        pytest.param({b"if-match": ETAG, b"if-none-match": ETAG}, 304, id="im-holds-then-inm"),
        pytest.param({b"if-none-match": ETAG, b"range": b"bytes=0-9"}, 304,
                     id="range-is-no-precondition"),
    ],
)  # fmt: skip
def test_evaluation_order_and_comparisons(
    conditions: dict[bytes, bytes], expected: Literal[304, 412] | None
) -> None:
    assert evaluate_preconditions(conditions, ETAG, MODIFIED) == expected


@pytest.mark.parametrize(
    ("conditions", "etag", "last_modified", "date", "expected"),
    [
        pytest.param({b"if-match": b"*"}, None, None, None, None, id="im-star-without-etag"),
        pytest.param({b"if-match": ETAG}, None, None, None, 412, id="im-without-etag"),
        pytest.param({b"if-match": b'W/"x"'}, b'W/"x"', None, None, 412,
                     id="im-weak-etag-never-matches"),
        pytest.param({b"if-none-match": ETAG}, None, None, None, None, id="inm-without-etag"),
        pytest.param({b"if-none-match": b"*"}, None, None, None, 304, id="inm-star-without-etag"),
        pytest.param({b"if-unmodified-since": EARLIER}, None, None, None, None,
                     id="ius-without-last-modified"),
        # RFC 9111 §4.3.2: a cache compares with the stored Date when there is no
        # Last-Modified; an origin gives no date, and the condition is not met.
        pytest.param({b"if-modified-since": LATER}, None, None, MODIFIED, 304,
                     id="ims-with-date-only"),
        pytest.param({b"if-modified-since": EARLIER}, None, None, MODIFIED, None,
                     id="ims-before-date"),
        pytest.param({b"if-modified-since": LATER}, None, None, None, None,
                     id="ims-without-any-date"),
        pytest.param({b"if-modified-since": EARLIER}, None, MODIFIED, MODIFIED - 10**6, None,
                     id="last-modified-before-date"),
    ],
)  # fmt: skip
def test_missing_validators(
    conditions: dict[bytes, bytes],
    etag: bytes | None,
    last_modified: int | None,
    date: int | None,
    expected: Literal[304, 412] | None,
) -> None:
    assert evaluate_preconditions(conditions, etag, last_modified, date=date) == expected


@pytest.mark.parametrize(
    ("if_range", "etag", "last_modified", "holds"),
    [
        pytest.param(ETAG, ETAG, MODIFIED_TEXT, True, id="same-etag"),
        pytest.param(b" " + ETAG + b" ", ETAG, None, True, id="spaces"),
        pytest.param(b'"other"', ETAG, MODIFIED_TEXT, False, id="other-etag"),
        pytest.param(b"W/" + ETAG, ETAG, MODIFIED_TEXT, False, id="weak-etag-never-holds"),
        pytest.param(b'W/"x"', b'W/"x"', None, False, id="weak-both"),
        pytest.param(b'"x"', b'W/"x"', None, False, id="stored-weak"),
        pytest.param(ETAG + b", " + ETAG, ETAG, None, False, id="a-list-is-no-validator"),
        pytest.param(ETAG, None, MODIFIED_TEXT, False, id="no-etag"),
        pytest.param(MODIFIED_TEXT, ETAG, MODIFIED_TEXT, True, id="same-date"),
        pytest.param(b"Sunday, 06-Nov-94 08:49:37 GMT", ETAG, MODIFIED_TEXT, True,
                     id="same-date-other-format"),
        pytest.param(LATER, ETAG, MODIFIED_TEXT, False, id="later-date"),
        pytest.param(EARLIER, ETAG, MODIFIED_TEXT, False, id="earlier-date"),
        pytest.param(MODIFIED_TEXT, ETAG, None, False, id="no-last-modified"),
        pytest.param(MODIFIED_TEXT, ETAG, b"garbage", False, id="invalid-last-modified"),
        pytest.param(b"not a validator", ETAG, MODIFIED_TEXT, False, id="invalid"),
        pytest.param(b"", ETAG, MODIFIED_TEXT, False, id="empty"),
    ],
)  # fmt: skip
def test_if_range(
    if_range: bytes, etag: bytes | None, last_modified: bytes | None, holds: bool
) -> None:
    assert if_range_holds(if_range, etag, last_modified) is holds


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        pytest.param({}, None, id="no-range"),
        pytest.param({b"if-range": ETAG}, None, id="if-range-without-range"),
        pytest.param({b"range": b"bytes=0-9"}, (0, 10), id="range"),
        pytest.param({b"range": b"bytes=0-9", b"if-range": ETAG}, (0, 10), id="if-range-holds"),
        pytest.param({b"range": b"bytes=0-9", b"if-range": b'"old"'}, None,
                     id="if-range-fails-whole"),
        pytest.param({b"range": b"bytes=200-", b"if-range": b'"old"'}, None,
                     id="if-range-fails-never-416"),
        pytest.param({b"range": b"bytes=200-"}, "unsatisfiable", id="unsatisfiable"),
    ],
)  # fmt: skip
def test_select_range(
    conditions: dict[bytes, bytes], expected: tuple[int, int] | Literal["unsatisfiable"] | None
) -> None:
    assert select_range(conditions, ETAG, MODIFIED_TEXT, 100) == expected


def test_condition_fields_combine_repeated_lines() -> None:
    headers = [
        (b"host", b"x"),
        (b"if-none-match", b'"a"'),
        (b"accept", b"*/*"),
        (b"if-none-match", b'"b"'),
        (b"range", b"bytes=0-1"),
    ]
    assert condition_fields(headers) == {b"if-none-match": b'"a", "b"', b"range": b"bytes=0-1"}
    assert condition_fields([(b"host", b"x")]) is None


FIELD_VALUES = st.binary(max_size=40) | st.sampled_from(
    [ETAG, b"W/" + ETAG, b"*", MODIFIED_TEXT, LATER, EARLIER, b"bytes=0-9", b"bytes=-1"]
)


@given(
    st.dictionaries(st.sampled_from(sorted(CONDITION_FIELDS)), FIELD_VALUES),
    st.none() | st.binary(max_size=20) | st.just(ETAG),
    st.none() | st.integers(min_value=0, max_value=2**40),
    st.none() | st.binary(max_size=40) | st.just(MODIFIED_TEXT),
)
def test_any_conditions_give_an_answer(
    conditions: dict[bytes, bytes],
    etag: bytes | None,
    last_modified: int | None,
    last_modified_text: bytes | None,
) -> None:
    assert evaluate_preconditions(conditions, etag, last_modified) in (None, 304, 412)
    selected = select_range(conditions, etag, last_modified_text, 100)
    assert selected is None or selected == "unsatisfiable" or 0 <= selected[0] < selected[1]

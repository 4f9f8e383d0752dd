"""CloudFront path patterns and allowed-method sets."""

from __future__ import annotations

import pytest

from edge.behaviors import METHOD_SETS, PathMatcher, compile_path_pattern


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        pytest.param("/images/*.jpg", "/images/a.jpg", True, id="star-in-segment"),
        pytest.param("/images/*.jpg", "/images/sub/dir/a.jpg", True, id="star-crosses-slashes"),
        pytest.param("/images/*.jpg", "/images/a.png", False, id="suffix-must-match"),
        pytest.param("/images/*.jpg", "/Images/a.jpg", False, id="case-sensitive"),
        pytest.param("/images/*.jpg", "/images/a.JPG", False, id="case-sensitive-extension"),
        pytest.param("images/*.jpg", "/images/a.jpg", True, id="leading-slash-optional"),
        pytest.param("/a?c", "/abc", True, id="question-one-char"),
        pytest.param("/a?c", "/ac", False, id="question-not-zero-chars"),
        pytest.param("/a?c", "/abbc", False, id="question-not-two-chars"),
        pytest.param("/api/*", "/api/", True, id="star-matches-empty"),
        pytest.param("/api/*", "/api", False, id="slash-before-star-required"),
        pytest.param("/api*", "/api", True, id="star-after-prefix-empty"),
        pytest.param("/api*", "/apiv2/x", True, id="star-after-prefix-more"),
        pytest.param("/a.b", "/aXb", False, id="dot-is-literal"),
        pytest.param("/a+b", "/a+b", True, id="regex-chars-are-literal"),
        pytest.param("/a[1]", "/a[1]", True, id="brackets-are-literal"),
        pytest.param("/exact", "/exact", True, id="exact"),
        pytest.param("/exact", "/exact/more", False, id="exact-is-whole-path"),
        pytest.param("*", "/anything/at/all", True, id="default-behavior"),
        pytest.param("/*", "/x", True, id="slash-star-matches-all"),
    ],
)
def test_path_patterns(pattern: str, path: str, matches: bool) -> None:
    matcher = PathMatcher([(pattern, "hit")])
    assert (matcher.match(path) == "hit") is matches
    if pattern not in ("*", "/*"):
        assert bool(compile_path_pattern(pattern).fullmatch(path)) is matches


def test_first_match_in_listed_order_wins() -> None:
    matcher = PathMatcher([("/api/v1/*", "v1"), ("/api/*", "api"), ("*", "default")])
    assert matcher.match("/api/v1/users") == "v1"
    assert matcher.match("/api/v2/users") == "api"
    assert matcher.match("/index.html") == "default"
    reordered = PathMatcher([("/api/*", "api"), ("/api/v1/*", "v1"), ("*", "default")])
    assert reordered.match("/api/v1/users") == "api"


@pytest.mark.parametrize(
    ("name", "methods"),
    [
        pytest.param("get-head", {"GET", "HEAD"}, id="get-head"),
        pytest.param("get-head-options", {"GET", "HEAD", "OPTIONS"}, id="get-head-options"),
        pytest.param(
            "all", {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}, id="all-seven"
        ),
        pytest.param("any", None, id="any-no-restriction"),
    ],
)
def test_cloudfront_method_sets(name: str, methods: set[str] | None) -> None:
    assert METHOD_SETS[name] == methods

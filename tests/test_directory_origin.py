"""The directory origin: S3-website-style serving of a local folder, called through `fetch`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from origin_proxy.directory import DirectoryOrigin
from origin_proxy.errors import OriginError
from origin_proxy.message import OriginRequest

SECRET = b"SECRET outside the root"
# Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110 §5.6.7.
MTIME = 784111777
MTIME_TEXT = b"Sun, 06 Nov 1994 08:49:37 GMT"
DIGITS = bytes(range(100))


@dataclass
class Answer:
    status: int
    header_list: list[tuple[bytes, bytes]]
    body: bytes
    chunk_sizes: list[int]
    reason: bytes

    def __getitem__(self, name: str) -> bytes | None:
        """The first value of header `name`, or None."""
        wanted = name.encode()
        return next((value for key, value in self.header_list if key == wanted), None)


async def _fetch(
    origin: DirectoryOrigin, target: bytes, method: str, headers: Iterable[tuple[bytes, bytes]]
) -> Answer:
    response = await origin.fetch(OriginRequest(method, target, [(b"host", b"x"), *headers]))
    try:
        chunks = [chunk async for chunk in response.body]
    finally:
        await response.close()
    return Answer(
        response.status,
        response.headers,
        b"".join(chunks),
        [len(chunk) for chunk in chunks],
        response.reason,
    )


def fetch(
    origin: DirectoryOrigin,
    target: bytes,
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> Answer:
    return asyncio.run(_fetch(origin, target, method, headers))


def build_site(base: Path) -> Path:
    """A site with every kind of entry, and secrets beside it that must never be served."""
    root = base / "site"
    outside = base / "outside"
    outside.mkdir()
    (base / "secret.txt").write_bytes(SECRET)
    (outside / "secret.txt").write_bytes(SECRET + b" (dir)")
    (outside / "index.html").write_bytes(SECRET + b" (index)")
    files = {
        "index.html": b"<h1>home</h1>",
        "docs/index.html": b"<h1>docs</h1>",
        "docs/guide.txt": b"the guide",
        "sub/nested/deep.txt": b"deep file",
        "d ir/index.html": b"<h1>spaced folder</h1>",
        "a b.txt": b"spaced name",
        "\u00e9t\u00e9.txt": b"summer",
        ".hidden": b"hidden but public",
        ".well-known/security.txt": b"Contact: nobody",
        "errors/404.html": b"<h1>custom not found</h1>",
        "empty-dir/.keep": b"keep",
        "digits.bin": DIGITS,
        "empty.txt": b"",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "link-inside").symlink_to("docs/guide.txt")
    (root / "link-dir-inside").symlink_to("docs")
    (root / "link-outside").symlink_to("../secret.txt")
    (root / "link-abs-outside").symlink_to(base / "secret.txt")
    (root / "link-dir-outside").symlink_to(outside)
    (root / "docs" / "link-up").symlink_to("../../secret.txt")
    (root / "link-loop").symlink_to("link-loop")
    (root / "link-dangling").symlink_to("nowhere.txt")
    os.mkfifo(root / "fifo")
    os.utime(root / "digits.bin", (MTIME, MTIME))
    os.utime(root / "empty.txt", (MTIME, MTIME))
    return root


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return build_site(tmp_path)


@pytest.fixture
def site_origin(site: Path) -> DirectoryOrigin:
    return DirectoryOrigin("site", site)


# -- no way out of the root ---------------------------------------------------------------------

TRAVERSALS = [
    pytest.param(b"/../secret.txt", id="dot-dot"),
    pytest.param(b"/docs/../../secret.txt", id="dot-dot-after-folder"),
    pytest.param(b"/docs/..", id="dot-dot-last"),
    pytest.param(b"/%2e%2e/secret.txt", id="encoded-dot-dot"),
    pytest.param(b"/%2E%2e/secret.txt", id="encoded-dot-dot-mixed-case"),
    pytest.param(b"/.%2e/secret.txt", id="half-encoded-dot-dot"),
    pytest.param(b"/%2e./secret.txt", id="other-half-encoded-dot-dot"),
    pytest.param(b"/docs/%2e%2e/%2e%2e/secret.txt", id="encoded-dot-dot-twice"),
    pytest.param(b"/..%2fsecret.txt", id="encoded-slash"),
    pytest.param(b"/..%2Fsecret.txt", id="encoded-slash-upper"),
    pytest.param(b"/%2e%2e%2fsecret.txt", id="all-encoded"),
    pytest.param(b"/docs%2fguide.txt", id="encoded-slash-inside-root"),
    pytest.param(b"/..%5csecret.txt", id="encoded-backslash"),
    pytest.param(b"/..\\secret.txt", id="raw-backslash"),
    pytest.param(b"/docs\\guide.txt", id="raw-backslash-inside-root"),
    pytest.param(b"/%5c..%5csecret.txt", id="encoded-backslashes"),
    pytest.param(b"/index.html%00", id="encoded-nul"),
    pytest.param(b"/index.html%00.txt", id="encoded-nul-then-extension"),
    pytest.param(b"/index.html\x00", id="raw-nul"),
    pytest.param(b"/%zz", id="bad-percent-hex"),
    pytest.param(b"/index.html%2", id="truncated-percent"),
    pytest.param(b"/index.html%", id="lone-percent"),
    pytest.param(b"/%252e%252e/secret.txt", id="double-encoded-stays-literal"),
    pytest.param(b"/%e9t%e9.txt", id="invalid-utf8"),
    pytest.param(b"//secret.txt", id="empty-segment"),
    pytest.param(b"/docs//guide.txt", id="empty-segment-inside-root"),
    pytest.param(b"/./index.html", id="dot-segment"),
    pytest.param(b"/docs/./guide.txt", id="dot-segment-inside"),
    pytest.param(b"secret.txt", id="no-leading-slash"),
    pytest.param(b"../secret.txt", id="relative-dot-dot"),
    pytest.param(b"http://x/../secret.txt", id="absolute-form"),
    pytest.param(b"", id="empty-target"),
    pytest.param(b"*", id="asterisk-form"),
    pytest.param(b"/link-outside", id="symlink-to-file-outside"),
    pytest.param(b"/link-abs-outside", id="absolute-symlink-outside"),
    pytest.param(b"/link-dir-outside/secret.txt", id="symlinked-folder-outside"),
    pytest.param(b"/link-dir-outside/", id="symlinked-folder-outside-index"),
    pytest.param(b"/link-dir-outside", id="symlinked-folder-outside-no-redirect"),
    pytest.param(b"/docs/link-up", id="nested-symlink-up"),
    pytest.param(b"/link-loop", id="symlink-loop"),
    pytest.param(b"/link-dangling", id="dangling-symlink"),
    pytest.param(b"/fifo", id="fifo-not-a-file"),
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_targets_that_leave_the_root_or_name_no_file_are_404(
    site_origin: DirectoryOrigin, target: bytes
) -> None:
    answer = fetch(site_origin, target)
    assert answer.status == 404
    assert b"SECRET" not in answer.body
    assert answer["location"] is None


def test_an_absolute_filesystem_path_is_taken_relative_to_the_root(
    tmp_path: Path, site_origin: DirectoryOrigin
) -> None:
    answer = fetch(site_origin, str(tmp_path / "secret.txt").encode())
    assert answer.status == 404
    assert b"SECRET" not in answer.body


def test_traversal_gets_the_error_document_like_any_missing_object(site: Path) -> None:
    origin = DirectoryOrigin("site", site, error_document="errors/404.html")
    answer = fetch(origin, b"/%2e%2e/secret.txt")
    assert (answer.status, answer.body) == (404, b"<h1>custom not found</h1>")


INSIDE = [
    pytest.param(b"/link-inside", b"the guide", id="symlink-to-file-inside"),
    pytest.param(b"/link-dir-inside/guide.txt", b"the guide", id="symlinked-folder-inside"),
    pytest.param(b"/link-dir-inside/", b"<h1>docs</h1>", id="symlinked-folder-index"),
    pytest.param(b"/a%20b.txt", b"spaced name", id="percent-encoded-space"),
    pytest.param(b"/%C3%A9t%c3%a9.txt", b"summer", id="percent-encoded-utf8"),
    pytest.param("/\u00e9t\u00e9.txt".encode(), b"summer", id="raw-utf8"),
    pytest.param(b"/docs/guide%2Etxt", b"the guide", id="encoded-dot-in-name"),
    pytest.param(b"/.hidden", b"hidden but public", id="hidden-file"),
    pytest.param(b"/.well-known/security.txt", b"Contact: nobody", id="hidden-folder"),
    pytest.param(b"/sub/nested/deep.txt", b"deep file", id="nested"),
    pytest.param(b"/docs/guide.txt?download=1&x=%2e%2e", b"the guide", id="query-ignored"),
]


@pytest.mark.parametrize(("target", "body"), INSIDE)
def test_files_inside_the_root_are_served(
    site_origin: DirectoryOrigin, target: bytes, body: bytes
) -> None:
    answer = fetch(site_origin, target)
    assert (answer.status, answer.reason, answer.body) == (200, b"OK", body)


# -- index documents, redirects, not found ------------------------------------------------------

INDEXES = [
    pytest.param(b"/", 200, b"<h1>home</h1>", None, id="root-index"),
    pytest.param(b"/?q=1", 200, b"<h1>home</h1>", None, id="root-index-with-query"),
    pytest.param(b"/docs/", 200, b"<h1>docs</h1>", None, id="folder-index"),
    pytest.param(b"/docs", 302, b"", b"/docs/", id="folder-redirect"),
    pytest.param(b"/docs?a=1&b", 302, b"", b"/docs/?a=1&b", id="folder-redirect-keeps-query"),
    pytest.param(b"/d%20ir", 302, b"", b"/d%20ir/", id="folder-redirect-keeps-encoding"),
    pytest.param(b"/d ir", 302, b"", b"/d%20ir/", id="folder-redirect-escapes-space"),
    pytest.param(b"/link-dir-inside", 302, b"", b"/link-dir-inside/", id="symlinked-folder"),
    pytest.param(b"/empty-dir", 404, None, None, id="folder-without-index-no-redirect"),
    pytest.param(b"/empty-dir/", 404, None, None, id="folder-without-index"),
    pytest.param(b"/docs/guide.txt/", 404, None, None, id="file-with-slash"),
    pytest.param(b"/missing/", 404, None, None, id="missing-folder"),
]


@pytest.mark.parametrize(("target", "status", "body", "location"), INDEXES)
def test_index_documents_and_folder_redirects(
    site_origin: DirectoryOrigin,
    target: bytes,
    status: int,
    body: bytes | None,
    location: bytes | None,
) -> None:
    answer = fetch(site_origin, target)
    assert answer.status == status
    assert answer["location"] == location
    if body is not None:
        assert answer.body == body
    if status == 200:
        assert answer["content-type"] == b"text/html; charset=utf-8"
    if status == 302:
        assert answer.reason == b"Found"
        assert answer["content-length"] == b"0"


@pytest.mark.parametrize("target", [b"/", b"/docs/", b"/docs"])
def test_without_index_document_folders_are_404(site: Path, target: bytes) -> None:
    origin = DirectoryOrigin("site", site, index_document=None)
    assert fetch(origin, target).status == 404


def test_another_index_document_name(site: Path) -> None:
    (site / "docs" / "default.htm").write_bytes(b"default page")
    origin = DirectoryOrigin("site", site, index_document="default.htm")
    assert fetch(origin, b"/docs/").body == b"default page"
    assert fetch(origin, b"/").status == 404


def test_missing_object_without_error_document(site_origin: DirectoryOrigin) -> None:
    answer = fetch(site_origin, b"/nope.html")
    assert (answer.status, answer.reason) == (404, b"Not Found")
    assert answer["content-type"] == b"text/html; charset=utf-8"
    assert b"404" in answer.body
    assert answer["content-length"] == str(len(answer.body)).encode()


def test_missing_object_with_error_document(site: Path) -> None:
    origin = DirectoryOrigin("site", site, error_document="errors/404.html")
    answer = fetch(origin, b"/nope.html")
    assert (answer.status, answer.body) == (404, b"<h1>custom not found</h1>")
    assert answer["content-type"] == b"text/html; charset=utf-8"
    assert answer["content-length"] == b"25"
    head = fetch(origin, b"/nope.html", "HEAD")
    assert (head.status, head.body, head.header_list) == (404, b"", answer.header_list)


def test_error_document_that_is_missing_falls_back_to_the_builtin_page(site: Path) -> None:
    origin = DirectoryOrigin("site", site, error_document="errors/gone.html")
    answer = fetch(origin, b"/nope.html")
    assert answer.status == 404
    assert b"404 Not Found" in answer.body


@pytest.mark.parametrize(
    "settings_",
    [
        pytest.param({"index_document": "a/index.html"}, id="index-with-slash"),
        pytest.param({"index_document": ".."}, id="index-dot-dot"),
        pytest.param({"index_document": ""}, id="index-empty"),
        pytest.param({"error_document": "../secret.txt"}, id="error-document-outside"),
        pytest.param({"error_document": "/etc/passwd"}, id="error-document-absolute"),
        pytest.param({"chunk_bytes": 0}, id="no-chunk-size"),
    ],
)
def test_bad_settings_are_refused(site: Path, settings_: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="directory origin 'site'"):
        DirectoryOrigin("site", site, **settings_)


def test_a_root_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a directory"):
        DirectoryOrigin("site", tmp_path / "absent")


# -- representation metadata --------------------------------------------------------------------

CONTENT_TYPES = [
    pytest.param("page.html", b"text/html; charset=utf-8", id="html"),
    pytest.param("PAGE.HTML", b"text/html; charset=utf-8", id="upper-case-extension"),
    pytest.param("style.css", b"text/css; charset=utf-8", id="css"),
    pytest.param("app.js", b"text/javascript; charset=utf-8", id="js-rfc-9239"),
    pytest.param("module.mjs", b"text/javascript; charset=utf-8", id="mjs"),
    pytest.param("data.json", b"application/json; charset=utf-8", id="json"),
    pytest.param("app.webmanifest", b"application/manifest+json; charset=utf-8", id="plus-json"),
    pytest.param("feed.xml", b"text/xml; charset=utf-8", id="xml"),
    pytest.param("notes.txt", b"text/plain; charset=utf-8", id="text"),
    pytest.param("image.png", b"image/png", id="png"),
    pytest.param("image.svg", b"image/svg+xml", id="svg"),
    pytest.param("photo.webp", b"image/webp", id="webp"),
    pytest.param("font.woff2", b"font/woff2", id="woff2"),
    pytest.param("module.wasm", b"application/wasm", id="wasm"),
    pytest.param("archive.tar.gz", b"application/gzip", id="gzip-not-content-encoding"),
    pytest.param("blob.unknownext", b"application/octet-stream", id="unknown-extension"),
    pytest.param("Makefile", b"application/octet-stream", id="no-extension"),
    pytest.param(".profile", b"application/octet-stream", id="dot-file"),
]


@pytest.mark.parametrize(("name", "content_type"), CONTENT_TYPES)
def test_content_type_comes_from_the_extension(
    site: Path, site_origin: DirectoryOrigin, name: str, content_type: bytes
) -> None:
    (site / name).write_bytes(b"x")
    answer = fetch(site_origin, b"/" + name.encode())
    assert answer.status == 200
    assert answer["content-type"] == content_type
    assert answer["content-encoding"] is None


def test_validators_and_framing_headers(site_origin: DirectoryOrigin) -> None:
    answer = fetch(site_origin, b"/digits.bin")
    assert answer.status == 200
    assert answer["content-length"] == b"100"
    assert answer["accept-ranges"] == b"bytes"
    assert answer["last-modified"] == MTIME_TEXT  # RFC 9110 §5.6.7 IMF-fixdate
    etag = answer["etag"]
    assert etag is not None
    assert etag.startswith(b'"')  # strong: no W/
    assert etag.endswith(b'"')
    assert all(name == name.lower() for name, _ in answer.header_list)
    assert fetch(site_origin, b"/digits.bin")["etag"] == etag


def test_head_has_the_headers_of_get_and_no_body(site_origin: DirectoryOrigin) -> None:
    for target in (b"/digits.bin", b"/", b"/nope", b"/docs"):
        get = fetch(site_origin, target)
        head = fetch(site_origin, target, "HEAD")
        assert (head.status, head.header_list) == (get.status, get.header_list)
        assert head.body == b""


def test_empty_file(site_origin: DirectoryOrigin) -> None:
    answer = fetch(site_origin, b"/empty.txt")
    assert (answer.status, answer.body, answer["content-length"]) == (200, b"", b"0")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"])
def test_other_methods_are_405(site_origin: DirectoryOrigin, method: str) -> None:
    answer = fetch(site_origin, b"/index.html", method)
    assert (answer.status, answer.reason) == (405, b"Method Not Allowed")
    assert answer["allow"] == b"GET, HEAD"  # RFC 9110 §15.5.6


# -- conditional requests, RFC 9110 §13 ---------------------------------------------------------

LATER = b"Mon, 07 Nov 1994 08:49:37 GMT"
EARLIER = b"Sat, 05 Nov 1994 08:49:37 GMT"

CONDITIONS = [
    pytest.param([(b"if-none-match", b"{etag}")], "GET", 304, id="inm-match"),
    pytest.param([(b"if-none-match", b"W/{etag}")], "GET", 304, id="inm-weak-comparison"),
    pytest.param([(b"if-none-match", b'"a", {etag}')], "GET", 304, id="inm-list"),
    pytest.param([(b"if-none-match", b'"a"'), (b"if-none-match", b"{etag}")], "GET", 304,
                 id="inm-repeated-field"),
    pytest.param([(b"if-none-match", b'"other"')], "GET", 200, id="inm-no-match"),
    pytest.param([(b"if-none-match", b"*")], "GET", 304, id="inm-star"),
    pytest.param([(b"if-none-match", b"{etag}")], "HEAD", 304, id="inm-head"),
    pytest.param([(b"if-none-match", b"garbage")], "GET", 200, id="inm-malformed"),
    pytest.param([(b"if-modified-since", MTIME_TEXT)], "GET", 304, id="ims-equal"),
    pytest.param([(b"if-modified-since", LATER)], "GET", 304, id="ims-later"),
    pytest.param([(b"if-modified-since", EARLIER)], "GET", 200, id="ims-earlier"),
    pytest.param([(b"if-modified-since", b"yesterday")], "GET", 200, id="ims-invalid-ignored"),
    pytest.param([(b"if-modified-since", b"Sunday, 06-Nov-94 08:49:37 GMT")], "GET", 304,
                 id="ims-rfc850"),
    pytest.param([(b"if-modified-since", b"Sun Nov  6 08:49:37 1994")], "GET", 304,
                 id="ims-asctime"),
    pytest.param([(b"if-none-match", b'"other"'), (b"if-modified-since", LATER)], "GET", 200,
                 id="ims-ignored-when-inm-present"),
    pytest.param([(b"if-match", b"{etag}")], "GET", 200, id="im-match"),
    pytest.param([(b"if-match", b'"other"')], "GET", 412, id="im-no-match"),
    pytest.param([(b"if-match", b"W/{etag}")], "GET", 412, id="im-strong-comparison"),
    pytest.param([(b"if-match", b"*")], "GET", 200, id="im-star"),
    pytest.param([(b"if-match", b'"x", {etag}')], "GET", 200, id="im-list"),
    pytest.param([(b"if-match", b'"other"')], "HEAD", 412, id="im-head"),
    pytest.param([(b"if-unmodified-since", EARLIER)], "GET", 412, id="ius-earlier"),
    pytest.param([(b"if-unmodified-since", MTIME_TEXT)], "GET", 200, id="ius-equal"),
    pytest.param([(b"if-unmodified-since", b"not a date")], "GET", 200, id="ius-invalid"),
    pytest.param([(b"if-match", b"{etag}"), (b"if-unmodified-since", EARLIER)], "GET", 200,
                 id="ius-ignored-when-im-present"),
    pytest.param([(b"if-match", b'"other"'), (b"if-none-match", b"{etag}")], "GET", 412,
                 id="im-before-inm"),
    pytest.param([(b"if-unmodified-since", EARLIER), (b"if-none-match", b"{etag}")], "GET", 412,
                 id="ius-before-inm"),
    pytest.param([(b"if-match", b"{etag}"), (b"if-none-match", b"{etag}")], "GET", 304,
                 id="im-holds-then-inm"),
    pytest.param([(b"if-none-match", b"{etag}"), (b"range", b"bytes=0-9")], "GET", 304,
                 id="precondition-before-range"),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "method", "status"), CONDITIONS)
def test_conditional_requests(
    site_origin: DirectoryOrigin, headers: list[tuple[bytes, bytes]], method: str, status: int
) -> None:
    etag = fetch(site_origin, b"/digits.bin")["etag"]
    assert etag is not None
    request_headers = [(name, value.replace(b"{etag}", etag)) for name, value in headers]
    answer = fetch(site_origin, b"/digits.bin", method, request_headers)
    assert answer.status == status
    if status == 304:
        # RFC 9110 §15.4.5: the validators, no content.
        assert (answer.reason, answer.body) == (b"Not Modified", b"")
        assert answer["etag"] == etag
        assert answer["last-modified"] == MTIME_TEXT
    elif status == 412:
        assert (answer.reason, answer.body) == (b"Precondition Failed", b"")
    else:
        assert answer.body == (DIGITS if method == "GET" else b"")


def test_conditions_do_not_apply_to_a_missing_object(site_origin: DirectoryOrigin) -> None:
    answer = fetch(site_origin, b"/nope", headers=[(b"if-none-match", b"*")])
    assert answer.status == 404


# -- ranges, RFC 9110 §14 -----------------------------------------------------------------------

RANGES = [
    pytest.param(b"bytes=0-9", 206, b"bytes 0-9/100", DIGITS[0:10], id="first-bytes"),
    pytest.param(b"bytes=90-", 206, b"bytes 90-99/100", DIGITS[90:], id="open-ended"),
    pytest.param(b"bytes=-10", 206, b"bytes 90-99/100", DIGITS[90:], id="suffix"),
    pytest.param(b"bytes=-200", 206, b"bytes 0-99/100", DIGITS, id="suffix-longer-than-file"),
    pytest.param(b"bytes=95-200", 206, b"bytes 95-99/100", DIGITS[95:], id="end-clamped"),
    pytest.param(b"bytes=99-99", 206, b"bytes 99-99/100", DIGITS[99:], id="last-byte"),
    pytest.param(b"BYTES=0-0", 206, b"bytes 0-0/100", DIGITS[:1], id="unit-case-insensitive"),
    pytest.param(b"bytes=0-9,", 206, b"bytes 0-9/100", DIGITS[:10], id="empty-list-element"),
    pytest.param(b"bytes=0-" + b"9" * 40, 206, b"bytes 0-99/100", DIGITS, id="huge-end"),
    pytest.param(b"bytes=100-", 416, b"bytes */100", b"", id="start-at-size"),
    pytest.param(b"bytes=100-200", 416, b"bytes */100", b"", id="beyond-the-end"),
    pytest.param(b"bytes=" + b"9" * 40 + b"-", 416, b"bytes */100", b"", id="huge-start"),
    pytest.param(b"bytes=-0", 416, b"bytes */100", b"", id="zero-suffix"),
    pytest.param(b"bytes=10-5", 200, None, DIGITS, id="end-before-start-ignored"),
    pytest.param(b"bytes=abc", 200, None, DIGITS, id="garbage-ignored"),
    pytest.param(b"bytes=1-2-3", 200, None, DIGITS, id="two-dashes-ignored"),
    pytest.param(b"bytes=--5", 200, None, DIGITS, id="negative-suffix-ignored"),
    pytest.param(b"bytes=+1-5", 200, None, DIGITS, id="signed-ignored"),
    pytest.param(b"bytes 0-9", 200, None, DIGITS, id="no-equals-ignored"),
    pytest.param(b"items=0-9", 200, None, DIGITS, id="other-unit-ignored"),
    pytest.param(b"bytes=", 200, None, DIGITS, id="empty-set-ignored"),
    pytest.param(b"bytes=0-1,5-6", 200, None, DIGITS, id="multiple-ranges-whole-body"),
    pytest.param(b"bytes=200-300,0-1", 200, None, DIGITS, id="multiple-ranges-never-416"),
]


@pytest.mark.parametrize(("value", "status", "content_range", "body"), RANGES)
def test_byte_ranges(
    site_origin: DirectoryOrigin,
    value: bytes,
    status: int,
    content_range: bytes | None,
    body: bytes,
) -> None:
    answer = fetch(site_origin, b"/digits.bin", headers=[(b"range", value)])
    assert answer.status == status
    assert answer["content-range"] == content_range
    assert answer.body == body
    assert answer["content-length"] == str(len(body)).encode()
    if status == 206:
        assert answer.reason == b"Partial Content"
        assert answer["content-type"] == b"application/octet-stream"
        assert answer["etag"] is not None


IF_RANGES = [
    pytest.param(b"{etag}", 206, id="same-etag"),
    pytest.param(b'"other"', 200, id="other-etag"),
    pytest.param(b"W/{etag}", 200, id="weak-etag-never-holds"),
    pytest.param(MTIME_TEXT, 206, id="same-date"),
    pytest.param(LATER, 200, id="other-date"),
    pytest.param(b"not a validator", 200, id="invalid"),
]


@pytest.mark.parametrize(("if_range", "status"), IF_RANGES)
def test_if_range(site_origin: DirectoryOrigin, if_range: bytes, status: int) -> None:
    etag = fetch(site_origin, b"/digits.bin")["etag"]
    assert etag is not None
    headers = [(b"range", b"bytes=0-9"), (b"if-range", if_range.replace(b"{etag}", etag))]
    answer = fetch(site_origin, b"/digits.bin", headers=headers)
    assert answer.status == status
    assert answer.body == (DIGITS[:10] if status == 206 else DIGITS)


def test_range_is_ignored_for_head(site_origin: DirectoryOrigin) -> None:
    # RFC 9110 §14.2: range handling is defined for GET only.
    answer = fetch(site_origin, b"/digits.bin", "HEAD", [(b"range", b"bytes=0-9")])
    assert (answer.status, answer.body, answer["content-length"]) == (200, b"", b"100")


@pytest.mark.parametrize(
    ("value", "status", "content_range"),
    [
        pytest.param(b"bytes=0-", 416, b"bytes */0", id="int-range-unsatisfiable"),
        pytest.param(b"bytes=-5", 200, None, id="suffix-gives-the-empty-whole"),
    ],
)
def test_ranges_of_an_empty_file(
    site_origin: DirectoryOrigin, value: bytes, status: int, content_range: bytes | None
) -> None:
    answer = fetch(site_origin, b"/empty.txt", headers=[(b"range", value)])
    assert (answer.status, answer["content-range"], answer.body) == (status, content_range, b"")


# -- streaming, freshness, descriptors ----------------------------------------------------------


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A real thread pool that counts the jobs it is given."""

    submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        type(self).submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_large_file_is_streamed_in_bounded_chunks_off_the_loop(tmp_path: Path) -> None:
    pattern = os.urandom(1024 * 1024)
    (tmp_path / "big.bin").write_bytes(pattern * 50)
    expected = hashlib.sha256(pattern * 50).hexdigest()
    origin = DirectoryOrigin("site", tmp_path, chunk_bytes=256 * 1024)

    async def stream() -> tuple[int, list[int], str, int]:
        executor = CountingExecutor(max_workers=2)
        asyncio.get_running_loop().set_default_executor(executor)
        response = await origin.fetch(OriginRequest("GET", b"/big.bin", []))
        digest = hashlib.sha256()
        sizes = []
        tracemalloc.start()
        try:
            async for chunk in response.body:
                digest.update(chunk)
                sizes.append(len(chunk))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            await response.close()
        assert response.header(b"content-length") == str(50 * 1024 * 1024).encode()
        return response.status, sizes, digest.hexdigest(), peak

    CountingExecutor.submitted = 0
    status, sizes, digest, peak = asyncio.run(stream())
    assert status == 200
    assert digest == expected
    assert len(sizes) == 200
    assert max(sizes) <= 256 * 1024
    assert peak < 8 * 256 * 1024  # never the whole 50 MB in memory
    assert CountingExecutor.submitted >= 200  # every read went to a thread


def test_a_range_of_a_large_file_is_streamed(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    origin = DirectoryOrigin("site", tmp_path, chunk_bytes=64 * 1024)
    answer = fetch(origin, b"/big.bin", headers=[(b"range", b"bytes=1000-1999999")])
    assert answer.status == 206
    assert answer["content-range"] == b"bytes 1000-1999999/3145728"
    assert answer.body == data[1000:2000000]
    assert max(answer.chunk_sizes) <= 64 * 1024


def test_small_chunk_size_bounds_even_small_files(site: Path) -> None:
    origin = DirectoryOrigin("site", site, chunk_bytes=16)
    answer = fetch(origin, b"/digits.bin")
    assert answer.body == DIGITS
    assert answer.chunk_sizes == [16] * 6 + [4]


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_streams_release_their_file_when_closed_early_or_finished(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * (1024 * 1024))
    origin = DirectoryOrigin("site", tmp_path, chunk_bytes=64 * 1024)

    async def scenario() -> list[int]:
        counts = [open_descriptors()]
        unread = await origin.fetch(OriginRequest("GET", b"/big.bin", []))
        counts.append(open_descriptors())
        await unread.close()
        counts.append(open_descriptors())
        partly = await origin.fetch(OriginRequest("GET", b"/big.bin", []))
        await anext(partly.body)
        await partly.close()
        await partly.close()  # closing twice is harmless
        counts.append(open_descriptors())
        whole = await origin.fetch(OriginRequest("GET", b"/big.bin", []))
        async for _ in whole.body:
            pass
        counts.append(open_descriptors())
        await whole.close()
        small = await origin.fetch(OriginRequest("GET", b"/big.bin", [(b"range", b"bytes=0-9")]))
        counts.append(open_descriptors())
        await small.close()
        await origin.aclose()
        return counts

    before, during, *after = asyncio.run(scenario())
    assert during == before + 1
    assert after == [before] * len(after)


def test_a_file_that_shrinks_while_streamed_aborts_the_body(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (1024 * 1024))
    origin = DirectoryOrigin("site", tmp_path, chunk_bytes=64 * 1024)

    async def scenario() -> None:
        response = await origin.fetch(OriginRequest("GET", b"/big.bin", []))
        try:
            assert len(await anext(response.body)) == 64 * 1024
            os.truncate(path, 1000)
            with pytest.raises(OriginError, match="shrank"):
                async for _ in response.body:
                    pass
        finally:
            await response.close()

    asyncio.run(scenario())


def test_a_changed_file_is_seen_on_the_next_request(
    site: Path, site_origin: DirectoryOrigin
) -> None:
    path = site / "page.txt"
    path.write_bytes(b"version 1")
    os.utime(path, (MTIME, MTIME))
    first = fetch(site_origin, b"/page.txt")
    # Rewritten in place, same size, one second later.
    path.write_bytes(b"version 2")
    os.utime(path, (MTIME + 1, MTIME + 1))
    second = fetch(site_origin, b"/page.txt", headers=[(b"if-none-match", first["etag"] or b"")])
    assert (first.body, second.status, second.body) == (b"version 1", 200, b"version 2")
    assert second["etag"] != first["etag"]
    assert second["last-modified"] == b"Sun, 06 Nov 1994 08:49:38 GMT"
    # Replaced by rename (a new inode), as deploy tools do.
    (site / "page.tmp").write_bytes(b"version 3, longer")
    os.replace(site / "page.tmp", path)
    third = fetch(site_origin, b"/page.txt")
    assert (third.body, third["content-length"]) == (b"version 3, longer", b"17")
    path.unlink()
    assert fetch(site_origin, b"/page.txt").status == 404


# -- property: nothing outside the root is ever served ------------------------------------------


@pytest.fixture(scope="module")
def property_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[DirectoryOrigin, set[bytes]]:
    root = build_site(tmp_path_factory.mktemp("property"))
    os.unlink(root / "fifo")  # an open() on it would be harmless, but keep the walk simple
    inside = os.path.realpath(root) + os.sep
    servable = {
        path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and os.path.realpath(path).startswith(inside)
    }
    return DirectoryOrigin("site", root, error_document="errors/404.html"), servable


TOKENS = st.sampled_from(
    ["/", "..", ".", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", "%00", "%", "%25", "?", "//",
     "secret.txt", "link-outside", "link-dir-outside", "link-abs-outside", "link-up", "docs",
     "index.html", "link-dir-inside", "outside", "site", "\u00e9", "%C3%A9t%C3%A9.txt"]
)  # fmt: skip
PATHS = st.lists(TOKENS | st.text(max_size=4), max_size=10).map("".join)


def check_served_only_inside(
    property_site: tuple[DirectoryOrigin, set[bytes]], target: bytes
) -> None:
    origin, servable = property_site
    answer = fetch(origin, target)
    assert b"SECRET" not in answer.body
    if answer.status in (200, 206):
        assert answer.body in servable
    if answer.status == 302:
        location = answer["location"] or b""
        assert location.startswith(b"/")
        assert not location.startswith(b"//")


@settings(max_examples=300, deadline=None)
@given(path=PATHS)
def test_any_path_string_serves_only_files_under_the_root(
    property_site: tuple[DirectoryOrigin, set[bytes]], path: str
) -> None:
    check_served_only_inside(property_site, ("/" + path).encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(target=st.binary(max_size=40))
def test_any_target_bytes_serve_only_files_under_the_root(
    property_site: tuple[DirectoryOrigin, set[bytes]], target: bytes
) -> None:
    check_served_only_inside(property_site, target)

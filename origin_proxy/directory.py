"""The directory origin: files under one local folder, served the way S3 website hosting does.

This is the embedded default origin of `edge serve`, and the hot path of the proxy benchmark, so
a request costs a handful of syscalls (open, fstat, read, close; a readlink when the path is
nested or a symlink) and nothing is cached per path: a file changed on disk is seen by the next
request.

Choices worth knowing:
- A request target that cannot name a file under the root (`..`, `%2e%2e`, `%2f`, `%5c`, `\\`,
  `%00`, `//`, bad percent-encoding or UTF-8, a non-origin-form target, a symlink that resolves
  outside the root) is answered exactly like a missing file: 404, with the error document when
  one is configured. The answer does not reveal whether anything exists outside the root.
- The "inside the root" check is made on the file actually opened (its path read back through
  `/proc/self/fd` on Linux), so a symlink swapped between check and open cannot leak a file.
- Several ranges in one Range header are answered with the whole representation (200), which
  RFC 9110 §14.2 allows; no multipart/byteranges.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import mimetypes
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from origin_proxy.errors import OriginError, OriginUnreachable
from origin_proxy.fields import (
    condition_fields,
    evaluate_preconditions,
    format_http_date,
    select_range,
)
from origin_proxy.message import Headers, OriginRequest, OriginResponse, single_chunk

__all__ = ["DirectoryOrigin"]

# Files up to this size are read on the event loop: a read from the page cache costs about a
# microsecond, far less than a round trip through a thread. Bigger bodies go through the loop's
# executor one chunk at a time.
_INLINE_READ_BYTES: Final = 64 * 1024

_OPEN_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)  # no FIFO hangs
)

_NO_FOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)

# open() failures that mean "no such object here"; anything else is the origin failing.
_NOT_FOUND_ERRNOS: Final = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EACCES,
        errno.EPERM,
        errno.ENXIO,
        errno.ENODEV,
        errno.EISDIR,
    }
)

_REASONS: Final = {
    200: b"OK",
    206: b"Partial Content",
    302: b"Found",
    304: b"Not Modified",
    404: b"Not Found",
    405: b"Method Not Allowed",
    412: b"Precondition Failed",
    416: b"Range Not Satisfiable",
}

_HTML: Final = b"text/html; charset=utf-8"
_NOT_FOUND_BODY: Final = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
    b"<body><h1>404 Not Found</h1></body></html>\n"
)
_METHOD_NOT_ALLOWED_BODY: Final = (
    b"<!DOCTYPE html>\n<html><head><title>405 Method Not Allowed</title></head>"
    b"<body><h1>405 Method Not Allowed</h1></body></html>\n"
)

_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")


class DirectoryOrigin:
    """Serves the files under `root` for GET and HEAD, as S3 website hosting serves a bucket.

    `index_document` is served for `/` and for paths ending in `/` (None: no index, such paths
    are 404). `error_document`, a path relative to `root`, is served with status 404 for any
    missing object. Streamed bodies come in chunks of at most `chunk_bytes`.
    """

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        index_document: str | None = "index.html",
        error_document: str | None = None,
        chunk_bytes: int = 256 * 1024,
    ) -> None:
        if chunk_bytes < 1:
            raise ValueError(f"directory origin {name!r}: chunk_bytes must be >= 1")
        real_root = os.path.realpath(root)
        if not os.path.isdir(real_root):
            raise ValueError(f"directory origin {name!r}: {str(root)!r} is not a directory")
        if index_document is not None and not _is_plain_segment(index_document):
            raise ValueError(
                f"directory origin {name!r}: index_document must be a file name without "
                f"'/', found {index_document!r}"
            )
        if error_document is not None and not all(
            _is_plain_segment(segment) for segment in error_document.split("/")
        ):
            raise ValueError(
                f"directory origin {name!r}: error_document must be a relative path inside "
                f"the directory, found {error_document!r}"
            )
        self.name = name
        self.root = Path(real_root)
        self.chunk_bytes = chunk_bytes
        self._index_document = index_document
        self._error_path = None if error_document is None else "/" + error_document
        # Request paths start with "/", so joining is concatenation; "/" as root joins as "".
        self._join_prefix = real_root.rstrip("/")
        self._inside_prefix = self._join_prefix + "/"
        self._inline_limit = min(_INLINE_READ_BYTES, chunk_bytes)
        self._proc_fd = _proc_fd_works(real_root)

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        """Answer one request; the caller awaits `close()` on the response when done."""
        method = request.method
        if method != "GET" and method != "HEAD":
            return _method_not_allowed()
        head = method == "HEAD"
        path = path_from_target(request.target)
        if path is None:
            return self._not_found(head)
        if path[-1] == "/":
            # S3 website hosting: a "folder" request is answered with its index document.
            if self._index_document is None:
                return self._not_found(head)
            path += self._index_document
            opened = self._open(path)
            if opened is None:
                return self._not_found(head)
            fd, st = opened
        else:
            opened = self._open(path)
            if opened is None:
                return self._not_found(head)
            fd, st = opened
            if stat.S_ISDIR(st.st_mode):
                os.close(fd)
                return self._redirect_to_folder(request.target, path, head)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return self._not_found(head)
        return self._serve_file(fd, st, path, request.headers, head)

    async def aclose(self) -> None:
        """Nothing is held between requests: each streamed body owns and closes its file."""

    # -- opening files ------------------------------------------------------------------------

    def _open(self, path: str) -> tuple[int, os.stat_result] | None:
        """Open `path` (a checked request path) under the root, or None when there is no such
        file inside the root."""
        fs_path = self._join_prefix + path
        fd = -1
        if _NO_FOLLOW and path.find("/", 1) < 0:
            # Directly under the root: with O_NOFOLLOW the kernel refuses a symlink, so there
            # is nothing to check afterwards (and the readlink of the slow way is saved).
            try:
                fd = os.open(fs_path, _OPEN_FLAGS | _NO_FOLLOW)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    self._raise_unless_missing(path, exc)
                    return None
        if fd < 0:
            try:
                fd = os.open(fs_path, _OPEN_FLAGS)
            except OSError as exc:
                self._raise_unless_missing(path, exc)
                return None
            if not self._is_inside_root(fd, fs_path):
                os.close(fd)
                return None
        try:
            return fd, os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            raise OriginUnreachable(self.name, f"cannot read {path!r}: {exc.strerror}") from exc

    def _raise_unless_missing(self, path: str, exc: OSError) -> None:
        if exc.errno not in _NOT_FOUND_ERRNOS:
            raise OriginUnreachable(self.name, f"cannot open {path!r}: {exc.strerror}") from exc

    def _is_inside_root(self, fd: int, fs_path: str) -> bool:
        # The path the kernel resolved for this very descriptor: symlinks anywhere on the way
        # are followed, and nothing can be swapped between this check and the read.
        # Without /proc (not Linux), resolve the name instead, which is racy.
        try:
            real = (
                os.readlink(f"/proc/self/fd/{fd}") if self._proc_fd else os.path.realpath(fs_path)
            )
        except OSError:
            return False
        return real.startswith(self._inside_prefix) or real == self._join_prefix

    # -- answers ------------------------------------------------------------------------------

    def _serve_file(
        self, fd: int, st: os.stat_result, path: str, headers: Headers, head: bool
    ) -> OriginResponse:
        size = st.st_size
        mtime_seconds = st.st_mtime_ns // 1_000_000_000
        # RFC 9110 §8.8.3: a strong tag; a new inode (rename into place), a new mtime or a new
        # size each give a new tag.
        etag = f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{size:x}"'.encode()
        last_modified = format_http_date(mtime_seconds)

        start, stop = 0, size
        status = 200
        fields = condition_fields(headers)
        if fields is not None:
            verdict = evaluate_preconditions(fields, etag, mtime_seconds)
            if verdict is not None:
                os.close(fd)
                if verdict == 304:
                    # RFC 9110 §15.4.5: the validators a 200 would carry, no content.
                    validators = [(b"etag", etag), (b"last-modified", last_modified)]
                    return OriginResponse(304, validators, reason=_REASONS[304])
                return _empty(412)
            # RFC 9110 §14.2: range handling is defined for GET only.
            selected = None if head else select_range(fields, etag, last_modified, size)
            if selected == "unsatisfiable":
                os.close(fd)
                response = _empty(416)
                # RFC 9110 §14.4: the current length, so a client can ask again.
                response.headers.append((b"content-range", b"bytes */%d" % size))
                return response
            if selected is not None:
                start, stop = selected
                status = 206

        length = stop - start
        response_headers: Headers = [
            (b"content-type", content_type_for(path)),
            (b"content-length", b"%d" % length),
            (b"accept-ranges", b"bytes"),
            (b"etag", etag),
            (b"last-modified", last_modified),
        ]
        if status == 206:
            response_headers.append((b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, size)))
        return self._with_body(fd, status, response_headers, start, length, path, head)

    def _with_body(
        self,
        fd: int,
        status: int,
        headers: Headers,
        start: int,
        length: int,
        path: str,
        head: bool,
    ) -> OriginResponse:
        """A response whose body is `length` bytes of `fd` from `start`; takes over `fd`."""
        if head or length == 0:
            os.close(fd)
            return OriginResponse(status, headers, reason=_REASONS[status])
        if length <= self._inline_limit:
            try:
                data = os.pread(fd, length, start)
            except OSError as exc:
                raise OriginError(self.name, f"cannot read {path!r}: {exc.strerror}") from exc
            finally:
                os.close(fd)
            if len(data) != length:
                raise OriginError(self.name, f"{path!r} shrank while being read")
            return OriginResponse(status, headers, single_chunk(data), _REASONS[status])
        chunks = _FileChunks(self.name, path, fd, start, length, self.chunk_bytes)
        return OriginResponse(status, headers, chunks, _REASONS[status], chunks.aclose)

    def _not_found(self, head: bool) -> OriginResponse:
        if self._error_path is not None:
            opened = self._open(self._error_path)
            if opened is not None:
                fd, st = opened
                if stat.S_ISREG(st.st_mode):
                    headers: Headers = [
                        (b"content-type", content_type_for(self._error_path)),
                        (b"content-length", b"%d" % st.st_size),
                    ]
                    return self._with_body(fd, 404, headers, 0, st.st_size, self._error_path, head)
                os.close(fd)
        headers = [(b"content-type", _HTML), (b"content-length", b"%d" % len(_NOT_FOUND_BODY))]
        body = single_chunk(b"" if head else _NOT_FOUND_BODY)
        return OriginResponse(404, headers, body, _REASONS[404])

    def _redirect_to_folder(self, target: bytes, path: str, head: bool) -> OriginResponse:
        # S3 website hosting: `/docs` names a folder with an index document -> 302 to `/docs/`,
        # query kept. Without an index document the folder is not an object: 404.
        if self._index_document is None:
            return self._not_found(head)
        opened = self._open(path + "/" + self._index_document)
        if opened is None:
            return self._not_found(head)
        fd, st = opened
        os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            return self._not_found(head)
        raw_path, mark, query = target.partition(b"?")
        location = _escape_location(raw_path + b"/" + mark + query)
        return OriginResponse(
            302, [(b"location", location), (b"content-length", b"0")], reason=_REASONS[302]
        )


class _FileChunks(AsyncIterator[bytes]):
    """A file region as an async iterator of chunks, each read in the loop's executor.

    It owns `fd`: the descriptor is closed at the end of the region, on error, or by `aclose`,
    but never while a read is still running in a thread (the number could be reused).
    """

    __slots__ = ("_chunk_bytes", "_fd", "_in_flight", "_offset", "_origin", "_path", "_remaining")

    def __init__(
        self, origin: str, path: str, fd: int, offset: int, length: int, chunk_bytes: int
    ) -> None:
        self._origin = origin
        self._path = path
        self._fd = fd
        self._offset = offset
        self._remaining = length
        self._chunk_bytes = chunk_bytes
        self._in_flight: asyncio.Future[bytes] | None = None

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._fd < 0 or self._remaining <= 0:
            self._release()
            raise StopAsyncIteration
        size = min(self._chunk_bytes, self._remaining)
        loop = asyncio.get_running_loop()
        read = loop.run_in_executor(None, os.pread, self._fd, size, self._offset)
        self._in_flight = read
        try:
            # Shielded: if we are cancelled, the thread still reads and `_release` waits for it.
            data = await asyncio.shield(read)
        except OSError as exc:
            self._in_flight = None
            self._release()
            raise OriginError(self._origin, f"cannot read {self._path!r}: {exc.strerror}") from exc
        self._in_flight = None
        if not data:
            self._release()
            # Content-Length is already sent: the caller must abort, not end the body short.
            raise OriginError(self._origin, f"{self._path!r} shrank while being read")
        self._offset += len(data)
        self._remaining -= len(data)
        return data

    async def aclose(self) -> None:
        self._release()

    def _release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        in_flight = self._in_flight
        if in_flight is not None and not in_flight.done():
            in_flight.add_done_callback(functools.partial(_close_after_read, fd))
        else:
            os.close(fd)

    def __del__(self) -> None:
        # A caller that forgot `close()` must not leak a descriptor per request.
        if self._fd >= 0 and (self._in_flight is None or self._in_flight.done()):
            os.close(self._fd)


def _close_after_read(fd: int, read: asyncio.Future[bytes]) -> None:
    if not read.cancelled():
        read.exception()  # retrieved, so asyncio does not log it as lost
    os.close(fd)


# -- pure parts: request targets, media types -------------------------------------------------


def path_from_target(target: bytes) -> str | None:
    """The decoded path a request target names under the root, or None if it names nothing.

    The result starts with "/", has no empty, "." or ".." segment (but may end in "/"), and
    contains no backslash or NUL. Encoded slashes, backslashes and NULs, invalid
    percent-encoding and invalid UTF-8 give None: none of them can name an S3-style key here.
    """
    query_at = target.find(b"?")
    raw = target if query_at < 0 else target[:query_at]
    if raw[:1] != b"/" or b"\\" in raw or b"\x00" in raw:
        return None
    if b"%" in raw:
        pieces = raw.split(b"%")
        decoded = bytearray(pieces[0])
        for piece in pieces[1:]:
            if len(piece) < 2 or piece[0] not in _HEX_DIGITS or piece[1] not in _HEX_DIGITS:
                return None  # RFC 3986 §2.1: "%" must start a pct-encoded triplet
            decoded.append(int(piece[:2], 16))
            decoded += piece[2:]
        # A decoded "/" would join two segments into one key; "\" and NUL are never names.
        if decoded.count(b"/") != raw.count(b"/") or b"\\" in decoded or b"\x00" in decoded:
            return None
        raw = bytes(decoded)
    try:
        path = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    segments = path.split("/")
    for segment in segments[1:-1]:
        if segment == "" or segment == "." or segment == "..":
            return None
    if segments[-1] == "." or segments[-1] == "..":
        return None
    return path


_TEXT_LIKE_TYPES: Final = frozenset(
    {"application/javascript", "application/json", "application/xml", "application/ecmascript",
     "application/x-javascript", "application/x-sh", "application/x-yaml", "application/yaml"}
)  # fmt: skip
# Fixed here rather than taken from /etc/mime.types, so every machine answers alike; and
# newer than the table of Python 3.11.
_EXTRA_TYPES: Final = {
    ".js": "text/javascript",  # RFC 9239
    ".mjs": "text/javascript",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".md": "text/markdown",
    ".map": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".gz": "application/gzip",
    ".br": "application/x-brotli",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",
}
_BUILTIN_TYPES: Final = mimetypes.MimeTypes()  # Python's own table, no system files
_content_types: dict[str, bytes] = {}


def content_type_for(path: str) -> bytes:
    """Content-Type for a file name by its extension, with a charset for textual types."""
    name = path[path.rfind("/") + 1 :]
    dot = name.rfind(".")
    extension = name[dot:].lower() if dot > 0 else ""
    known = _content_types.get(extension)
    if known is not None:
        return known
    media_type = _EXTRA_TYPES.get(extension)
    if media_type is None and extension:
        strict, loose = _BUILTIN_TYPES.types_map[1], _BUILTIN_TYPES.types_map[0]
        media_type = strict.get(extension) or loose.get(extension)
    if media_type is None:
        media_type = "application/octet-stream"
    if (
        media_type.startswith("text/")
        or media_type in _TEXT_LIKE_TYPES
        or (media_type.startswith("application/") and media_type.endswith(("+json", "+xml")))
    ):
        media_type += "; charset=utf-8"
    value = media_type.encode()
    # Keyed by extension, not path: a pure function of the name, it can never be stale.
    if len(_content_types) < 4096:
        _content_types[extension] = value
    return value


# -- small answers ---------------------------------------------------------------------------


def _empty(status: int) -> OriginResponse:
    return OriginResponse(status, [(b"content-length", b"0")], reason=_REASONS[status])


def _method_not_allowed() -> OriginResponse:
    headers: Headers = [
        (b"allow", b"GET, HEAD"),  # RFC 9110 §15.5.6: a 405 lists the methods that work
        (b"content-type", _HTML),
        (b"content-length", b"%d" % len(_METHOD_NOT_ALLOWED_BODY)),
    ]
    return OriginResponse(405, headers, single_chunk(_METHOD_NOT_ALLOWED_BODY), _REASONS[405])


def _escape_location(location: bytes) -> bytes:
    # The path came from the wire, but an origin-request function may have set it: never let
    # a control byte, space or non-ASCII byte into a header value.
    if all(0x21 <= byte <= 0x7E for byte in location):
        return location
    return b"".join(
        bytes((byte,)) if 0x21 <= byte <= 0x7E else b"%%%02X" % byte for byte in location
    )


def _is_plain_segment(segment: str) -> bool:
    return segment not in ("", ".", "..") and not any(c in segment for c in "/\\\x00")


def _proc_fd_works(real_root: str) -> bool:
    """Whether /proc/self/fd shows where an open descriptor really is (Linux)."""
    try:
        fd = os.open(real_root, os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == real_root
    except OSError:
        return False
    finally:
        os.close(fd)

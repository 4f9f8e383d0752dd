"""The example functions compiled to WASM (C and Zig, examples/wasm/) behave exactly like the
Python examples they mirror: each guest is built from source, then driven with the same events as
the Python handler, and the two results must be the same JSON."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import importlib.util
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import pytest

from edge.events.cloudfront import SAMPLE_CONFIG, sample_event
from edge.events.cloudfront_rules import EventType
from sandbox.runtime.errors import FunctionError
from tests.conftest import REPO, EdgeProcess
from tests.wasm_guests.build import (
    GUESTS,
    LANGUAGES,
    Guest,
    Language,
    build_all,
    build_guest,
    find_guest,
)
from tests.wasm_guests.run import GuestFailed, GuestHost, unchanged
from tests.wasm_guests.sandbox_host import SandboxHost

Event = dict[str, Any]


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules() -> dict[Guest, Path]:
    """Every guest, built from source (cached by source hash in examples/wasm/build)."""
    return build_all()


@pytest.fixture(scope="module")
def host() -> GuestHost:
    return GuestHost()


Invoke = Callable[[Guest, str, bytes], "bytes | None"]


@pytest.fixture(scope="module", params=["harness", "sandbox"])
def invoke(
    request: pytest.FixtureRequest, modules: dict[Guest, Path], host: GuestHost
) -> Iterator[Invoke]:
    """Run a guest: through the minimal ABI harness, and through the real runtime."""
    if request.param == "harness":
        yield lambda guest, entry, data: host.invoke(modules[guest], entry, data)[0]
        return
    with SandboxHost() as sandbox:
        yield lambda guest, entry, data: sandbox.invoke(modules[guest], entry, data)


def _python_example(name: str) -> ModuleType:
    path = REPO / "examples" / "functions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"wasm_twin_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


security_headers = _python_example("security_headers")
ab_testing = _python_example("ab_testing")
redirects = _python_example("redirects")


# ---- events -----------------------------------------------------------------------------


def cf_of(event: Event) -> dict[str, Any]:
    cf: dict[str, Any] = event["Records"][0]["cf"]
    return cf


def headers_of(pairs: Sequence[tuple[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Lambda@Edge headers from (Key, value) pairs; a repeated name becomes one list."""
    headers: dict[str, list[dict[str, str]]] = {}
    for key, value in pairs:
        headers.setdefault(key.lower(), []).append({"key": key, "value": value})
    return headers


def viewer_request(
    uri: str = "/",
    querystring: str = "",
    headers: Sequence[tuple[str, str]] = (),
    request_id: str = SAMPLE_CONFIG.request_id,
    body: bytes | None = None,
) -> Event:
    config = dataclasses.replace(SAMPLE_CONFIG, request_id=request_id)
    return sample_event(
        EventType.VIEWER_REQUEST,
        uri=uri,
        querystring=querystring,
        headers=headers,
        config=config,
        body=body,
    )


def viewer_response(
    request_headers: Sequence[tuple[str, str]] = (),
    response_headers: Sequence[tuple[str, str]] = (),
) -> Event:
    return sample_event(
        EventType.VIEWER_RESPONSE, headers=request_headers, response_headers=response_headers
    )


def origin_response(
    headers: Sequence[tuple[str, str]] = (), drop: Sequence[str] | None = ()
) -> Event:
    """An origin-response event; `drop` names response headers to leave out (None: all)."""
    event = sample_event(EventType.ORIGIN_RESPONSE, response_headers=headers)
    response_headers = cf_of(event)["response"]["headers"]
    for name in list(response_headers) if drop is None else drop:
        del response_headers[name]
    return event


# How the host might serialise an event: the guest must read all of them alike.
ENCODINGS: dict[str, Callable[[Event], bytes]] = {
    "orjson": orjson.dumps,  # what edge.events.cloudfront sends
    "ascii-escapes": lambda e: json.dumps(e).encode(),
    "utf8-compact": lambda e: json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode(),
    "pretty": lambda e: json.dumps(e, ensure_ascii=False, indent=2).encode(),
}

TRICKY = 'quote " backslash \\ tab \t newline \n nul \x00 del \x7f é 中 😀 \u2028'


# ---- the comparison ---------------------------------------------------------------------


def run_guest(invoke: Invoke, guest: Guest, entry: str, data: bytes) -> Any:
    """The guest's result as parsed JSON, with "continue unchanged" resolved as the host does."""
    result = invoke(guest, entry, data)
    if result is None:
        return unchanged(entry, json.loads(data))
    return json.loads(result)


def assert_same_as_python(
    invoke: Invoke,
    language: Language,
    name: str,
    entry: str,
    python_handler: Callable[[Event, Any], Any],
    event: Event,
) -> Any:
    expected = python_handler(copy.deepcopy(event), None)
    guest = find_guest(name, language)
    for encoding, encode in ENCODINGS.items():
        got = run_guest(invoke, guest, entry, encode(event))
        assert got == expected, f"{language} {name}.{entry}, event encoded {encoding}"
    return expected


# ---- security headers (origin-response) ----------------------------------------------------

SECURITY_CASES = [
    pytest.param(origin_response(), id="aws-sample-server-header-dropped"),
    pytest.param(
        origin_response(headers=[("X-Powered-By", "PHP/8"), ("Server", "nginx")]),
        id="x-powered-by-dropped",
    ),
    pytest.param(origin_response(drop=("server",)), id="nothing-to-drop"),
    pytest.param(
        origin_response(
            headers=[
                ("Set-Cookie", "a=1; Path=/"),
                ("Set-Cookie", 'b="two"; Path=/'),
                ("X-Frame-Options", "SAMEORIGIN"),
                ("X-Frame-Options", "ALLOW-FROM https://x"),
            ]
        ),
        id="repeated-headers-kept-or-replaced-whole",
    ),
    pytest.param(origin_response(headers=[("X-Note", TRICKY)]), id="escaping-in-values"),
    pytest.param(origin_response(drop=None), id="no-headers-at-all"),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event", SECURITY_CASES)
def test_security_headers_match_python(invoke: Invoke, language: Language, event: Event) -> None:
    expected = assert_same_as_python(
        invoke,
        language,
        "security_headers",
        "origin_response",
        security_headers.handler,
        event,
    )
    assert expected["headers"]["x-frame-options"] == [{"key": "X-Frame-Options", "value": "DENY"}]
    assert "server" not in expected["headers"]


# ---- redirects (viewer-request) -----------------------------------------------------------

REDIRECT_CASES = [
    pytest.param(viewer_request("/"), id="root-gets-index"),
    pytest.param(viewer_request("/docs/"), id="directory-gets-index"),
    pytest.param(viewer_request("/docs"), id="file-unchanged"),
    pytest.param(viewer_request("/x.html", "a=1"), id="page-unchanged-with-query"),
    pytest.param(viewer_request("/old"), id="moved-page"),
    pytest.param(viewer_request("/old/"), id="moved-page-trailing-slash"),
    pytest.param(viewer_request("/home", "a=1&b=2"), id="moved-query-kept"),
    pytest.param(viewer_request("/documentation", "x=1"), id="moved-to-directory"),
    pytest.param(viewer_request("/blog", "x=1"), id="external-drops-query"),
    pytest.param(viewer_request("//docs///x"), id="slashes-collapse"),
    pytest.param(viewer_request("//docs///", "q=1"), id="slashes-collapse-query-kept"),
    pytest.param(viewer_request("///"), id="only-slashes"),
    pytest.param(viewer_request("//old"), id="double-slash-before-moved-page"),
    pytest.param(viewer_request("/old", "", [("X-Extra", "1")]), id="empty-querystring"),
    pytest.param(viewer_request("/old", TRICKY), id="escaping-in-location"),
    pytest.param(viewer_request("/café/😀/"), id="unicode-uri"),
    pytest.param(viewer_request("/form", body=b'{"comment": "x"}'), id="body-kept"),
    pytest.param(
        viewer_request("/docs/", headers=[("Cookie", "a=1"), ("Cookie", "b=2")]),
        id="repeated-headers-kept",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event", REDIRECT_CASES)
def test_redirects_match_python(invoke: Invoke, language: Language, event: Event) -> None:
    assert_same_as_python(invoke, language, "redirects", "viewer_request", redirects.handler, event)


@pytest.mark.parametrize("language", LANGUAGES)
def test_redirect_is_a_generated_301(invoke: Invoke, language: Language) -> None:
    event = viewer_request("/documentation", 'q="x"')
    got = run_guest(
        invoke,
        find_guest("redirects", language),
        "viewer_request",
        json.dumps(event).encode(),
    )
    assert got["status"] == "301"
    assert got["headers"]["location"] == [{"key": "Location", "value": '/docs/?q="x"'}]


# ---- A/B testing (viewer-request + viewer-response) ----------------------------------------


def drawn_group(request_id: str) -> str:
    """The guests' documented draw: FNV-1a 32 of requestId, one xorshift32 step, top bit."""
    x = 2166136261
    for byte in request_id.encode():
        x = ((x ^ byte) * 16777619) & 0xFFFF_FFFF
    x = x or 1
    x ^= (x << 13) & 0xFFFF_FFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFF_FFFF
    return "b" if x >> 31 else "a"


AB_KNOWN_VIEWER_CASES = [
    pytest.param(viewer_request("/experiment/", headers=[("Cookie", "ab-group=a")]), id="a"),
    pytest.param(
        viewer_request("/experiment", headers=[("Cookie", "theme=dark; ab-group=b; lang=en")]),
        id="several-pairs",
    ),
    pytest.param(
        viewer_request(
            "/experiment/index.html", headers=[("Cookie", "theme=dark"), ("Cookie", "ab-group=b")]
        ),
        id="repeated-cookie-headers",
    ),
    pytest.param(
        viewer_request("/experiment/", headers=[("Cookie", "ab-group=c; ab-group=a")]),
        id="first-valid-pair-wins",
    ),
    pytest.param(
        viewer_request("/experiment/", headers=[("Cookie", "x=1;  ab-group=b\t;")]),
        id="ascii-spaces-stripped",
    ),
    pytest.param(
        viewer_request("/experiment/", headers=[("Cookie", "\u00a0ab-group=a\u3000; y=é")]),
        id="unicode-spaces-stripped",
    ),
    pytest.param(
        viewer_request("/other", "q=1", headers=[("Cookie", f"note={TRICKY}; ab-group=a")]),
        id="escaping-other-page",
    ),
    pytest.param(
        viewer_request(
            "/experiment/a/index.html",
            headers=[("Cookie", "ab-group=b"), ("X-AB-Group", "new:a")],
        ),
        id="viewer-cannot-forge-marker",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event", AB_KNOWN_VIEWER_CASES)
def test_ab_known_viewer_matches_python(invoke: Invoke, language: Language, event: Event) -> None:
    expected = assert_same_as_python(
        invoke, language, "ab_testing", "viewer_request", ab_testing.viewer_request, event
    )
    assert not expected["headers"]["x-ab-group"][0]["value"].startswith("new:")


AB_NEW_VIEWER_CASES = [
    pytest.param(viewer_request("/experiment/"), id="no-cookie"),
    pytest.param(
        viewer_request("/experiment", headers=[("Cookie", 'ab-group = a; ab-group="b"')]),
        id="malformed-pairs-ignored",
    ),
    pytest.param(
        viewer_request("/", headers=[("Cookie", "theme=dark")], request_id="x" * 56),
        id="other-page",
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event", AB_NEW_VIEWER_CASES)
def test_ab_new_viewer_is_put_in_a_group_and_gets_the_cookie(
    invoke: Invoke,
    language: Language,
    event: Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guest = find_guest("ab_testing", language)
    request = run_guest(invoke, guest, "viewer_request", json.dumps(event).encode())
    marker = request["headers"]["x-ab-group"]
    assert marker[0]["value"] in ("new:a", "new:b")
    group = marker[0]["value"][4:]
    assert group == drawn_group(cf_of(event)["config"]["requestId"])
    # Everything but the draw is Python's: pin Python's random choice to the guest's.
    monkeypatch.setattr(ab_testing.random, "choice", lambda groups: group)
    assert request == ab_testing.viewer_request(copy.deepcopy(event), None)

    # viewer-response then carries the request as viewer-request left it.
    answer = viewer_response()
    cf_of(answer)["request"] = request
    response = run_guest(invoke, guest, "viewer_response", json.dumps(answer).encode())
    assert response["headers"]["set-cookie"] == [
        {"key": "Set-Cookie", "value": f"ab-group={group}; Path=/; Max-Age=2592000; SameSite=Lax"}
    ]
    assert response == ab_testing.viewer_response(copy.deepcopy(answer), None)


def test_ab_draw_splits_new_viewers_evenly_and_alike_in_every_language(
    host: GuestHost, modules: dict[Guest, Path]
) -> None:
    request_ids = [
        base64.urlsafe_b64encode(hashlib.sha256(str(i).encode()).digest() * 2)[:56].decode()
        for i in range(200)
    ]
    groups: dict[Language, list[str]] = {}
    for language in LANGUAGES:
        guest = find_guest("ab_testing", language)
        instance = host.instantiate(modules[guest])  # one reused instance, as a warm host does
        groups[language] = []
        for request_id in request_ids:
            out = instance.call(
                "viewer_request",
                json.dumps(viewer_request("/experiment/", request_id=request_id)).encode(),
            )
            assert out is not None
            groups[language].append(json.loads(out)["uri"].split("/")[2])
    assert groups["c"] == groups["zig"] == [drawn_group(r) for r in request_ids]
    assert 80 <= groups["c"].count("a") <= 120


AB_RESPONSE_CASES = [
    pytest.param(viewer_response([("X-AB-Group", "new:a")]), id="new-viewer-gets-cookie"),
    pytest.param(
        viewer_response(
            [("X-AB-Group", "new:b")],
            [("Set-Cookie", "session=1; HttpOnly"), ("Set-Cookie", 'pref="x\\y"')],
        ),
        id="cookie-appended-to-repeated-set-cookie",
    ),
    pytest.param(viewer_response([("X-AB-Group", "b")]), id="known-viewer-unchanged"),
    pytest.param(viewer_response(), id="no-marker-unchanged"),
    pytest.param(
        viewer_response([("X-AB-Group", "new:a")], [("X-Note", TRICKY)]), id="escaping-kept"
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event", AB_RESPONSE_CASES)
def test_ab_viewer_response_matches_python(
    invoke: Invoke, language: Language, event: Event
) -> None:
    assert_same_as_python(
        invoke,
        language,
        "ab_testing",
        "viewer_response",
        ab_testing.viewer_response,
        event,
    )


# ---- the generic `handler` entry point (Invoke API) ----------------------------------------

HANDLER_CASES = [
    pytest.param("security_headers", origin_response(), security_headers.handler, id="security"),
    pytest.param("redirects", viewer_request("/x.html"), redirects.handler, id="redirects"),
    pytest.param(
        "ab_testing",
        viewer_request("/experiment/", headers=[("Cookie", "ab-group=b")]),
        ab_testing.viewer_request,
        id="ab-request",
    ),
    pytest.param(
        "ab_testing", viewer_response(), ab_testing.viewer_response, id="ab-response-unchanged"
    ),
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("name", "event", "python_handler"), HANDLER_CASES)
def test_handler_entry_point_returns_the_full_result(
    invoke: Invoke,
    language: Language,
    name: str,
    event: Event,
    python_handler: Callable[[Event, Any], Any],
) -> None:
    result = invoke(find_guest(name, language), "handler", json.dumps(event).encode())
    assert result is not None  # no "unchanged" shortcut outside a trigger
    assert json.loads(result) == python_handler(copy.deepcopy(event), None)


# ---- the ABI surface and failure behaviour -------------------------------------------------


@pytest.mark.parametrize("guest", GUESTS, ids=lambda g: f"{g.language}-{g.name}")
def test_guest_exports_its_entry_points_and_imports_only_edge_log(
    host: GuestHost, modules: dict[Guest, Path], guest: Guest
) -> None:
    module = host.module(modules[guest])
    functions = {e.name for e in module.exports if type(e.type).__name__ == "FuncType"}
    assert functions == {"edge_alloc", "edge_reset", *guest.entry_points}
    assert "memory" in {e.name for e in module.exports}
    assert {(i.module, i.name) for i in module.imports} <= {("edge", "log")}


@pytest.mark.parametrize("guest", GUESTS, ids=lambda g: f"{g.language}-{g.name}")
@pytest.mark.parametrize(
    ("data", "log"),
    [
        pytest.param(b'{"Records": [{"cf": ', "event is not valid JSON", id="truncated"),
        pytest.param(b'{"a": "\x01"}', "event is not valid JSON", id="raw-control-char"),
        pytest.param(b"[1, 2,]", "event is not valid JSON", id="trailing-comma"),
        pytest.param(b'{"Records": []}', "event has no Records", id="no-record"),
    ],
)
def test_bad_event_traps_with_a_log_line(
    host: GuestHost, modules: dict[Guest, Path], guest: Guest, data: bytes, log: str
) -> None:
    with pytest.raises(GuestFailed) as failed:
        host.invoke(modules[guest], guest.entry_points[0], data)
    assert len(failed.value.logs) == 1
    assert failed.value.logs[0].startswith(log)


@pytest.mark.parametrize("guest", GUESTS, ids=lambda g: f"{g.language}-{g.name}")
def test_hostile_nesting_is_a_clean_function_error(
    host: GuestHost, modules: dict[Guest, Path], guest: Guest
) -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(GuestFailed) as failed:
        host.invoke(modules[guest], guest.entry_points[0], data)
    assert failed.value.logs  # the guest said why before trapping; no stack overflow


@pytest.mark.parametrize("guest", GUESTS, ids=lambda g: f"{g.language}-{g.name}")
def test_bad_event_in_the_runtime_is_a_function_error_with_the_guest_log(
    modules: dict[Guest, Path], guest: Guest
) -> None:
    with SandboxHost() as sandbox, pytest.raises(FunctionError) as failed:
        sandbox.invoke(modules[guest], guest.entry_points[0], b'{"Records": ')
    assert failed.value.error_type == "Runtime.Trap"
    assert "\tINFO\tevent is not valid JSON\n" in failed.value.log


def test_c_guest_keeps_a_lone_surrogate_as_python_does(invoke: Invoke) -> None:
    # JSON allows "\ud800" alone and Python keeps it; orjson (the runtime's encoder) never
    # sends one, but a guest must not mangle it if it comes. (Zig's std.json rejects it.)
    event = origin_response()
    cf_of(event)["response"]["headers"]["x-odd"] = [{"key": "X-Odd", "value": "a\ud800b"}]
    data = json.dumps(event).encode()
    got = run_guest(invoke, find_guest("security_headers", "c"), "origin_response", data)
    assert got == security_headers.handler(copy.deepcopy(event), None)
    assert got["headers"]["x-odd"][0]["value"] == "a\ud800b"


@pytest.mark.parametrize("language", LANGUAGES)
def test_repeated_names_read_as_python_reads_them(invoke: Invoke, language: Language) -> None:
    # Python's json keeps the last of repeated object names; so must the guests.
    text = json.dumps(viewer_request("/x.html")).replace(
        '"uri": "/x.html"', '"uri": "/a", "uri": "/old"'
    )
    got = run_guest(invoke, find_guest("redirects", language), "viewer_request", text.encode())
    assert got == redirects.handler(json.loads(text), None)
    assert got["headers"]["location"][0]["value"] == "/"


@pytest.mark.parametrize("guest", GUESTS, ids=lambda g: f"{g.language}-{g.name}")
def test_reused_instance_does_not_grow(
    host: GuestHost, modules: dict[Guest, Path], guest: Guest
) -> None:
    entry = guest.entry_points[0]
    event = origin_response() if entry == "origin_response" else viewer_request("/experiment/")
    if entry == "viewer_request":
        cf_of(event)["request"]["headers"].update(headers_of([("Cookie", "ab-group=a")]))
    data = json.dumps(event).encode()
    instance = host.instantiate(modules[guest])
    first = instance.call(entry, data)
    # Warm-up: Zig's arena settles on one retained buffer on the second call.
    assert instance.call(entry, data) == first
    after_warmup = instance.memory_bytes
    for _ in range(100):
        assert instance.call(entry, data) == first
    assert instance.memory_bytes == after_warmup  # edge_reset reclaims every invocation


def test_build_is_cached_by_source_hash(modules: dict[Guest, Path]) -> None:
    guest = GUESTS[0]
    before = modules[guest].stat().st_mtime_ns
    assert build_guest(guest) == modules[guest]
    assert modules[guest].stat().st_mtime_ns == before


# ---- end to end: the guests as edge.toml functions behind the real proxy --------------------

E2E_CONFIG = """
[server]
listen = "127.0.0.1:0"

[origins.site]
directory = "site"

[[behaviors]]
path = "/experiment*"
origin = "site"
viewer-request = "ab-testing"
viewer-response = "ab-testing"

[[behaviors]]
path = "*"
origin = "site"
viewer-request = "redirects"
origin-response = "security-headers"
"""


@pytest.fixture(scope="module", params=LANGUAGES)
def wasm_edge(
    request: pytest.FixtureRequest,
    modules: dict[Guest, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EdgeProcess]:
    """`edge serve` with the three guests of one language as its functions."""
    language: Language = request.param
    tmp = tmp_path_factory.mktemp(f"wasm-edge-{language}")
    site = tmp / "site"
    (site / "docs").mkdir(parents=True)
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "docs" / "index.html").write_text("<h1>docs</h1>")
    for group in ("a", "b"):
        (site / "experiment" / group).mkdir(parents=True)
        (site / "experiment" / group / "index.html").write_text(f"group {group}")
    functions = "".join(
        f'\n[functions.{name.replace("_", "-")}]\nruntime = "wasm"\n'
        f'module = "{modules[find_guest(name, language)]}"\n'
        for name in ("ab_testing", "redirects", "security_headers")
    )
    (tmp / "edge.toml").write_text(E2E_CONFIG + functions)
    process = EdgeProcess([str(tmp / "edge.toml")]).start(tmp)
    yield process
    process.stop()


def test_wasm_functions_behind_the_proxy(wasm_edge: EdgeProcess) -> None:
    with httpx.Client(base_url=wasm_edge.url, timeout=30) as client:
        moved = client.get("/documentation?x=1")
        assert moved.status_code == 301
        assert moved.headers["location"] == "/docs/?x=1"
        assert moved.headers["x-cache"] == "LambdaGeneratedResponse from edge"

        page = client.get("/docs/")  # index document appended by the viewer-request guest
        assert page.text == "<h1>docs</h1>"
        assert page.headers["strict-transport-security"].startswith("max-age=63072000")
        assert page.headers["x-frame-options"] == "DENY"

        new_viewer = client.get("/experiment/")
        cookie = new_viewer.headers["set-cookie"]
        group = cookie.removeprefix("ab-group=")[0]
        assert cookie == f"ab-group={group}; Path=/; Max-Age=2592000; SameSite=Lax"
        assert new_viewer.text == f"group {group}"

        returning = client.get("/experiment", headers={"Cookie": f"ab-group={group}"})
        assert returning.text == f"group {group}"
        assert "set-cookie" not in returning.headers

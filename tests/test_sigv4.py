"""Signature Version 4: our signer and verifier against botocore's `SigV4Auth` (an independent
implementation) and AWS's published example, and every way a signature is refused."""

from __future__ import annotations

import datetime
import hashlib
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from edge import sigv4
from edge.sigv4 import Credentials, SignatureRejected

KEY = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
NOW = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC)


def boto_signed(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> dict[str, str]:
    """The headers botocore sends for this request, signed at NOW."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    auth = SigV4Auth(BotoCredentials(KEY.access_key_id, KEY.secret_access_key), "lambda", "eu-1")
    saved = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *_a, **_k: NOW.replace(tzinfo=None)
    try:
        auth.add_auth(request)
    finally:
        botocore.auth.get_current_datetime = saved
    sent = dict(request.headers.items())
    sent.setdefault("Host", urlsplit(url).netloc)
    return sent


def received(sent: dict[str, str]) -> list[tuple[str, str]]:
    return [(name.lower(), value) for name, value in sent.items()]


def verify(
    method: str,
    url: str,
    sent: dict[str, str],
    body: bytes = b"",
    *,
    credentials: Credentials = KEY,
    now: datetime.datetime = NOW,
) -> None:
    parts = urlsplit(url)
    headers = received(sent)
    auth = sigv4.check_authorization(headers, credentials, service="lambda", now=now)
    sigv4.check_signature(
        auth,
        credentials,
        method=method,
        raw_path=parts.path,
        raw_query=parts.query,
        headers=headers,
        body_sha256=hashlib.sha256(body).hexdigest(),
    )


REQUESTS = [
    pytest.param("GET", "http://127.0.0.1:9180/2015-03-31/functions/", b"", {}, id="list"),
    pytest.param(
        "POST",
        "http://127.0.0.1:9180/2015-03-31/functions/echo/invocations?Qualifier=%24LATEST",
        b'{"n": 1}',
        {"X-Amz-Invocation-Type": "RequestResponse", "Content-Type": "application/json"},
        id="invoke-qualifier",
    ),
    pytest.param(
        "POST",
        "http://localhost:9180/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1"
        "%3A123456789012%3Afunction%3Aecho/invocations",
        b"[1]",
        {"X-Amz-Log-Type": "Tail"},
        id="arn-in-path",
    ),
    pytest.param(
        "GET",
        "http://[::1]:9180/2015-03-31/functions/?MaxItems=5&Marker=a%20b&Marker=a",
        b"",
        {"X-Custom": "  folded    white   space  "},
        id="ipv6-sorted-query-folded-header",
    ),
    pytest.param(
        "POST", "http://edge.internal/invalidations", b'{"paths": ["/*"]}', {}, id="default-port"
    ),
]


@pytest.mark.parametrize(("method", "url", "body", "headers"), REQUESTS)
def test_what_botocore_signs_is_accepted(
    method: str, url: str, body: bytes, headers: dict[str, str]
) -> None:
    verify(method, url, boto_signed(method, url, body, headers), body)


@pytest.mark.parametrize(("method", "url", "body", "headers"), REQUESTS)
def test_our_signature_is_botocores(
    method: str, url: str, body: bytes, headers: dict[str, str]
) -> None:
    ours = sigv4.sign(
        KEY, method=method, url=url, headers=headers, body=body, region="eu-1", service="lambda",
        now=NOW,
    )  # fmt: skip
    verify(method, url, ours, body)
    theirs = boto_signed(method, url, body, headers)
    assert (
        ours["Authorization"].rpartition("Signature=")[2]
        == (theirs["Authorization"].rpartition("Signature=")[2])
    )


def test_aws_published_example() -> None:
    # AWS's Signature Version 4 test suite, "get-vanilla".
    signed = sigv4.sign(
        KEY,
        method="GET",
        url="https://example.amazonaws.com/",
        headers={},
        body=b"",
        region="us-east-1",
        service="service",
        now=NOW,
    )
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        pytest.param("", "/", id="empty"),
        pytest.param("/a/./b/../c//d/", "/a/c/d/", id="dot-and-empty-segments"),
        pytest.param("/f/%24LATEST", "/f/%2524LATEST", id="encoded-twice"),
        pytest.param("/a b~", "/a%20b~", id="space-tilde"),
    ],
)
def test_canonical_uri(raw: str, canonical: str) -> None:
    assert sigv4.canonical_uri(raw) == canonical


URL = "http://127.0.0.1:9180/2015-03-31/functions/echo/invocations"
BODY = b'{"n": 1}'


def _signed(**changes: str) -> dict[str, str]:
    sent = boto_signed("POST", URL, BODY)
    sent.update(changes)
    return sent


@pytest.mark.parametrize(
    ("sent", "body", "credentials", "now", "error_type", "words"),
    [
        pytest.param(
            {"Host": "127.0.0.1:9180"}, BODY, KEY, NOW,
            "MissingAuthenticationTokenException", "Missing Authentication Token",
            id="unsigned",
        ),
        pytest.param(
            _signed(Authorization="Bearer abc"), BODY, KEY, NOW,
            "IncompleteSignatureException", "not a valid key=value pair", id="not-sigv4",
        ),
        pytest.param(
            _signed(Authorization="AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-1/lambda/"
                    "aws4_request"),
            BODY, KEY, NOW, "IncompleteSignatureException",
            "Authorization header requires 'Signature' parameter.", id="incomplete",
        ),
        pytest.param(
            _signed(), BODY, Credentials("AKIDOTHER", KEY.secret_access_key), NOW,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.", id="unknown-key",
        ),
        pytest.param(
            _signed(), BODY, Credentials(KEY.access_key_id, "wrong"), NOW,
            "InvalidSignatureException",
            "The request signature we calculated does not match", id="wrong-secret",
        ),
        pytest.param(
            _signed(), b'{"n": 2}', KEY, NOW, "InvalidSignatureException",
            "The request signature we calculated does not match", id="body-changed",
        ),
        pytest.param(
            _signed(Host="evil.example:9180"), BODY, KEY, NOW, "InvalidSignatureException",
            "host:evil.example:9180", id="host-changed",
        ),
        pytest.param(
            _signed(), BODY, KEY, NOW + datetime.timedelta(minutes=16),
            "InvalidSignatureException",
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z "
            "(20150830T125200Z - 15 min.)", id="too-old",
        ),
        pytest.param(
            _signed(), BODY, KEY, NOW - datetime.timedelta(minutes=16),
            "InvalidSignatureException",
            "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z "
            "(20150830T122000Z + 15 min.)", id="from-the-future",
        ),
        pytest.param(
            _signed(**{"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}), BODY, KEY, NOW,
            "InvalidSignatureException", "x-amz-content-sha256", id="unsigned-payload",
        ),
    ],
)  # fmt: skip
def test_refusals_name_aws_exceptions(
    sent: dict[str, str],
    body: bytes,
    credentials: Credentials,
    now: datetime.datetime,
    error_type: str,
    words: str,
) -> None:
    with pytest.raises(SignatureRejected) as rejected:
        verify("POST", URL, sent, body, credentials=credentials, now=now)
    assert rejected.value.error_type == error_type
    assert words in rejected.value.message


def test_within_fifteen_minutes_is_accepted() -> None:
    for minutes in (-14, 14):
        verify("POST", URL, _signed(), BODY, now=NOW + datetime.timedelta(minutes=minutes))


def test_the_wrong_service_is_refused() -> None:
    sent = _signed()
    sent["Authorization"] = sent["Authorization"].replace("/lambda/", "/s3/")
    with pytest.raises(SignatureRejected, match="scoped to correct service: 'lambda'"):
        verify("POST", URL, sent, BODY)


def test_host_must_be_signed() -> None:
    sent = _signed()
    sent["Authorization"] = sent["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    with pytest.raises(SignatureRejected, match="'Host' or ':authority' must be a 'SignedHeader'"):
        verify("POST", URL, sent, BODY)


def test_the_secret_is_not_in_the_repr() -> None:
    assert KEY.secret_access_key not in repr(KEY)

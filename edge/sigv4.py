"""AWS Signature Version 4 (`AWS4-HMAC-SHA256`): signing a request, and verifying one, with one
canonical form for both.

`edge invalidate` signs with it; the admin listener verifies what boto3, the AWS CLI and
`edge invalidate` send. Pure: the caller passes the time and the body's hash; no clock, no I/O.

The canonical request is AWS's, as botocore builds it:

    METHOD \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n \\n SignedHeaders \\n
    HexSHA256(payload)

- URI: the path as sent (already percent-encoded once), with `.`/`..` and empty segments
  removed, then percent-encoded again (every service but S3 encodes twice).
- Query: each name and value decoded, then encoded with only `A-Za-z0-9-_.~` left as they
  are; sorted by name, then value.
- Headers: those named in SignedHeaders, lower-cased, sorted, `name:value` with the value's
  runs of white space folded to one space and trimmed; repeated fields joined by `,`.
- Payload: the hex SHA-256 of the body; `X-Amz-Content-Sha256` stands for it when sent (and
  must then be the body's hash: an unsigned payload is not accepted).

String to sign: `AWS4-HMAC-SHA256 \\n <X-Amz-Date> \\n <date>/<region>/<service>/aws4_request \\n
HexSHA256(canonical request)`; the key is HMAC-chained from `"AWS4" + secret` through the date,
region, service and `aws4_request`. Errors carry AWS's exception names and messages.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "ALGORITHM",
    "EMPTY_PAYLOAD_SHA256",
    "Authorization",
    "Credentials",
    "SignatureRejected",
    "canonical_request",
    "check_authorization",
    "check_signature",
    "sign",
]

ALGORITHM: Final = "AWS4-HMAC-SHA256"
TIMESTAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
# AWS refuses a request whose time is more than 15 minutes from its own.
MAX_SKEW: Final = datetime.timedelta(minutes=15)
EMPTY_PAYLOAD_SHA256: Final = hashlib.sha256(b"").hexdigest()
_TERMINATOR: Final = "aws4_request"
_UNRESERVED: Final = "-_.~"

# AWS's messages, word for word.
_MISSING_TOKEN: Final = "Missing Authentication Token"
_UNKNOWN_KEY: Final = "The security token included in the request is invalid."
_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


class SignatureRejected(Exception):
    """Why a request's signature is not accepted: `error_type` is the exception AWS names
    (MissingAuthenticationTokenException, IncompleteSignatureException,
    UnrecognizedClientException, InvalidSignatureException), `message` AWS's words."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key: its id, and the secret that never leaves this process (nor its repr)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header, and the request time."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{_TERMINATOR}"


# -- the canonical request --------------------------------------------------------------------


def canonical_uri(raw_path: str) -> str:
    """The path as sent, without dot or empty segments, encoded a second time."""
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and segments:
        path += "/"
    return quote(path, safe="/~", encoding="latin-1")


def canonical_query(raw_query: str) -> str:
    """Name=value pairs, each decoded and encoded AWS's way, sorted by name then value."""
    if not raw_query:
        return ""
    pairs = []
    for piece in raw_query.split("&"):
        name, _, value = piece.partition("=")
        pairs.append((_encode(name), _encode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _encode(text: str) -> str:
    # Latin-1 both ways: every byte goes through unchanged, whatever it encodes.
    return quote(unquote(text, encoding="latin-1"), safe=_UNRESERVED, encoding="latin-1")


def canonical_headers(headers: Iterable[tuple[str, str]], signed: Sequence[str]) -> str:
    """`name:value` lines for the signed headers, each followed by a newline."""
    values: dict[str, list[str]] = {name: [] for name in signed}
    for name, value in headers:
        found = values.get(name.lower())
        if found is not None:
            found.append(" ".join(value.split()))
    return "".join(f"{name}:{','.join(values[name])}\n" for name in sorted(values))


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    signed: Sequence[str],
    payload_sha256: str,
) -> str:
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            canonical_headers(headers, signed),
            ";".join(sorted(signed)),
            payload_sha256,
        ]
    )


def string_to_sign(timestamp: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, _TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _signature(secret: str, auth: Authorization, request: str) -> str:
    key = signing_key(secret, auth.date, auth.region, auth.service)
    message = string_to_sign(auth.timestamp, auth.scope, request)
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


# -- signing ----------------------------------------------------------------------------------


def sign(
    credentials: Credentials,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    region: str,
    service: str,
    now: datetime.datetime,
) -> dict[str, str]:
    """The headers to send: `headers`, `Host`, `X-Amz-Date` and `Authorization`, every one of
    them signed. `url` is the request's URL as it will be sent (path and query
    percent-encoded); `now` is an aware datetime."""
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    timestamp = now.astimezone(datetime.UTC).strftime(TIMESTAMP_FORMAT)
    sent = {"Host": host, **headers, "X-Amz-Date": timestamp}
    pairs = [(name.lower(), value) for name, value in sent.items()]
    signed = tuple(sorted({name for name, _ in pairs}))
    auth = Authorization(
        access_key_id=credentials.access_key_id,
        date=timestamp[:8],
        region=region,
        service=service,
        signed_headers=signed,
        signature="",
        timestamp=timestamp,
    )
    request = canonical_request(
        method,
        parts.path or "/",
        parts.query,
        pairs,
        signed,
        hashlib.sha256(body).hexdigest(),
    )
    signature = _signature(credentials.secret_access_key, auth, request)
    sent["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{auth.scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return sent


# -- verifying --------------------------------------------------------------------------------


def check_authorization(
    headers: Sequence[tuple[str, str]],
    credentials: Credentials,
    *,
    service: str,
    now: datetime.datetime,
) -> Authorization:
    """What can be checked before the body arrives: the header's form, the key, the time
    (within 15 minutes of `now`, an aware datetime) and the scope. `headers` are (lower-case
    name, value) pairs as received (bytes decoded as Latin-1)."""
    value = _header(headers, "authorization")
    if value is None:
        raise SignatureRejected("MissingAuthenticationTokenException", _MISSING_TOKEN)
    fields = _authorization_fields(value)
    amz_date = _header(headers, "x-amz-date")
    http_date = _header(headers, "date")
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    if amz_date is None and http_date is None:
        missing.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if missing or not value.startswith(ALGORITHM + " "):
        if not missing:
            missing.append(f"Unsupported AWS 'algorithm': only '{ALGORITHM}' is accepted.")
        raise SignatureRejected(
            "IncompleteSignatureException", " ".join(missing) + f" Authorization={value}"
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise SignatureRejected(
            "IncompleteSignatureException",
            f"Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{fields['Credential']}'",
        )
    key_id, date, region, scope_service, terminator = scope
    if not hmac.compare_digest(key_id.encode(), credentials.access_key_id.encode()):
        raise SignatureRejected("UnrecognizedClientException", _UNKNOWN_KEY)
    when, timestamp, source = _request_time(amz_date, http_date)
    if date != timestamp[:8]:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{timestamp[:8]}', from '{source}'.",
        )
    _check_skew(when, timestamp, now)
    if terminator != _TERMINATOR:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Credential should be scoped with a valid terminator: '{_TERMINATOR}', not "
            f"'{terminator}'.",
        )
    if scope_service != service:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'. ",
        )
    signed = tuple(fields["SignedHeaders"].lower().split(";"))
    if "host" not in signed:
        raise SignatureRejected(
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    return Authorization(
        access_key_id=key_id,
        date=date,
        region=region,
        service=scope_service,
        signed_headers=signed,
        signature=fields["Signature"],
        timestamp=timestamp,
    )


def check_signature(
    auth: Authorization,
    credentials: Credentials,
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    body_sha256: str,
) -> None:
    """The signature over the whole request, compared in constant time."""
    declared = _header(headers, "x-amz-content-sha256")
    if declared is not None and declared.lower() != body_sha256:
        raise SignatureRejected(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed "
            "(an unsigned payload is not accepted here).",
        )
    request = canonical_request(
        method,
        raw_path,
        raw_query,
        headers,
        auth.signed_headers,
        declared if declared is not None else body_sha256,
    )
    expected = _signature(credentials.secret_access_key, auth, request)
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureRejected(
            "InvalidSignatureException",
            f"{_MISMATCH}\n\nThe Canonical String for this request should have been\n"
            f"'{request}'\n\nThe String-to-Sign should have been\n"
            f"'{string_to_sign(auth.timestamp, auth.scope, request)}'\n",
        )


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in headers if key == name]
    return ",".join(values) if values else None


def _authorization_fields(value: str) -> dict[str, str]:
    _, _, rest = value.partition(" ")
    fields: dict[str, str] = {}
    for piece in rest.split(","):
        name, sep, content = piece.strip().partition("=")
        if not piece.strip():
            continue
        if not sep:
            raise SignatureRejected(
                "IncompleteSignatureException",
                f"'{piece.strip()}' not a valid key=value pair (missing equal-sign) in "
                f"Authorization header: '{value}'.",
            )
        fields[name] = content
    return fields


def _request_time(
    amz_date: str | None, http_date: str | None
) -> tuple[datetime.datetime, str, str]:
    """The request's time, its `YYYYMMDDTHHMMSSZ` form and the header it came from."""
    try:
        if amz_date is not None:
            when = datetime.datetime.strptime(amz_date, TIMESTAMP_FORMAT)
            return when.replace(tzinfo=datetime.UTC), amz_date, "X-Amz-Date"
        when = parsedate_to_datetime(http_date or "").astimezone(datetime.UTC)
    except (ValueError, TypeError):
        raise SignatureRejected(
            "IncompleteSignatureException",
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date or http_date}'. See "
            f"http://en.wikipedia.org/wiki/ISO_8601",
        ) from None
    return when, when.strftime(TIMESTAMP_FORMAT), "Date"


def _check_skew(when: datetime.datetime, timestamp: str, now: datetime.datetime) -> None:
    current = now.astimezone(datetime.UTC)
    text = current.strftime(TIMESTAMP_FORMAT)
    minutes = int(MAX_SKEW.total_seconds() // 60)
    if when < current - MAX_SKEW:
        earliest = (current - MAX_SKEW).strftime(TIMESTAMP_FORMAT)
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Signature expired: {timestamp} is now earlier than {earliest} "
            f"({text} - {minutes} min.)",
        )
    if when > current + MAX_SKEW:
        latest = (current + MAX_SKEW).strftime(TIMESTAMP_FORMAT)
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Signature not yet current: {timestamp} is still later than {latest} "
            f"({text} + {minutes} min.)",
        )

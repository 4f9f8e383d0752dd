"""The `request.origin` an origin-request function returns: validation and decoding (§1.5).

A function may switch the request to another origin, custom <-> S3 included. Fields it leaves
equal to the event's are not re-checked: a self-hosted origin configured outside AWS's ranges
(say an IP address as domainName) stays usable unchanged ([decision] §1.5).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Literal, NoReturn

from edge.events.cloudfront import CustomOrigin, Headers, Origin, S3Origin
from edge.events.cloudfront_errors import fail
from edge.events.cloudfront_headers import decode_header_map
from edge.events.cloudfront_rules import (
    ORIGIN_CUSTOM_HEADER_DENY,
    ORIGIN_CUSTOM_HEADER_DENY_PREFIXES,
    SSL_PROTOCOLS,
    EventType,
)

__all__ = ["decode_request_origin"]

_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DOMAIN = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_BAD_PATH = re.compile(r"[\x00-\x20\x7f?#]")
_WHERE = "origin-request result"
_REQUIRED = object()


def decode_request_origin(
    raw: object,
    shown: Mapping[str, Any],
    request_headers: Headers,
    headers_changed: bool,
    warnings: list[str],
) -> Origin | None:
    """The new origin, or None when the function left `request.origin` as it was shown.

    `raw` is the returned `origin` (None if the key was left out, which keeps the origin);
    `shown` is the `origin` put into the event; `request_headers` are the returned request's.
    """
    changed = raw is not None and raw != shown
    if not (changed or headers_changed):
        return None
    origin = _decode_origin(raw, shown, warnings) if changed else None
    # §1.5: an origin custom header must not also be a request header.
    document: Mapping[str, Any] = raw if changed and isinstance(raw, dict) else shown
    fields = document.get("custom") or document.get("s3") or {}
    custom_names = fields.get("customHeaders") or {}
    if custom_names:
        request_names = {name.lower() for name, _ in request_headers}
        for name in custom_names:
            if name in request_names:
                fail(
                    "origin-custom-header",
                    f"{_WHERE}: {name!r} is both an origin custom header and a request header; "
                    "keep one.",
                )
    return origin


def _decode_origin(raw: object, shown: Mapping[str, Any], warnings: list[str]) -> Origin:
    if not isinstance(raw, dict):
        fail("origin-invalid", f"{_WHERE}: request.origin must be an object.")
    kinds = [kind for kind in ("custom", "s3") if raw.get(kind) is not None]
    if len(kinds) != 1:
        fail(
            "origin-invalid",
            f"{_WHERE}: request.origin must hold exactly one of 'custom' or 's3'.",
        )
    kind = kinds[0]
    fields = raw[kind]
    if not isinstance(fields, dict):
        fail("origin-invalid", f"{_WHERE}: request.origin.{kind} must be an object.")
    before: Mapping[str, Any] = shown.get(kind) or {}
    custom_headers = _decode_custom_headers(fields, before, warnings)
    if kind == "custom":
        return _decode_custom(fields, before, custom_headers)
    if "custom" in shown and fields.get("authMethod") == "origin-access-identity":
        # §1.5: moving from a custom origin to S3 cannot use an origin access identity.
        fail(
            "origin-field",
            f"{_WHERE}: a switch from a custom origin to S3 cannot use an origin access "
            "identity; set authMethod 'none'.",
        )
    return _decode_s3(fields, before, custom_headers)


def _field(
    fields: Mapping[str, Any], before: Mapping[str, Any], name: str, default: object = _REQUIRED
) -> tuple[Any, bool]:
    """The field's value and whether it needs checking (it differs from the event's)."""
    if name not in fields:
        if default is _REQUIRED:
            fail("origin-field", f"{_WHERE}: request.origin lacks '{name}'.")
        return default, False
    value = fields[name]
    return value, not (name in before and before[name] == value)


def _bad(name: str, value: object, rule: str) -> NoReturn:
    fail("origin-field", f"{_WHERE}: origin {name} {value!r} {rule}.")


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _decode_custom(
    fields: Mapping[str, Any], before: Mapping[str, Any], custom_headers: Headers
) -> CustomOrigin:
    domain, check = _field(fields, before, "domainName")
    if check:
        _check_custom_domain(domain)
    port, check = _field(fields, before, "port")
    if check and not (port in (80, 443) or _int_in(port, 1024, 65535)):
        _bad("port", port, "must be 80, 443 or 1024-65535")
    protocol, check = _field(fields, before, "protocol")
    if check and protocol not in ("http", "https"):
        _bad("protocol", protocol, "must be 'http' or 'https'")
    path, check = _field(fields, before, "path", "")
    if check:
        _check_path(path)
    read_timeout, check = _field(fields, before, "readTimeout")
    if check and not _int_in(read_timeout, 4, 60):
        _bad("readTimeout", read_timeout, "must be a whole number of seconds, 4-60")
    keepalive, check = _field(fields, before, "keepaliveTimeout")
    if check and not _int_in(keepalive, 1, 60):
        _bad("keepaliveTimeout", keepalive, "must be a whole number of seconds, 1-60")
    ssl, check = _field(fields, before, "sslProtocols")
    if check and not (
        isinstance(ssl, list)
        and ssl
        and all(isinstance(item, str) and item in SSL_PROTOCOLS for item in ssl)
    ):
        _bad("sslProtocols", ssl, f"must be a non-empty list drawn from {sorted(SSL_PROTOCOLS)}")
    scheme: Literal["http", "https"] = "http" if protocol == "http" else "https"
    return CustomOrigin(
        domain_name=domain,
        port=port,
        protocol=scheme,
        path=path,
        read_timeout_seconds=read_timeout,
        keepalive_timeout_seconds=keepalive,
        ssl_protocols=tuple(ssl),
        custom_headers=custom_headers,
    )


def _decode_s3(
    fields: Mapping[str, Any], before: Mapping[str, Any], custom_headers: Headers
) -> S3Origin:
    domain, check = _field(fields, before, "domainName")
    if check and not (
        isinstance(domain, str)
        and 0 < len(domain) <= 128
        and domain == domain.lower()
        and _DOMAIN.fullmatch(domain)
    ):
        _bad("domainName", domain, "must be the bucket's lower-case domain, at most 128 chars")
    auth, check = _field(fields, before, "authMethod", "none")
    if check and auth not in ("origin-access-identity", "none"):
        _bad("authMethod", auth, "must be 'origin-access-identity' or 'none'")
    region, check = _field(fields, before, "region", "")
    if check and not isinstance(region, str):
        _bad("region", region, "must be a string")
    if auth == "origin-access-identity" and not region:
        _bad("region", region, "is required with authMethod 'origin-access-identity'")
    path, check = _field(fields, before, "path", "")
    if check:
        _check_path(path)
    method: Literal["origin-access-identity", "none"] = (
        "origin-access-identity" if auth == "origin-access-identity" else "none"
    )
    return S3Origin(
        domain_name=domain,
        region=region,
        auth_method=method,
        path=path,
        custom_headers=custom_headers,
    )


def _check_custom_domain(domain: object) -> None:
    if not isinstance(domain, str) or not 0 < len(domain) <= 253:
        _bad("domainName", domain, "must be a DNS name of 1-253 characters")
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        pass
    else:
        _bad("domainName", domain, "must be a DNS name, not an IP address")
    if not _DOMAIN.fullmatch(domain):
        _bad("domainName", domain, "must be a bare DNS name (no scheme, port or path)")


def _check_path(path: object) -> None:
    # §1.5: "" or a URL-encoded path starting with '/', without a trailing '/', <= 255 chars.
    # AWS's own S3 sample carries "" for "no path", so "" is accepted for both kinds.
    if not isinstance(path, str):
        _bad("path", path, "must be a string")
    if path and (
        not path.startswith("/") or path.endswith("/") or len(path) > 255 or _BAD_PATH.search(path)
    ):
        _bad("path", path, "must be '' or start with '/', not end with '/', be URL-encoded, <= 255")


def _decode_custom_headers(
    fields: Mapping[str, Any], before: Mapping[str, Any], warnings: list[str]
) -> Headers:
    raw = fields.get("customHeaders", {})
    where = "request.origin customHeaders"
    shown = before.get("customHeaders")
    headers = decode_header_map(raw, where, EventType.ORIGIN_REQUEST, warnings, shown=shown)
    if raw != shown:
        for name in raw:
            if shown and name in shown:
                continue
            if name in ORIGIN_CUSTOM_HEADER_DENY or name.startswith(
                ORIGIN_CUSTOM_HEADER_DENY_PREFIXES
            ):
                fail(
                    "origin-custom-header",
                    f"{_WHERE}: {name!r} cannot be an origin custom header (CloudFront "
                    "sets or forbids it).",
                )
    return headers

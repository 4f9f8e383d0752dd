"""Origin-response: add the security headers every page should carry.

Runs once per origin fetch (not on cache hits), so the headers are cached with the object.
"""

SECURITY_HEADERS = {
    "strict-transport-security": (
        "Strict-Transport-Security",
        "max-age=63072000; includeSubDomains; preload",
    ),
    "content-security-policy": (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'",
    ),
    "x-content-type-options": ("X-Content-Type-Options", "nosniff"),
    "x-frame-options": ("X-Frame-Options", "DENY"),
    "referrer-policy": ("Referrer-Policy", "strict-origin-when-cross-origin"),
    "permissions-policy": ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
}


def handler(event, context):
    response = event["Records"][0]["cf"]["response"]
    headers = response["headers"]
    for name, (key, value) in SECURITY_HEADERS.items():
        headers[name] = [{"key": key, "value": value}]
    headers.pop("server", None)
    headers.pop("x-powered-by", None)
    return response

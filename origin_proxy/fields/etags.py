"""Entity tags (RFC 9110 §8.8.3): lists of them, and the strong and weak comparisons.

A recipient is asked to be robust (RFC 9110 §5.6.7): besides the list grammar, `weak_match`
lets one malformed tag (unquoted, `w/"x"`, `W"x"`, `W\\"x"`) match a tag with the same opaque
content, since origins and clients get the syntax wrong and a weak comparison loses nothing by it.
"""

from __future__ import annotations

__all__ = ["parse_entity_tags", "strong_match", "weak_match"]


def parse_entity_tags(value: bytes) -> list[tuple[bool, bytes]]:
    """A list of entity tags as (weak, tag-with-quotes); stops at the first bad syntax."""
    tags: list[tuple[bool, bytes]] = []
    at = 0
    end = len(value)
    while at < end:
        char = value[at]
        if char in b" \t,":
            at += 1
            continue
        weak = value.startswith(b"W/", at)
        if weak:
            at += 2
        if not value.startswith(b'"', at):
            break
        close = value.find(b'"', at + 1)
        if close < 0:
            break
        tags.append((weak, value[at : close + 1]))
        at = close + 1
    return tags


def strong_match(field_value: bytes, etag: bytes) -> bool:
    """RFC 9110 §8.8.3.2: whether a tag of the list `field_value` is `etag`, both strong."""
    etag = etag.strip()
    if etag[:2] in (b"W/", b"w/"):
        return False
    return any(not weak and tag == etag for weak, tag in parse_entity_tags(field_value))


def weak_match(field_value: bytes, etag: bytes) -> bool:
    """RFC 9110 §8.8.3.2: whether a tag of the list `field_value` has the opaque content of
    `etag`, weak or not; a lone malformed tag is compared by its content."""
    etag = etag.strip()
    opaque = _opaque(etag)
    if any(tag == opaque for _, tag in parse_entity_tags(field_value)):
        return True
    if b"," in field_value:
        return False
    loose = _loose(field_value)
    return bool(loose) and loose == _loose(etag)


def _opaque(tag: bytes) -> bytes:
    return tag[2:] if tag[:2] in (b"W/", b"w/") else tag


def _loose(tag: bytes) -> bytes:
    """The opaque content of a tag however it was (mis)written: the weak prefix in any
    spelling (`W/`, `w/`, `W\\`, `W`) and the quotes removed."""
    tag = tag.strip()
    if tag[:2] in (b"W/", b"w/", b"W\\", b"w\\"):
        tag = tag[2:]
    elif tag[:2] in (b'W"', b'w"'):
        tag = tag[1:]
    if len(tag) >= 2 and tag[:1] == b'"' and tag[-1:] == b'"':
        tag = tag[1:-1]
    return tag

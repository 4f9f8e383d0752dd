"""Lambda function names as the Invoke API accepts them, and the ARNs it reports.

Pure: a `FunctionName` path parameter (bare name, `name:qualifier`, partial or full ARN) plus
the `Qualifier` query parameter -> (name, qualifier), or `ValueError` saying what is wrong
(spec §8.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
LATEST = "$LATEST"

_NAME = r"[A-Za-z0-9_-]{1,64}"
_QUALIFIER = r"(\$LATEST|[A-Za-z0-9_-]{1,128})"
# BOTO model of FunctionName: [arn:aws:lambda:REGION:]ACCOUNT:function:NAME[:QUALIFIER] or
# NAME[:QUALIFIER].
_FUNCTION_NAME = re.compile(
    rf"^(?:(?:arn:aws[a-zA-Z-]*:lambda:[a-z]{{2}}(?:-gov)?-[a-z]+-\d:)?\d{{12}}:function:)?"
    rf"(?P<name>{_NAME})(?::(?P<qualifier>{_QUALIFIER}))?$"
)
_QUALIFIER_ONLY = re.compile(rf"^{_QUALIFIER}$")


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A function and the version or alias an API call names (None: unqualified)."""

    name: str
    qualifier: str | None

    @property
    def version(self) -> str:
        """The qualifier, or `$LATEST` for an unqualified reference."""
        return self.qualifier or LATEST


def parse_function_name(text: str, qualifier: str | None = None) -> FunctionRef:
    """Split the Invoke API's `FunctionName` (and optional `Qualifier`) into a FunctionRef."""
    match = _FUNCTION_NAME.fullmatch(text)
    if match is None:
        raise ValueError(
            f"1 validation error detected: Value '{text}' at 'functionName' failed to satisfy "
            "constraint: expected a function name, name:qualifier, or a function ARN"
        )
    if qualifier is not None and not _QUALIFIER_ONLY.fullmatch(qualifier):
        raise ValueError(
            f"1 validation error detected: Value '{qualifier}' at 'qualifier' failed to satisfy "
            "constraint: expected $LATEST, a version number or an alias name"
        )
    in_name = match.group("qualifier")
    # A qualifier in both places must agree [inferred, spec §8.1].
    if in_name is not None and qualifier is not None and in_name != qualifier:
        raise ValueError(
            f"The derived qualifier from the function name does not match the specified "
            f"qualifier: {in_name!r} != {qualifier!r}"
        )
    return FunctionRef(match.group("name"), in_name or qualifier)


def function_arn(name: str, qualifier: str | None = None) -> str:
    """`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`."""
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn

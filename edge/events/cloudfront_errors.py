"""The one error of result validation, with CloudFront's own wording for its error page.

lambda-edge-spec §4.1: every rejected function result becomes 502 `LambdaValidationError`;
CloudFront's page says which of a few kinds it was, the log says what to fix.
"""

from __future__ import annotations

from typing import Final, NoReturn

__all__ = [
    "BLACKLISTED_HEADER",
    "FAILED_VALIDATION",
    "NOT_OBJECT",
    "NOT_PARSABLE",
    "READ_ONLY_HEADER",
    "LambdaValidationError",
    "fail",
]

# CloudFront's error-page sentences (§4.1, observed in real responses).
NOT_PARSABLE: Final = "The Lambda function returned invalid JSON: The JSON output is not parsable."
NOT_OBJECT: Final = (
    "The Lambda function returned invalid JSON: The JSON output must be an object type."
)
READ_ONLY_HEADER: Final = (
    "The Lambda function result failed validation: "
    "The function tried to add, delete, or change a read-only header."
)
BLACKLISTED_HEADER: Final = (
    "The Lambda function result failed validation: The function tried to add a blacklisted header."
)
FAILED_VALIDATION: Final = "The Lambda function result failed validation."


class LambdaValidationError(Exception):
    """A function result that CloudFront would reject with 502 `LambdaValidationError`.

    `rule` is a short id of the violated rule (for logs and metrics), `detail` says what to fix,
    `cloudfront_message` is the sentence CloudFront shows on its error page. `str(error)` is
    all three, for the log line.
    """

    def __init__(
        self, rule: str, detail: str, *, cloudfront_message: str = FAILED_VALIDATION
    ) -> None:
        self.rule = rule
        self.detail = detail
        self.cloudfront_message = cloudfront_message
        super().__init__(f"{cloudfront_message} {detail} (rule: {rule})")


def fail(rule: str, detail: str, message: str = FAILED_VALIDATION) -> NoReturn:
    """Raise LambdaValidationError for `rule`."""
    raise LambdaValidationError(rule, detail, cloudfront_message=message)

"""A CloudFront Function's source -> the factory QuickJS evaluates once per context.

Pure. CloudFront Functions 2.0 code is an ES module that may import the three modules the
runtime offers (`import cf from 'cloudfront'`, `import crypto from 'crypto'`, `import
querystring from 'querystring'`); QuickJS evaluates modules only in module mode, so those import
forms become bindings, and anything else that is a module statement is refused with a message.
The code is wrapped in a factory function: calling it runs the top level again, so each run
gets fresh top-level variables and closures.
"""

from __future__ import annotations

import re
from typing import Final, Literal

RuntimeVersion = Literal["1.0", "2.0"]

# CloudFront's quota: the function's code is at most 10 KB.
MAX_CODE_BYTES: Final = 10 * 1024
MODULES: Final = ("cloudfront", "crypto", "querystring")

_IMPORT = re.compile(
    r"""^[ \t]*import[ \t]+([A-Za-z_$][\w$]*)[ \t]+from[ \t]+(['"])([\w-]+)\2[ \t]*;?""",
    re.MULTILINE,
)
_MODULE_STATEMENT = re.compile(r"^[ \t]*(import|export)\b[^\n]*", re.MULTILINE)


class SourceRefused(ValueError):
    """The code cannot be a CloudFront Function; the message says why and what to do."""


def factory_source(code: str, runtime: RuntimeVersion) -> str:
    """The JavaScript of a factory `(require, modules, console) -> handler` around `code`."""
    size = len(code.encode("utf-8"))
    if size > MAX_CODE_BYTES:
        raise SourceRefused(
            f"the code is {size} bytes; a CloudFront Function is at most {MAX_CODE_BYTES} bytes "
            "(10 KB): move data into a KeyValueStore or split the work"
        )

    def binding(match: re.Match[str]) -> str:
        name, module = match.group(1), match.group(3)
        if runtime != "2.0":
            raise SourceRefused(
                f"line {_line(code, match.start())}: `import` needs runtime cloudfront-js-2.0; "
                f"in 1.0 write `var {name} = require('{module}');`"
            )
        if module not in MODULES:
            raise SourceRefused(
                f"line {_line(code, match.start())}: cannot import {module!r}: CloudFront "
                f"Functions offer {', '.join(repr(m) for m in MODULES)}"
            )
        return f"var {name} = __cf_modules[{module!r}];"

    body = _IMPORT.sub(binding, code)
    other = _MODULE_STATEMENT.search(body)
    if other is not None:
        raise SourceRefused(
            f"line {_line(body, other.start())}: {other.group(0).strip()!r}: only "
            "`import NAME from 'cloudfront' | 'crypto' | 'querystring';` is supported (no "
            "exports: CloudFront calls the top-level function `handler`)"
        )
    return (
        "(function (require, __cf_modules, console) {\n"
        f"{body}\n"
        ';\nreturn typeof handler === "function" ? handler : undefined;\n})'
    )


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1

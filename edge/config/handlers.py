"""The two spellings of a Python handler, and the one thing they both name.

Lambda's handler setting is `module.function` (`auth.handler`, `pkg.auth.handler`); a file
and a function read more naturally on a command line: `auth.py::handler`. Either may carry a
folder (`functions/auth.handler`, `functions/auth.py::handler`), and every place that takes a
handler (edge.toml's `handler`, `edge serve --viewer-request` and friends, `edge invoke`)
accepts both. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# What a config key or flag says it wants, in words (messages never show a pattern).
HANDLER_FORMS = "FILE.py::FUNCTION or MODULE.FUNCTION, with an optional FOLDER/ before it"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class HandlerRef:
    """A handler as the Python runtime takes it: Lambda's `module.function`, found in `folder`
    (relative to whatever the spelling was relative to)."""

    folder: Path
    module: str  # `auth`, `pkg.auth` or `pkg/auth`
    function: str

    @property
    def lambda_handler(self) -> str:
        """Lambda's handler setting: `module.function`."""
        return f"{self.module}.{self.function}"


def parse_handler(text: str, *, file_suffixes: tuple[str, ...] = (".py",)) -> HandlerRef:
    """`[FOLDER/]FILE.py::FUNCTION` or `[FOLDER/]MODULE.FUNCTION` as one `HandlerRef`; a
    ValueError says what was expected and what was found. `file_suffixes`: what a FILE may
    end with (a runtime for other languages passes its own: `.mjs`, `.js`)."""
    if "::" in text:
        file, _, function = text.rpartition("::")
        path = Path(file)
        if path.suffix not in file_suffixes or not path.stem or not _IDENTIFIER.fullmatch(function):
            files = " or ".join(f"a {suffix} file" for suffix in file_suffixes)
            raise ValueError(_expected(text, hint=f" ({files}, '::', a function name)"))
        return HandlerRef(path.parent, path.stem, function)
    folder, slash, rest = text.rpartition("/")
    module, dot, function = rest.rpartition(".")
    if not dot or not module or not _IDENTIFIER.fullmatch(function) or ":" in text:
        raise ValueError(_expected(text))
    if module.endswith(file_suffixes):
        raise ValueError(
            _expected(text, hint=f"; did you mean {f'{folder}{slash}{module}::{function}'!r}?")
        )
    return HandlerRef(Path(folder) if slash else Path("."), module, function)


def is_handler(text: str) -> bool:
    """Whether `text` is spelled as a handler (not, say, a function's name in edge.toml)."""
    try:
        parse_handler(text)
    except ValueError:
        return False
    return True


def _expected(text: str, hint: str = "") -> str:
    return f"expected a handler as {HANDLER_FORMS}, found {text!r}{hint}"

"""The functions' own log on the edge's stderr, each line naming who wrote it.

Every invocation's log text (START, what the function printed or logged, END, REPORT) comes
out with each line led by the function's name and the trigger it ran at
(`basic-auth viewer-request | START RequestId: ...`), so the logs of several functions (and of
several workers) can be told apart. `[server] function_logs` chooses how much: "full" (every
invocation), "errors-only" (invocations that failed, or whose result the edge refused) or
"none". On a terminal the lines are coloured (the name in a colour of its own, Lambda's lines
dim, errors red); into a file or a pipe they are plain text.
"""

from __future__ import annotations

import re
import sys
import zlib
from typing import Literal, TextIO

from rich.console import Console
from rich.text import Text

FunctionLogMode = Literal["full", "errors-only", "none"]

# Lambda's own lines: dim beside what the function wrote.
_PLATFORM_LINE = re.compile(r"(START|END|REPORT|INIT_START) RequestId: |INIT_START ")
_ERROR_LINE = re.compile(r"\[ERROR\]|Task timed out after|Status: (error|timeout)")
_WARNING_LINE = re.compile(r"\[WARN(ING)?\]")
_NAME_COLOURS = ("cyan", "magenta", "green", "blue", "bright_cyan", "bright_magenta")


class FunctionLogs:
    """Writes invocation logs to `stream` (default: stderr) as `mode` says."""

    def __init__(self, mode: FunctionLogMode = "full", *, stream: TextIO | None = None) -> None:
        self.mode = mode
        self._stream = stream if stream is not None else sys.stderr
        self._console: Console | None = None
        isatty = getattr(self._stream, "isatty", None)
        if isatty is not None and isatty():
            console = Console(
                file=self._stream, highlight=False, soft_wrap=True, markup=False, emoji=False
            )
            if console.color_system is not None:  # NO_COLOR, TERM=dumb: plain text
                self._console = console

    def record(self, function: str, trigger: str | None, text: str, *, failed: bool) -> None:
        """One invocation's log: written in "full" mode, and in "errors-only" when `failed`."""
        if not text or self.mode == "none" or (self.mode == "errors-only" and not failed):
            return
        self.write(function, trigger, text)

    def rejected(self, function: str, trigger: str | None, text: str) -> None:
        """The log of an invocation that ran but whose result the edge refused (invalid at the
        trigger): "errors-only" shows it now ("full" already did)."""
        if text and self.mode == "errors-only":
            self.write(function, trigger, text)

    def write(self, function: str, trigger: str | None, text: str) -> None:
        label = f"{function} {trigger}" if trigger else function
        lines = text.splitlines()
        if self._console is None:
            self._stream.write("".join(f"{label} | {line}\n" for line in lines))
            self._stream.flush()
            return
        colour = _NAME_COLOURS[zlib.crc32(function.encode()) % len(_NAME_COLOURS)]
        out = Text()
        failing = False
        for line in lines:
            out.append(f"{label} | ", style=colour)
            if _PLATFORM_LINE.match(line):
                failing = False
                out.append(line, style="bold red" if _ERROR_LINE.search(line) else "dim")
            elif _ERROR_LINE.search(line):
                failing = True  # the traceback that follows is the error's too
                out.append(line, style="bold red")
            elif failing:
                out.append(line, style="red")
            elif _WARNING_LINE.search(line):
                out.append(line, style="yellow")
            else:
                out.append(line)
            out.append("\n")
        self._console.print(out, end="")

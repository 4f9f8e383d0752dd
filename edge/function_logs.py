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

from rich.color import ColorSystem
from rich.console import Console
from rich.style import Style

FunctionLogMode = Literal["full", "errors-only", "none"]

# Lambda's own lines: dim beside what the function wrote.
# (Lambda's JSON log format: `platform.*` records, and `"level"` fields.)
_PLATFORM_LINE = re.compile(
    r"(START|END|REPORT|INIT_START) RequestId: |INIT_START "
    r'|\{"time":"[^"]*","type":"platform\.'
)
_ERROR_LINE = re.compile(
    r"\[ERROR\]|Task timed out after|Status: (error|timeout)"
    r'|"(log_)?level":"(ERROR|FATAL)"|"status":"(error|timeout|failure)"'
)
_WARNING_LINE = re.compile(r'\[WARN(ING)?\]|"level":"WARN"')
_COLOUR_SYSTEMS = {
    "standard": ColorSystem.STANDARD,
    "256": ColorSystem.EIGHT_BIT,
    "truecolor": ColorSystem.TRUECOLOR,
}
_NAME_COLOURS = ("cyan", "magenta", "green", "blue", "bright_cyan", "bright_magenta")


class FunctionLogs:
    """Writes invocation logs to `stream` (default: stderr) as `mode` says."""

    def __init__(self, mode: FunctionLogMode = "full", *, stream: TextIO | None = None) -> None:
        self.mode = mode
        self._stream = stream if stream is not None else sys.stderr
        # On a terminal that takes colours (not NO_COLOR, not TERM=dumb): the colour system
        # to render styles for; rich decides, as for the edge's other messages.
        self._colours: ColorSystem | None = None
        isatty = getattr(self._stream, "isatty", None)
        if isatty is not None and isatty():
            console = Console(file=self._stream)
            if not console.no_color and console.color_system is not None:
                self._colours = _COLOUR_SYSTEMS.get(console.color_system, ColorSystem.STANDARD)
        self._styles: dict[str, Style] = {}

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
        if self._colours is None:
            lead = f"{label} | "
            self._stream.write(lead + text.rstrip("\n").replace("\n", "\n" + lead) + "\n")
            self._stream.flush()
            return
        lines = text.rstrip("\n").split("\n")
        lead = self._paint(f"{label} | ", _name_colour(function))
        out: list[str] = []
        failing = False
        for line in lines:
            if _PLATFORM_LINE.match(line):
                failing = False
                style = "bold red" if _ERROR_LINE.search(line) else "dim"
            elif _ERROR_LINE.search(line):
                failing = True  # the traceback that follows is the error's too
                style = "bold red"
            elif failing:
                style = "red"
            elif _WARNING_LINE.search(line):
                style = "yellow"
            else:
                style = ""
            out.append(f"{lead}{self._paint(line, style) if style else line}\n")
        self._stream.write("".join(out))
        self._stream.flush()

    def _paint(self, text: str, style: str) -> str:
        parsed = self._styles.get(style)
        if parsed is None:
            parsed = self._styles[style] = Style.parse(style)
        return parsed.render(text, color_system=self._colours)


def _name_colour(function: str) -> str:
    """A colour of the function's own, the same in every run."""
    return _NAME_COLOURS[zlib.crc32(function.encode()) % len(_NAME_COLOURS)]

"""Run guests through the real WASM runtime (`sandbox.wasm.WasmFunction`) from synchronous tests.

One event loop (an `asyncio.Runner`) owns every function it started; each module gets one
`WasmFunction` with the runtime's default settings (a fresh instance per invocation).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType

from sandbox.wasm import CONTINUE, WasmEngine, WasmFunction, WasmFunctionSpec


class SandboxHost:
    """`with SandboxHost() as host: host.invoke(path, entry, event)`."""

    def __init__(self) -> None:
        self._runner = asyncio.Runner()
        self._engine = WasmEngine(cache_dir=False)
        self._functions: dict[Path, WasmFunction] = {}

    def __enter__(self) -> SandboxHost:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            for function in self._functions.values():
                self._runner.run(function.aclose())
        finally:
            self._functions.clear()
            self._runner.close()
            self._engine.close()

    def invoke(self, path: Path, entry: str, event: bytes) -> bytes | None:
        """The guest's result JSON, or None for "continue unchanged"; FunctionError on failure."""
        function = self._functions.get(path)
        if function is None:
            spec = WasmFunctionSpec(name=f"{path.parent.name}-{path.stem}", module=path)
            function = self._functions[path] = WasmFunction(spec, engine=self._engine)
        result = self._runner.run(function.invoke(event, entry=entry))
        return None if result.payload == CONTINUE else result.payload

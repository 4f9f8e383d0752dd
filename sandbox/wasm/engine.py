"""The shared wasmtime engine: configuration, the compiled-module cache, the epoch ticker.

One `WasmEngine` serves every WASM function of a process. It holds up to two wasmtime engines
(with and without fuel metering, which changes the generated code), compiles each module once
and keeps the machine code on disk, keyed by the module's sha256, the wasmtime version and the
settings that affect code generation, so the next start only deserializes it (~0.1 ms instead
of ~1 ms-1 s).

Instances come from wasmtime's pooling allocator: a new instance takes a slot whose memory,
table and fiber stack are mapped once and reset when it is freed, rather than mapped and
unmapped per instance (~45 µs less per fresh-instance invocation here). `POOL_INSTANCES`
instances may be alive at once; past that, an invocation is throttled. A module that does not
fit a pool slot (a table over 20,000 elements, several memories) gets an engine without a
pool, as does everything where the address space is too small for it (a `ulimit -v`).

A background thread advances the engines' epoch every `tick_seconds` while any
invocation is running: that is what suspends a guest at the end of its slice on the event loop
and interrupts it at its deadline.

The cache directory must be private to the user: a compiled module is native code that
wasmtime maps and runs without validation. It is created with mode 0700.

`raw_calls` says how instances are called: through wasmtime's private bindings (`raw_calls`,
the fast path) when their self-test passed, else through the public API (`public_calls`); a
fallback is logged once, with its reason.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from sandbox.wasm import raw_calls

logger = logging.getLogger("sandbox.wasm")

DEFAULT_TICK_SECONDS = 0.002
# The pooling allocator's slots per engine: instances (with their memory, table and async
# stack) alive at once, across every function of the process. Each memory slot reserves 4 GiB
# of address space (wasm32's whole range; a function's own limit is its store's), not memory.
POOL_INSTANCES = 1000
_POOL_MEMORY_BYTES = 4 << 30
# Idle ticks before the ticker parks until the next invocation.
_LINGER_TICKS = 50
# How long a guest may run on the event loop before it is suspended and moved to a thread.
DEFAULT_SLICE_SECONDS = 0.002
_OPT_LEVEL = "speed"


def wasm_cache_dir(cache_home: str | None = None) -> Path:
    """`cache_home/edge/wasm`, else `~/.cache/edge/wasm`. The CLI passes `$XDG_CACHE_HOME`:
    only the CLI reads the environment."""
    base = cache_home or str(Path.home() / ".cache")
    return Path(base) / "edge" / "wasm"


@dataclass(frozen=True, slots=True)
class CacheStats:
    """How `WasmEngine.load_module` got its modules: compiled, from disk, or already loaded."""

    compiles: int
    disk_hits: int
    memory_hits: int


@dataclass(frozen=True, slots=True)
class LoadedModule:
    """A compiled module, and whether this load compiled it (False: cache)."""

    module: wasmtime.Module
    compiled: bool
    key: str


class WasmEngine:
    """Shared wasmtime engines, module cache and epoch ticker. Thread-safe; close() when done.

    `cache_dir=None` uses `wasm_cache_dir()`; `cache_dir=False` disables the disk cache.
    `raw_calls=False` never uses the raw path (by default it is used when its self-test passes).
    `pooling=False` maps each instance's memory on its own (no pooling allocator).
    `slice_seconds`: how long an invocation of a core module (raw path) runs on the event loop
    before its guest is suspended and moved to a thread (a deadline counted in ticks, so it
    ends up to one tick later); 0 starts every invocation on a thread.
    """

    def __init__(
        self,
        *,
        cache_dir: Path | str | bool | None = None,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
        raw_calls: bool = True,
        slice_seconds: float = DEFAULT_SLICE_SECONDS,
        pooling: bool = True,
    ) -> None:
        if tick_seconds <= 0:
            raise ValueError("tick_seconds must be positive")
        if slice_seconds < 0:
            raise ValueError("slice_seconds must be 0 or more")
        self.slice_seconds = slice_seconds
        self.pooling = pooling
        if cache_dir is False:
            self.cache_dir: Path | None = None
        elif cache_dir is None or cache_dir is True:
            self.cache_dir = wasm_cache_dir()
        else:
            self.cache_dir = Path(cache_dir)
        self.tick_seconds = tick_seconds
        self._allow_raw_calls = raw_calls
        self._raw_calls: bool | None = None
        self.raw_calls_problem: str | None = None
        self._engines: dict[tuple[bool, bool], wasmtime.Engine] = {}  # (fuel, pooled)
        self._modules: dict[str, wasmtime.Module] = {}
        self._lock = threading.Lock()
        self._compiles = 0
        self._disk_hits = 0
        self._memory_hits = 0
        # The ticker: runs only while invocations are in flight (`_active` > 0).
        self._active = 0
        self._active_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._ticker: threading.Thread | None = None
        # Written by the ticker only: the time its schedule started, ticks done since, and
        # whether it is running that schedule (False while it waits for an invocation).
        self._tick_base = 0.0
        self._ticks_done = 0
        self._ticking = False

    # -- engines and modules ----------------------------------------------------------------

    @property
    def raw_calls(self) -> bool:
        """Whether instances are called through wasmtime's private bindings (decided once, by
        `raw_calls.self_test()`); `raw_calls_problem` says why not, when not."""
        with self._lock:
            if self._raw_calls is None:
                problem = raw_calls.self_test() if self._allow_raw_calls else "turned off"
                if problem is not None and self._allow_raw_calls:
                    logger.warning("WASM: using wasmtime's public API (slower): %s", problem)
                self.raw_calls_problem = problem
                self._raw_calls = problem is None
            return self._raw_calls

    def engine(self, *, fuel: bool, pooled: bool = True) -> wasmtime.Engine:
        """The wasmtime engine for modules with (or without) fuel metering, whose instances
        come from the pool (`pooled`, when the engine has one) or are mapped one by one."""
        with self._lock:
            pooled = pooled and self.pooling
            engine = self._engines.get((fuel, pooled))
            if engine is None and pooled:
                try:
                    engine = wasmtime.Engine(_config(fuel=fuel, pooling=True))
                except (wasmtime.WasmtimeError, AttributeError) as exc:
                    logger.warning("WASM: no pooling allocator (%s); mapping per instance", exc)
                    self.pooling = pooled = False
                    engine = self._engines.get((fuel, pooled))
            if engine is None:
                engine = wasmtime.Engine(_config(fuel=fuel, pooling=pooled))
            self._engines[(fuel, pooled)] = engine
            return engine

    def is_pooled(self, engine: wasmtime.Engine) -> bool:
        """Whether `engine` (one of this engine's) takes its instances from the pool."""
        with self._lock:
            return any(pooled for (_, pooled), one in self._engines.items() if one is engine)

    def load_module(self, path: Path | str, *, fuel: bool, pooled: bool = True) -> LoadedModule:
        """Compile `path` (`.wasm` or `.wat`), or load its machine code from the cache, for the
        engine `engine(fuel=fuel, pooled=pooled)`.

        Blocking (compiling a large module takes seconds): call it off the event loop.
        Raises `wasmtime.WasmtimeError` for an invalid module, OSError if it cannot be read.
        """
        source = Path(path)
        raw = source.read_bytes()
        wasm = bytes(wasmtime.wat2wasm(raw.decode("utf-8"))) if source.suffix == ".wat" else raw
        engine = self.engine(fuel=fuel, pooled=pooled)
        key = self._cache_key(wasm, fuel=fuel, pooled=self.is_pooled(engine))
        with self._lock:
            cached = self._modules.get(key)
            if cached is not None:
                self._memory_hits += 1
                return LoadedModule(cached, compiled=False, key=key)
        module = self._load_cached(engine, key)
        compiled = module is None
        if module is None:
            module = wasmtime.Module(engine, wasm)
            self._store_cached(module, key)
        with self._lock:
            if compiled:
                self._compiles += 1
            else:
                self._disk_hits += 1
            module = self._modules.setdefault(key, module)
        return LoadedModule(module, compiled=compiled, key=key)

    def cache_stats(self) -> CacheStats:
        """Totals since this engine was created."""
        with self._lock:
            return CacheStats(self._compiles, self._disk_hits, self._memory_hits)

    def _cache_key(self, wasm: bytes, *, fuel: bool, pooled: bool) -> str:
        digest = hashlib.sha256(wasm)
        # Everything that changes the machine code for the same module bytes.
        settings = (
            f"\0wasmtime={_wasmtime_version()};arch={platform.machine()};"
            f"opt={_OPT_LEVEL};epoch=1;fuel={int(fuel)};pool={int(pooled)}"
        )
        digest.update(settings.encode())
        return digest.hexdigest()

    def _load_cached(self, engine: wasmtime.Engine, key: str) -> wasmtime.Module | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.cwasm"
        if not path.is_file():
            return None
        try:
            return wasmtime.Module.deserialize_file(engine, str(path))
        except wasmtime.WasmtimeError:
            # Stale or damaged (another wasmtime build): compile again and overwrite it.
            return None

    def _store_cached(self, module: wasmtime.Module, key: str) -> None:
        if self.cache_dir is None:
            return
        try:
            self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.cache_dir, prefix=f".{key}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(module.serialize())
                os.replace(temporary, self.cache_dir / f"{key}.cwasm")
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            pass  # a read-only or full cache only costs the next start a compile

    # -- the epoch ticker -------------------------------------------------------------------

    def invocation_started(self) -> None:
        """Count an invocation in; starts (or wakes) the ticker. Any thread."""
        with self._active_lock:
            self._active += 1
            first = self._active == 1
            if self._ticker is None and not self._closed:
                self._ticker = threading.Thread(
                    target=self._tick, name="wasm-epoch-ticker", daemon=True
                )
                self._ticker.start()
        if first and not self._ticking:
            self._wake.set()

    def invocation_finished(self) -> None:
        """Count an invocation out. Any thread."""
        with self._active_lock:
            self._active -= 1

    def deadline_ticks(self, seconds_left: float) -> int:
        """Epoch ticks after the current epoch that cover `seconds_left` (at least 1).

        Adds the ticks the ticker owes (it runs late when the machine is busy, then catches
        up at once): counted from a late epoch, a deadline would otherwise fire early.
        """
        tick = self.tick_seconds
        lag = 0
        if self._ticking:
            lag = max(0, int((time.monotonic() - self._tick_base) / tick) - self._ticks_done)
        return max(1, int(seconds_left / tick) + 1 + lag)

    def _tick(self) -> None:
        tick = self.tick_seconds
        self._tick_base, self._ticks_done, self._ticking = time.monotonic(), 0, True
        idle = 0
        while not self._closed:
            self._wake.clear()
            idle = idle + 1 if self._active == 0 else 0
            # Parks after `_LINGER_TICKS` idle ticks, not at once: invocations that follow each
            # other then need no wake-up (an Event.set, a few µs each).
            if idle > _LINGER_TICKS:
                self._ticking = False
                # Re-check after clearing `_ticking`: an invocation that started in between
                # saw it set and did not wake us.
                if self._active == 0:
                    self._wake.wait()
                self._tick_base, self._ticks_done = time.monotonic(), 0
                self._ticking = True
                idle = 0
                continue
            base, done = self._tick_base, self._ticks_done
            time.sleep(max(0.0, base + (done + 1) * tick - time.monotonic()))
            # The epoch follows the clock, not the number of wake-ups: sleeps overshoot and a
            # busy GIL delays the thread, so catch up on every tick that is due.
            due = int((time.monotonic() - base) / tick)
            engines = list(self._engines.values())
            for _ in range(due - done):
                for engine in engines:
                    engine.increment_epoch()
            self._ticks_done = due

    def close(self) -> None:
        """Stop the ticker thread. Invocations still running are no longer interrupted."""
        self._closed = True
        self._wake.set()
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join()


def _config(*, fuel: bool, pooling: bool) -> wasmtime.Config:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    config.cranelift_opt_level = _OPT_LEVEL
    if pooling:
        from wasmtime import _bindings as ffi  # no public API for the pooling allocator yet

        pool = ffi.wasmtime_pooling_allocation_config_new()
        try:
            for setter in (
                ffi.wasmtime_pooling_allocation_config_total_core_instances_set,
                ffi.wasmtime_pooling_allocation_config_total_memories_set,
                ffi.wasmtime_pooling_allocation_config_total_tables_set,
                ffi.wasmtime_pooling_allocation_config_total_stacks_set,
            ):
                setter(pool, POOL_INSTANCES)
            ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pool, _POOL_MEMORY_BYTES)
            ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
        finally:
            ffi.wasmtime_pooling_allocation_config_delete(pool)
    return config


_VERSION: list[str] = []


def _wasmtime_version() -> str:
    if not _VERSION:
        _VERSION.append(importlib.metadata.version("wasmtime"))
    return _VERSION[0]

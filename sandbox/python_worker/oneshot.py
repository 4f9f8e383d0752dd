"""Run one handler once in a real execution environment (for `edge invoke FILE.py::FUNC`).

A cold start, one invocation, then everything is stopped: the same process, environment
variables, limits and log text as under the pool.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from sandbox.python_worker.environment import ExecutionEnvironment, InvocationResult
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.spec import FunctionSpec


async def invoke_handler_file(
    path: Path,
    function: str,
    event: bytes,
    *,
    name: str | None = None,
    timeout_seconds: float = 3.0,
    memory_mb: int = 128,
    environment: Mapping[str, str] | None = None,
    request_id: str = "",
) -> InvocationResult:
    """Invoke `function` of the module file `path` with `event` (JSON bytes).

    The file's directory is the task root. Returns the result (its `log` is the whole log
    text); raises the `FunctionError` family like `PythonFunctionPool.invoke`.
    """
    path = Path(path)
    spec = FunctionSpec(
        name=name or path.stem,
        handler=f"{path.stem}.{function}",
        code_dir=path.resolve().parent,
        memory_mb=memory_mb,
        timeout_seconds=timeout_seconds,
        environment=dict(environment or {}),
        max_concurrency=1,
    )
    if not request_id:
        import uuid

        request_id = str(uuid.uuid4())
    zygote = await Zygote.launch(code_dirs=[spec.code_dir])
    try:
        execution_environment = await ExecutionEnvironment.launch(zygote, spec)
        try:
            return await execution_environment.invoke(
                event,
                request_id=request_id,
                deadline=time.monotonic() + timeout_seconds,
                invoked_arn=spec.function_arn,
                timeout_seconds=timeout_seconds,
            )
        finally:
            execution_environment.kill()
            await execution_environment.wait_exited()
    finally:
        await zygote.aclose()

"""Custom runtimes (`provided`, `provided.al2`, `provided.al2023`): a function's own `bootstrap`
executable, any language, speaking Lambda's Runtime API, beside the other runtimes over the
same seam.

Host side: `function` (the runtime: `ProvidedFunctionPool`, an `EnvironmentPool` whose launcher
keeps a pre-started agent ready), `launcher` (starts agent processes, confined by
`confinement`), `environment` (one environment: the framed environment of
`sandbox.runtime.framed_environment`, with Lambda's words for a bootstrap that fails), `spec`
(a function version, its bootstrap and variables). Inside each environment: `agent.py`, which
serves the Runtime API on 127.0.0.1 and runs the bootstrap.
"""

"""Python execution environments: forked processes that run Lambda `handler(event, context)` code.

Host side: `function` (the runtime: `PythonFunctionPool`, an `EnvironmentPool` whose launcher
forks from a zygote), `launcher` (the zygote process that forks environments), `environment`
(one environment: framed IPC, deadlines, errors, log text), `spec` (a function version and its
Lambda environment variables), `isolation` and `confinement` (how far it is kept apart). Inside
the processes: `zygote`, `runtime`, `context`, `output` (stdout/stderr kept near the log limit),
`marshaller` (results to JSON within the result limit). Pure: `framing`. This package imports
nothing heavy on purpose: the zygote imports it before it forks.
"""

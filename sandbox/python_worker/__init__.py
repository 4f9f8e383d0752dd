"""Python execution environments: forked processes that run Lambda `handler(event, context)` code.

Host side: `launcher` (the zygote process that forks environments), `environment` (one
environment: framed IPC, deadlines, errors, log text), `spec` (a function version and its
Lambda environment variables), `oneshot` (run one handler once). Inside the processes:
`zygote`, `runtime`, `context`, `output` (stdout/stderr kept near the log limit), `marshaller`
(results to JSON within the result limit). Pure: `framing`, `log_lines`. This package imports
nothing heavy on purpose: the zygote imports it before it forks.
"""

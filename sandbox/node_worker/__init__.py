"""Node.js execution environments: `node` processes that run Lambda `handler(event, context)`
JavaScript (CommonJS or ES modules), beside the Python runtime over the same seam.

Host side: `function` (the runtime: `NodeFunctionPool`, an `EnvironmentPool` whose launcher
keeps a pre-started process ready), `launcher` (starts `node` processes, confined by
`confinement`; each process a `sandbox.runtime.process.SpawnedProcess`), `environment` (one
environment: the framed environment of `sandbox.runtime.framed_environment` with V8's
out-of-memory words), `spec` (a function version, its variables and its `node`). Inside each
process: `runtime.js`.
"""

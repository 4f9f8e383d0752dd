"""Node.js execution environments: `node` processes that run Lambda `handler(event, context)`
JavaScript (CommonJS or ES modules), beside the Python runtime over the same seam.

Host side: `function` (the runtime: `NodeFunctionPool`, an `EnvironmentPool` whose launcher
keeps a pre-started process ready), `launcher` (starts `node` processes, confined by
`confinement`), `process` (one process: its output file, its exit, its kill), `environment`
(one environment: framed IPC, deadlines, errors, log text), `spec` (a function version, its
variables and its `node`). Inside each process: `runtime.js`.
"""

;; WASI test guest: 24 MiB to stderr with no newline, then 8 MiB to stdout (the result, over
;; the 6 MiB limit). The bytes written are never-touched (zero) pages, except the last MiB of
;; stderr ('E's). wasmtime hands a custom stream 4 KiB at a time: 8,192 host calls in all.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 400)
  (func (export "_start")
    (memory.fill (i32.const 24182784) (i32.const 69) (i32.const 1048576))
    ;; iovecs: stderr's at 0 (24 MiB from 65536), stdout's at 16 (8 MiB from 65536);
    ;; the counts written go to 8 and 24
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 25165824))
    (i32.store (i32.const 16) (i32.const 65536))
    (i32.store (i32.const 20) (i32.const 8388608))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
)

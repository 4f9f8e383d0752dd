;; A reactor, as AssemblyScript builds one with `--exportStart _initialize`: its allocator
;; works only after `_initialize` ran (the heap base is set there), and traps otherwise.
;; `handler` answers {"inits":N}: how many times `_initialize` ran in this instance.
(module
  (import "edge" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 0))    ;; 0 until _initialize
  (global $inits (mut i32) (i32.const 0))
  (data (i32.const 16) "{\"inits\":0}")     ;; 11 bytes; the digit is at 16 + 9

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
    (global.set $heap (i32.const 1024)))

  (func (export "handler") (param i32 i32) (result i64)
    (i32.store8 (i32.const 25) (i32.add (i32.const 48) (global.get $inits)))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 11)))
)

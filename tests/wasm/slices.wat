;; Core-ABI test guest for guests that outlive their slice on the event loop.
(module
  (import "edge" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (global $count (mut i32) (i32.const 0))     ;; survives between invocations only if reused
  (data (i32.const 64) "before the slice")                               ;; 16 bytes
  (data (i32.const 80) "after the slice")                                ;; 15 bytes
  (data (i32.const 96) "{\"fast\":true}")                               ;; 13 bytes

  (func (export "edge_alloc") (param i32) (result i32) (i32.const 1024))

  ;; handler: spin forever (only the deadline stops it)
  (func (export "handler") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0))

  ;; viewer_request: count invocations, log, loop 100,000,000 times (far longer than a slice),
  ;; log again; the result is the count as one ASCII digit
  (func (export "viewer_request") (param i32 i32) (result i64)
    (local $i i32)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (call $log (i32.const 64) (i32.const 16))
    (loop $count
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $count (i32.lt_u (local.get $i) (i32.const 100000000))))
    (call $log (i32.const 80) (i32.const 15))
    (i32.store8 (i32.const 8) (i32.add (i32.const 48) (global.get $count)))
    (i64.or (i64.shl (i64.const 8) (i64.const 32)) (i64.const 1)))

  ;; origin_request: answer at once
  (func (export "origin_request") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 96) (i64.const 32)) (i64.const 13)))
)

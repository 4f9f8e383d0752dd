;; Core-ABI test guest: echo, a fixed response, "continue unchanged", a counter, edge.log.
(module
  (import "edge" "log" (func $log (param i32 i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))   ;; bump allocator; data lives below 4096
  (global $count (mut i32) (i32.const 0))     ;; survives between invocations only if reused
  (data (i32.const 16) "{\"status\":\"200\",\"statusDescription\":\"OK\"}")  ;; 41 bytes
  (data (i32.const 64) "got an event")                                   ;; 12 bytes
  (data (i32.const 80) "reset")                                          ;; 5 bytes

  (func (export "edge_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    ;; grow when the bump pointer passes the end of memory
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $size) (i32.const 16))
                                          (i32.const 1)))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (local.get $ptr))

  (func (export "edge_reset")
    (global.set $heap (i32.const 4096)))

  ;; handler: log a line, return the event itself
  (func (export "handler") (param $ptr i32) (param $len i32) (result i64)
    (call $log (i32.const 64) (i32.const 12))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; viewer_request: a generated response, fixed JSON
  (func (export "viewer_request") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 41)))

  ;; origin_response: continue unchanged
  (func (export "origin_response") (param i32 i32) (result i64)
    (i64.const 0))

  ;; viewer_response: count invocations; the result is the count as one ASCII digit
  (func (export "viewer_response") (param i32 i32) (result i64)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.store8 (i32.const 8) (i32.add (i32.const 48) (global.get $count)))
    (i64.or (i64.shl (i64.const 8) (i64.const 32)) (i64.const 1)))
)

;; Core-ABI test guest: hostile output, for the host's bounds.
;; Its memory is 1601 pages: 100 MiB for a message, then one page for the event.
(module
  (import "edge" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1601)
  (func (export "edge_alloc") (param i32) (result i32) (i32.const 104857600))

  ;; handler: three edge.log calls of a 100 MiB message. Only its last MiB is text ('A's):
  ;; the rest is never-touched (zero) pages, so the guest's own memory stays small.
  (func (export "handler") (param i32 i32) (result i64)
    (memory.fill (i32.const 103809024) (i32.const 65) (i32.const 1048576))
    (call $log (i32.const 0) (i32.const 104857600))
    (call $log (i32.const 0) (i32.const 104857600))
    (call $log (i32.const 0) (i32.const 104857600))
    (i64.const 0))

  ;; viewer_request: a result of 100 MiB (refused by its length, never read)
  (func (export "viewer_request") (param i32 i32) (result i64)
    (i64.const 104857600))

  ;; origin_request: one short message, then continue
  (func (export "origin_request") (param i32 i32) (result i64)
    (i32.store (i32.const 0) (i32.const 0x0a6b6f))  ;; "ok\n"
    (call $log (i32.const 0) (i32.const 3))
    (i64.const 0))
)

;; Core-ABI test guest: one entry point per way to break a limit.
(module
  (memory (export "memory") 1)
  (func (export "edge_alloc") (param i32) (result i32) (i32.const 1024))

  ;; handler: spin forever (only the epoch deadline stops it)
  (func (export "handler") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0))

  ;; viewer_request: grow memory a page at a time until refused, then trap, as an allocator does
  (func (export "viewer_request") (param i32 i32) (result i64)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)

  ;; origin_request: a plain trap
  (func (export "origin_request") (param i32 i32) (result i64)
    unreachable)

  ;; origin_response: a result far outside memory
  (func (export "origin_response") (param i32 i32) (result i64)
    (i64.const 0x7fff000000000064))

  ;; viewer_response: a bounded loop of 5,000,000 iterations (fuel runs out first)
  (func (export "viewer_response") (param i32 i32) (result i64)
    (local $i i32)
    (loop $count
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $count (i32.lt_u (local.get $i) (i32.const 5000000))))
    (i64.const 0))
)

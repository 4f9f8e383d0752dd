;; Breaks the core ABI: `handler` must be (i32, i32) -> i64.
(module
  (memory (export "memory") 1)
  (func (export "edge_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handler") (param i32) (result i32) (i32.const 0))
)

;; What AssemblyScript emits by default: an `env.abort` import, which the host does not offer.
;; Otherwise a valid core guest (it would echo the event), so only the import is wrong.
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "edge_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "viewer_request") (param $ptr i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))
)

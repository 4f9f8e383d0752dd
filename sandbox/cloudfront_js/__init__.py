"""CloudFront Functions (cloudfront-js-1.0 and 2.0) run in process by QuickJS.

`CloudFrontFunction(spec)` is a `sandbox.runtime.Runtime`; `spec` is a `CloudFrontJsSpec`.
Imports only `sandbox.runtime`.
"""

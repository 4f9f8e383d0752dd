"""The CDN cache: RFC 9111 rules and CloudFront cache policies (`policy`), a byte-bounded store
with a disk tier (`store`), request collapsing (`collapse`) and the layer the pipeline calls
(`layer`)."""

from origin_proxy.cache.collapse import Collapser, Flight
from origin_proxy.cache.layer import HttpCache, Lookup, Next, Outcome, Verdict
from origin_proxy.cache.policy import (
    CacheKey,
    CachePolicy,
    Freshness,
    announce_surrogate,
    selecting_values,
    without_validators,
)
from origin_proxy.cache.store import CacheStats, CacheStore, Entry, StoreWriter
from origin_proxy.cache.tier import Claim, Found, SharedTier

__all__ = [
    "CacheKey",
    "CachePolicy",
    "CacheStats",
    "CacheStore",
    "Claim",
    "Collapser",
    "Entry",
    "Flight",
    "Found",
    "Freshness",
    "HttpCache",
    "Lookup",
    "Next",
    "Outcome",
    "SharedTier",
    "StoreWriter",
    "Verdict",
    "announce_surrogate",
    "selecting_values",
    "without_validators",
]

"""Several edge nodes (and several workers of one node) acting as one, through Redis.

`connection.Cluster` is the one Redis connection manager of a process: it connects in the
background, knows whether Redis is reachable now (`available`), reconnects by itself with
backoff, and tells listeners when that changes. Everything built on it (the cluster-wide
concurrency count, the invalidation stream, the shared cache tier, the async queue) asks it
for a client on every use and falls back to its local behaviour when there is none: an edge
whose Redis is down keeps serving with what the node alone knows.
"""

from edge.cluster.connection import Cluster, ClusterListener

__all__ = ["Cluster", "ClusterListener"]

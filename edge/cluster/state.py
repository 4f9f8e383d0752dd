"""The functions' state shared by every node: Redis is the authority, `state_dir` a replica.

What the management API and the CLI change lives in `[server] state_dir` as a few documents:
published versions and aliases (`lambda/state.json`), the API's changes to `$LATEST`
(`functions.json`) and deployment records (`deployments/d-*.json`); the documents name
immutable folders beside them (a version's snapshot `lambda/functions/NAME/N/`, an uploaded
package `code/NAME/SHA/`). With `[cluster] redis`, Redis holds:

- `{prefix}state:docs`: a hash, document path -> its bytes;
- `{prefix}state:rev`: a counter, raised by every change;
- `{prefix}state:blob:PATH`: each immutable folder, as a gzip'd tar, written once;
- `{prefix}state:lock`: the lock a change holds (redis-py's `Lock`: a token with an expiry,
  released by a script, so a node that dies mid-change frees it).

A change (`hold`) takes the lock, brings the local replica up to date, uploads the folders
the new document names, stores the document and raises the counter, and only then writes the
local file: while Redis cannot be reached a change is refused (`StateUnavailable`), never
made on one node alone. Every process of a node follows the counter (`follow`: one GET every
tenth of a second) and, when it moved, writes the documents that differ into its replica after
unpacking the folders they name; the readers already watch those files (the alias router,
the overrides poller, the deployer), so a change made on any node steers every node within
a few tenths of a second. While Redis is away, nodes keep serving from their replica.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import redis
from redis.exceptions import LockError, RedisError

from edge.lambda_service.store import STATE_DOCUMENT, StateUnavailable, replace_file

logger = logging.getLogger("edge.cluster")

OVERRIDES_DOCUMENT = "functions.json"
_DOCUMENT = re.compile(
    r"(lambda/state\.json|functions\.json|deployments/d-[A-Za-z0-9]{1,32}\.json)"
)
_NAME = r"[A-Za-z0-9_-]{1,140}"
_FOLDER = re.compile(rf"(lambda/functions/{_NAME}/[0-9]{{1,9}}|code/{_NAME}/[0-9a-f]{{8,64}})")
# The largest folder a node accepts from Redis, packed (Lambda's unzipped code limit).
MAX_BLOB_BYTES = 262_144_000
FOLLOW_SECONDS = 0.1
LOCK_SECONDS = 60.0
LOCK_WAIT_SECONDS = 15.0

# KEYS[1]: a deployment's owner key; ARGV: this node, lease ms. 1: ours (taken or renewed).
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if owner then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def document_folders(document: str, data: bytes) -> list[str]:
    """The immutable folders (paths under the state directory) `document` names."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    found: list[str] = []
    if document == STATE_DOCUMENT:
        for function, entry in (parsed.get("functions") or {}).items():
            found.extend(
                f"lambda/functions/{function}/{version.get('number')}"
                for version in entry.get("versions") or ()
            )
    elif document == OVERRIDES_DOCUMENT:
        for item in (parsed.get("functions") or {}).values():
            directory = (item.get("code") or {}).get("directory")
            if isinstance(directory, str) and not os.path.isabs(directory):
                found.append(directory)
    return [f for f in found if _FOLDER.fullmatch(f)]


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


class SharedState:
    """One node's link between its state directory and the cluster's Redis (see the module).

    Thread-safe; one Redis client per process (made again after a fork)."""

    def __init__(
        self,
        url: str,
        state_dir: Path,
        *,
        key_prefix: str = "edge:",
        node_id: str = "",
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.state_dir = state_dir
        self.node_id = node_id
        self.timeout = timeout
        self._docs_key = f"{key_prefix}state:docs"
        self._rev_key = f"{key_prefix}state:rev"
        self._blob_prefix = f"{key_prefix}state:blob:"
        self._lock_key = f"{key_prefix}state:lock"
        self._owner_prefix = f"{key_prefix}deploy:owner:"
        self._stop_prefix = f"{key_prefix}deploy:stop:"
        self._client_pid = 0
        self._client: redis.Redis | None = None
        self._seen: int | None = None
        self._mutex = threading.RLock()
        self._follower: threading.Thread | None = None
        self._follower_pid = 0
        self._stopping = threading.Event()
        self._unavailable_since: float | None = None

    # -- Redis ------------------------------------------------------------------------------

    def client(self) -> redis.Redis:
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            self._client = redis.Redis.from_url(
                self.url,
                socket_connect_timeout=self.timeout,
                # Folders of up to 250 MB travel on this client.
                socket_timeout=max(self.timeout, 30.0),
                health_check_interval=30,
            )
            self._client_pid = pid
            self._seen = None
        return self._client

    def _unavailable(self, error: BaseException) -> StateUnavailable:
        return StateUnavailable(
            f"the cluster's Redis cannot be reached ({type(error).__name__}: {error}); "
            "versions, aliases, code and configuration changes are refused until it is back "
            "(every node keeps serving what it has)"
        )

    # -- changing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self) -> Iterator[SharedState]:
        """The cluster's lock, with the local replica brought up to date; the yielded `publish`
        stores a document in Redis (call it before writing the local file)."""
        client = self.client()
        lock = client.lock(
            self._lock_key,
            timeout=LOCK_SECONDS,
            blocking_timeout=LOCK_WAIT_SECONDS,
            thread_local=False,
        )
        try:
            acquired = lock.acquire()
        except (RedisError, OSError) as error:
            raise self._unavailable(error) from None
        if not acquired:
            raise StateUnavailable(
                f"another change held the cluster's state lock for over {LOCK_WAIT_SECONDS:g} s; "
                "try again"
            )
        try:
            with self._local_lock():
                try:
                    self._pull_locked(force=True)
                except (RedisError, OSError) as error:
                    raise self._unavailable(error) from None
                yield self
        finally:
            with contextlib.suppress(RedisError, OSError, LockError):
                lock.release()

    def publish(self, document: str, data: bytes) -> None:
        """Upload the folders `document` names, store it and raise the counter. Raises
        StateUnavailable when Redis cannot take it."""
        if not _DOCUMENT.fullmatch(document):
            raise ValueError(f"not a shared document: {document}")
        try:
            client = self.client()
            self._upload(client, document_folders(document, data))
            pipe = client.pipeline(transaction=True)
            pipe.hset(self._docs_key, document, data)  # type: ignore[arg-type]
            pipe.incr(self._rev_key)
            pipe.execute()
        except (RedisError, OSError) as error:
            raise self._unavailable(error) from None

    def _upload(self, client: redis.Redis, folders: list[str]) -> None:
        """Store the folders Redis does not hold (asked each time: a Redis restarted without
        persistence holds none of those it had)."""
        if not folders:
            return
        pipe = client.pipeline(transaction=False)
        for folder in folders:
            pipe.exists(self._blob_prefix + folder)
        for folder, present in zip(folders, pipe.execute(), strict=True):
            if present:
                continue
            local = self.state_dir / folder
            if not local.is_dir():
                raise StateUnavailable(f"{local}: the folder a change names is missing")
            client.set(self._blob_prefix + folder, _pack(local), nx=True)

    # -- deployments' owners ----------------------------------------------------------------

    def claim(self, deployment_id: str, seconds: float) -> bool:
        """Take or renew the lease on running deployment `deployment_id` for `seconds`; False
        while another node holds it. StateUnavailable without Redis."""
        key = self._owner_prefix + deployment_id
        try:
            return bool(self.client().eval(_CLAIM, 1, key, self.node_id, str(int(seconds * 1000))))
        except (RedisError, OSError) as error:
            raise self._unavailable(error) from None

    def document(self, document: str) -> bytes | None:
        """A document as Redis holds it now (None: there is none)."""
        try:
            found = self.client().hget(self._docs_key, document)
        except (RedisError, OSError) as error:
            raise self._unavailable(error) from None
        return found if isinstance(found, bytes) else None

    def request_stop(self, deployment_id: str) -> None:
        """Ask the node running `deployment_id` to stop it (kept an hour)."""
        try:
            self.client().set(self._stop_prefix + deployment_id, self.node_id or "?", ex=3600)
        except (RedisError, OSError) as error:
            raise self._unavailable(error) from None

    def stop_requested(self, deployment_id: str) -> bool:
        try:
            return bool(self.client().exists(self._stop_prefix + deployment_id))
        except (RedisError, OSError) as error:
            raise self._unavailable(error) from None

    # -- following --------------------------------------------------------------------------

    def start(self) -> None:
        """At startup, before serving: an empty cluster takes this node's documents (a node
        that ran alone joins with what it had); otherwise the replica follows the cluster's.
        Never raises: without Redis the node starts from its replica, and says so."""
        try:
            client = self.client()
            if not client.exists(self._docs_key):
                with self.hold() as held:
                    if not client.exists(self._docs_key):
                        for document in self._local_documents():
                            held.publish(document, (self.state_dir / document).read_bytes())
                            logger.info("cluster: state %s shared from this node", document)
            else:
                self.pull()
        except (StateUnavailable, RedisError, OSError) as error:
            logger.warning(
                "cluster: the shared state could not be read (%s); starting from %s",
                error,
                self.state_dir,
            )

    def _local_documents(self) -> list[str]:
        found = [d for d in (STATE_DOCUMENT, OVERRIDES_DOCUMENT) if (self.state_dir / d).is_file()]
        deployments = self.state_dir / "deployments"
        if deployments.is_dir():
            found += [f"deployments/{p.name}" for p in sorted(deployments.glob("d-*.json"))]
        return found

    def refresh(self) -> None:
        """`pull`, for readers (`edge check`, the CLI's listings): without Redis the replica
        is what there is, said in the log."""
        try:
            self.pull()
        except (RedisError, OSError) as error:
            logger.warning(
                "cluster: the shared state could not be read (%s); using %s", error, self.state_dir
            )

    def pull(self) -> bool:
        """Bring the replica up to date when the counter moved; True when a file changed."""
        with self._local_lock():
            return self._pull_locked(force=False)

    def _pull_locked(self, *, force: bool) -> bool:
        client = self.client()
        rev = int(cast(bytes | None, client.get(self._rev_key)) or 0)
        if rev == self._seen and not force:
            return False
        documents: dict[bytes, bytes] = client.hgetall(self._docs_key)  # type: ignore[assignment]
        changed = False
        complete = True
        for raw_name, data in documents.items():
            document = raw_name.decode("utf-8", "replace")
            if not _DOCUMENT.fullmatch(document):
                logger.warning("cluster: shared state names %r, not a document: ignored", document)
                continue
            target = self.state_dir / document
            try:
                if target.read_bytes() == data:
                    continue
            except OSError:
                pass
            try:
                for folder in document_folders(document, data):
                    self._materialise(client, folder)
            except _Missing as missing:
                logger.warning("cluster: %s waits for %s", document, missing)
                complete = False
                continue
            replace_file(target, data)
            changed = True
        if complete:
            self._seen = rev
        return changed

    def _materialise(self, client: redis.Redis, folder: str) -> None:
        target = self.state_dir / folder
        if target.is_dir():
            return
        packed = client.get(self._blob_prefix + folder)
        if packed is None:
            raise _Missing(folder)
        assert isinstance(packed, bytes)
        if len(packed) > MAX_BLOB_BYTES:
            raise _Missing(f"{folder} (over {MAX_BLOB_BYTES} bytes packed: refused)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as archive:
                archive.extractall(staging, filter="data")
            # Readable by the functions' own uids, as Lambda's code is (755 folders).
            staging.chmod(0o755)
            os.replace(staging, target)
        except (tarfile.TarError, OSError) as error:
            raise _Missing(f"{folder} (unreadable: {error})") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def _local_lock(self) -> Iterator[None]:
        """Serialises this node's processes (and threads) writing the replica."""
        with self._mutex:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with open(self.state_dir / ".cluster.lock", "a+b") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def follow(self, interval: float = FOLLOW_SECONDS) -> None:
        """Follow the cluster in a daemon thread of this process (once per process)."""
        pid = os.getpid()
        if self._follower is not None and self._follower_pid == pid:
            return
        self._stopping = threading.Event()
        self._follower_pid = pid
        self._follower = threading.Thread(
            target=self._follow, args=(interval,), name="edge-state-follower", daemon=True
        )
        self._follower.start()

    def stop(self) -> None:
        self._stopping.set()

    def _follow(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                if self.client().get(self._rev_key) is None and self._local_documents():
                    # Redis lost its data (restarted without persistence): the first node to
                    # see it shares its replica again, and the others follow that.
                    self.start()
                self.pull()
            except (RedisError, OSError) as error:
                if self._unavailable_since is None:
                    self._unavailable_since = time.monotonic()
                    logger.warning(
                        "cluster: shared state not followed (%s); serving from %s until "
                        "redis is back",
                        error,
                        self.state_dir,
                    )
                self._stopping.wait(1.0)
                continue
            except Exception:  # the follower must outlive a bad document
                logger.exception("cluster: following the shared state failed")
                self._stopping.wait(1.0)
                continue
            if self._unavailable_since is not None:
                self._unavailable_since = None
                logger.warning("cluster: shared state followed again")


class _Missing(Exception):
    """A folder a document names is not in Redis (yet)."""


def shared_state_for(config: Any, state_dir: Path | None = None) -> SharedState | None:
    """The node's SharedState for an EdgeConfig with `[cluster] redis` and `shared_state`
    (`state_dir`: its state directory, when not `[server] state_dir` as it stands)."""
    settings = config.cluster
    if settings.redis is None or not settings.shared_state:
        return None
    return SharedState(
        settings.redis,
        config.server.state_dir if state_dir is None else state_dir,
        key_prefix=settings.key_prefix,
        node_id=settings.node_name,
        timeout=max(settings.timeout, 2.0),
    )


__all__ = [
    "OVERRIDES_DOCUMENT",
    "STATE_DOCUMENT",
    "SharedState",
    "StateUnavailable",
    "document_folders",
    "shared_state_for",
]

"""Gradual deployments, as CodeDeploy runs them for Lambda: an alias's traffic moved to a new
version step by step, with hooks before and after and automatic rollback.

A deployment runs as a task of the process that owns the admin listener. Its lifecycle:
`BeforeAllowTraffic` (the pre-traffic hook, if any), `AllowTraffic` (the strategy's steps: the
alias keeps the old version and sends each step's weight to the new one; alarms are checked
over each step), then the alias moves to the new version whole (weights cleared) and
`AfterAllowTraffic` runs the post-traffic hook. A failing hook, an alarm or a stop request rolls
the alias back to the old version with its weights cleared, and the deployment ends `Failed`
(or `Stopped`) with the reason.

Alarms stand in for CloudWatch's: over the current step, the new version's error rate
(once it had `min_invocations`), its throttles and its p99 duration (idem). Every change of
state is written to `STATE_DIR/deployments/ID.json` before it is acted on, so an edge that
restarts resumes each deployment where it was (the step's clock keeps running while the edge
is down) or, when it cannot (one of its versions is gone), rolls it back: an alias is never
left half-shifted without a deployment that owns it. An alias someone else moved or deleted
meanwhile ends the deployment `Failed` and stays as they left it.

The record and its rules (statuses, counts, thresholds) are in `deploy_record`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

from edge.lambda_service.deploy_record import (
    AFTER_ALLOW_TRAFFIC,
    ALLOW_TRAFFIC,
    BEFORE_ALLOW_TRAFFIC,
    END,
    FAILED,
    IN_PROGRESS,
    OUTCOMES,
    STOPPED,
    SUCCEEDED,
    Deployment,
    DeploymentRequest,
    Sample,
    Sampler,
    alarm_reason,
    iso_time,
)
from edge.lambda_service.store import StateUnavailable, replace_file
from edge.lambda_service.strategies import Step, StrategyInvalid, parse_strategy

logger = logging.getLogger("edge.deploy")

# How often the alarms are read during a step (real seconds), at most and at least.
MAX_CHECK_SECONDS = 1.0
MIN_CHECK_SECONDS = 0.05
# How often a deployment tries an alias change again while the cluster's Redis is away.
RETRY_SECONDS = 1.0
# How many ended deployments `list` keeps (the files stay on disk).
KEEP_ENDED = 100

_ID_ALPHABET = string.ascii_uppercase + string.digits


# -- what a deployment needs of the rest of the edge -------------------------------------------


class VersionLike(Protocol):
    @property
    def number(self) -> str: ...


class AliasLike(Protocol):
    @property
    def version(self) -> str: ...
    @property
    def additional_weights(self) -> Mapping[str, float]: ...


class FunctionStore(Protocol):
    """Versions and aliases (edge.lambda_service.store.FunctionStore)."""

    def versions(self, function: str) -> Collection[VersionLike]: ...
    def alias(self, function: str, name: str) -> AliasLike: ...
    def update_alias(
        self,
        function: str,
        name: str,
        *,
        version: str | None = None,
        additional_weights: Mapping[str, float] | None = None,
        description: str | None = None,
    ) -> AliasLike: ...


# Runs hook function NAME with PAYLOAD; returns its result; raises on a function error.
HookRunner = Callable[[str, bytes], Awaitable[bytes]]


class DeploymentOwners(Protocol):
    """Which node runs each deployment of a cluster (edge.cluster.state.SharedState): a
    claim is a lease the owner renews; a node that dies lets it expire, and another node's
    deployer takes the deployment over. `publish` stores a record cluster-wide."""

    node_id: str

    def claim(self, deployment_id: str, seconds: float) -> bool: ...
    def publish(self, document: str, data: bytes) -> None: ...
    def document(self, document: str) -> bytes | None: ...
    def request_stop(self, deployment_id: str) -> None: ...
    def stop_requested(self, deployment_id: str) -> bool: ...


class DeploymentRefused(Exception):
    """A deployment that cannot start (or be stopped): `status` is the HTTP status to answer
    with (400 invalid, 404 unknown, 409 conflict), `code` a short name for it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Rollback(Exception):
    """The deployment ends: its alias goes back to the old version, unless `leave_alias`
    (someone else moved it: theirs is the last word)."""

    def __init__(self, reason: str, status: str = FAILED, *, leave_alias: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.leave_alias = leave_alias


# -- the deployer ------------------------------------------------------------------------------


class Deployer:
    """Starts, runs, resumes and stops deployments; one per alias at a time.

    `run_hook` invokes a hook function; `sample` reads a version's counts; `functions` are the
    names a hook may name (None: not checked before the hook runs); `state_dir` is where
    deployments are kept (`STATE_DIR/deployments/`)."""

    def __init__(
        self,
        store: FunctionStore,
        *,
        run_hook: HookRunner,
        sample: Sampler,
        state_dir: Path,
        functions: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
        owners: DeploymentOwners | None = None,
        claim_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._owners = owners
        self._claim_seconds = claim_seconds
        # Deployments this deployer runs (the others are another node's, read from the
        # records the cluster shares into `directory`).
        self._owned: set[str] = set()
        self._unpublished: set[str] = set()
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._directory_stamp: tuple[int, int] | None = None
        self._run_hook = run_hook
        self._sample = sample
        self._functions = functions
        self._clock = clock
        self.directory = state_dir / "deployments"
        self._deployments: dict[str, Deployment] = {}
        self._stops: dict[str, asyncio.Event] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    # -- reading -------------------------------------------------------------------------------

    def get(self, deployment_id: str) -> Deployment:
        self._read_others()
        found = self._deployments.get(deployment_id)
        if found is None:
            raise DeploymentRefused(404, "DeploymentNotFound", f"no deployment {deployment_id}")
        return found

    def list(self, function: str | None = None, alias: str | None = None) -> list[Deployment]:
        """Deployments, newest first."""
        self._read_others()
        found = [
            d
            for d in self._deployments.values()
            if (function is None or d.function == function) and (alias is None or d.alias == alias)
        ]
        return sorted(found, key=lambda d: d.created_at, reverse=True)

    def document(self, deployment: Deployment) -> dict[str, Any]:
        """`deployment` as the admin API shows it, now."""
        return deployment.to_api(self._clock())

    def weights(self) -> dict[tuple[str, str], float]:
        """The new version's weight per (function, alias), of each alias's latest deployment."""
        found: dict[tuple[str, str], float] = {}
        for d in sorted(self._deployments.values(), key=lambda d: d.created_at):
            found[(d.function, d.alias)] = d.weight
        return found

    # -- running -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run deployments while entered: those persisted in progress resume (or roll back)
        first. On exit their tasks are cancelled and their records stay in progress, to be
        resumed by the next start."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                self._load()
                for deployment in self.list():
                    if deployment.status == IN_PROGRESS and self._claim(deployment):
                        current = self._adopt(deployment)
                        if current.status == IN_PROGRESS:
                            self._resume(current)
                if self._owners is not None:
                    claims = tasks.create_task(self._keep_claims(), name="deployment claims")
                    self._running.add(claims)
                    claims.add_done_callback(self._running.discard)
                yield
            finally:
                self._tasks = None
                for task in list(self._running):
                    task.cancel()

    def start(self, request: DeploymentRequest) -> Deployment:
        """Check `request` and start its deployment (DeploymentRefused when it cannot)."""
        if self._tasks is None:
            raise DeploymentRefused(503, "NotRunning", "the deployer is not running")
        self._read_others()
        try:
            strategy = parse_strategy(request.strategy)
        except StrategyInvalid as exc:
            raise DeploymentRefused(400, "InvalidStrategy", str(exc)) from None
        if not request.time_scale > 0:
            raise DeploymentRefused(400, "InvalidParameter", "time_scale must be above 0")
        for hook in (request.pre_traffic_hook, request.post_traffic_hook):
            if hook is not None and self._functions is not None and hook not in self._functions:
                raise DeploymentRefused(404, "FunctionNotFound", f"no hook function {hook!r}")
        active = self._active(request.function, request.alias)
        if active is not None:
            raise DeploymentRefused(
                409,
                "DeploymentInProgress",
                f"deployment {active.id} is moving {request.function}:{request.alias} "
                f"(stop it first: POST /deployments/{active.id}/stop)",
            )
        try:
            alias = self._store.alias(request.function, request.alias)
        except LookupError:
            raise DeploymentRefused(
                404, "AliasNotFound", f"no alias {request.function}:{request.alias}"
            ) from None
        published = {v.number for v in self._store.versions(request.function)}
        if request.version not in published:
            raise DeploymentRefused(
                404,
                "VersionNotFound",
                f"{request.function} has no published version {request.version!r}"
                + (f" (published: {', '.join(sorted(published, key=int))})" if published else ""),
            )
        if alias.version not in published:
            raise DeploymentRefused(
                400,
                "InvalidAlias",
                f"{request.function}:{request.alias} points to {alias.version}, not a "
                "published version: traffic can only shift between published versions",
            )
        if alias.version == request.version:
            raise DeploymentRefused(
                400,
                "AlreadyDeployed",
                f"{request.function}:{request.alias} already points to version {request.version}",
            )
        if alias.additional_weights:
            raise DeploymentRefused(
                409,
                "AliasRouting",
                f"{request.function}:{request.alias} already routes traffic to "
                f"{', '.join(alias.additional_weights)}: clear its routing first",
            )
        deployment = Deployment(
            id=self._new_id(),
            function=request.function,
            alias=request.alias,
            from_version=alias.version,
            to_version=request.version,
            strategy=strategy.name,
            thresholds=request.thresholds,
            time_scale=request.time_scale,
            pre_traffic_hook=request.pre_traffic_hook,
            post_traffic_hook=request.post_traffic_hook,
            created_at=self._clock(),
        )
        self._note(
            deployment,
            f"created: {request.function}:{request.alias} from version {alias.version} to "
            f"{request.version}, {strategy.name}",
        )
        self._deployments[deployment.id] = deployment
        if not self._claim(deployment):
            raise DeploymentRefused(
                503, "ClusterUnavailable", "the deployment could not be claimed"
            )
        self._adopt(deployment)
        self._save(deployment)
        self._spawn(deployment)
        return deployment

    async def stop(self, deployment_id: str, *, wait_seconds: float = 10.0) -> Deployment:
        """Stop a deployment in progress: its alias goes back to the old version. Returns once
        it ended (or after `wait_seconds`)."""
        deployment = self.get(deployment_id)
        if deployment.status != IN_PROGRESS:
            raise DeploymentRefused(
                409, "DeploymentEnded", f"deployment {deployment_id} is {deployment.status}"
            )
        if deployment_id not in self._stops and self._owners is not None:
            # Another node runs it: ask it through the cluster, and wait for the record's end.
            try:
                await asyncio.to_thread(self._owners.request_stop, deployment_id)
            except OSError as exc:
                raise DeploymentRefused(
                    503,
                    "ClusterUnavailable",
                    f"deployment {deployment_id} runs on node {deployment.node or '?'}, which "
                    f"cannot be asked to stop it now: {exc}",
                ) from None
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                deployment = self.get(deployment_id)
                if deployment.status != IN_PROGRESS:
                    break
            return deployment
        self._stops[deployment_id].set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done[deployment_id].wait(), wait_seconds)
        return deployment

    def _active(self, function: str, alias: str) -> Deployment | None:
        for d in self._deployments.values():
            if d.function == function and d.alias == alias and d.status == IN_PROGRESS:
                return d
        return None

    def _new_id(self) -> str:
        # CodeDeploy's deployment ids: `d-` and nine characters.
        while True:
            found = "d-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))
            if found not in self._deployments:
                return found

    def _spawn(self, deployment: Deployment) -> None:
        assert self._tasks is not None
        self._stops[deployment.id] = asyncio.Event()
        self._done[deployment.id] = asyncio.Event()
        task = self._tasks.create_task(self._run(deployment), name=f"deployment {deployment.id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        self._drivers[deployment.id] = task

    # -- owners (a cluster) ----------------------------------------------------------------------

    def _claim(self, deployment: Deployment) -> bool:
        """Make `deployment` this deployer's (True), unless another live node runs it. Without a
        cluster every deployment is this deployer's."""
        if self._owners is None:
            self._owned.add(deployment.id)
            return True
        try:
            claimed = self._owners.claim(deployment.id, self._claim_seconds)
        except OSError as exc:  # Redis away: what is not ours stays not ours
            logger.warning("deployment %s: could not be claimed: %s", deployment.id, exc)
            return deployment.id in self._owned
        if claimed:
            self._owned.add(deployment.id)
        return claimed

    async def _keep_claims(self) -> None:
        """Renew the claims of the deployments running here, publish records Redis missed,
        and take over those whose node stopped renewing."""
        assert self._owners is not None
        while True:
            await asyncio.sleep(self._claim_seconds / 3)
            for d in list(self._deployments.values()):
                if d.status != IN_PROGRESS:
                    continue
                if d.id in self._stops:
                    if not await asyncio.to_thread(self._claim, d):
                        # Another node took it (this one was cut off from Redis for longer
                        # than the lease): it drives the deployment now, this one lets go.
                        logger.warning(
                            "deployment %s: claimed by another node; no longer run here", d.id
                        )
                        self._let_go(d.id)
                    continue
                if await asyncio.to_thread(self._claim, d):
                    current = await asyncio.to_thread(self._adopt, d)
                    if current.status == IN_PROGRESS:
                        self._resume(current, taken_over=True)
            for deployment_id in list(self._unpublished):
                found = self._deployments.get(deployment_id)
                if found is not None:
                    self._save(found)
            await asyncio.to_thread(self._read_others)

    async def _stop_asked_elsewhere(self, d: Deployment) -> bool:
        """Whether another node's admin listener asked the cluster to stop `d`."""
        if self._owners is None:
            return False
        try:
            return await asyncio.to_thread(self._owners.stop_requested, d.id)
        except OSError:
            return False

    def _let_go(self, deployment_id: str) -> None:
        driver = self._drivers.pop(deployment_id, None)
        if driver is not None:
            driver.cancel()
        self._stops.pop(deployment_id, None)
        self._owned.discard(deployment_id)
        self._directory_stamp = None  # read its record as the new owner writes it

    def _adopt(self, d: Deployment) -> Deployment:
        """`d`, just claimed, as this deployer runs it: in a cluster, the cluster's own copy of
        its record (this node's replica may lag), marked as run by this node."""
        if self._owners is None:
            return d
        try:
            data = self._owners.document(f"deployments/{d.id}.json")
            current = Deployment.from_json(orjson.loads(data)) if data else d
        except (OSError, ValueError, TypeError, KeyError) as exc:
            logger.warning("deployment %s: the cluster's record is unreadable: %s", d.id, exc)
            current = d
        if current.node and current.node != self._owners.node_id:
            self._note(current, f"taken over from node {current.node}")
        current.node = self._owners.node_id
        self._deployments[d.id] = current
        return current

    def _read_others(self) -> None:
        """Read the records other nodes run (the cluster copies them into `directory`),
        when the directory changed."""
        if self._owners is None:
            return
        try:
            info = self.directory.stat()
        except OSError:
            return
        stamp = (info.st_mtime_ns, info.st_ino)
        if stamp == self._directory_stamp:
            return
        self._directory_stamp = stamp
        for path in self.directory.glob("d-*.json"):
            deployment_id = path.stem
            if deployment_id in self._owned:
                continue
            try:
                self._deployments[deployment_id] = Deployment.from_json(
                    orjson.loads(path.read_bytes())
                )
            except (OSError, ValueError, TypeError, KeyError) as exc:
                logger.warning("deployment record %s is unreadable, skipped: %s", path, exc)

    def _resume(self, deployment: Deployment, *, taken_over: bool = False) -> None:
        """Continue a deployment the edge was running when it stopped, or roll it back."""
        try:
            self._check_resumable(deployment)
        except _Rollback as cannot:
            reason = f"cannot resume after a restart: {cannot.reason}"
            if cannot.leave_alias:
                self._end(deployment, FAILED, reason)
            else:
                self._roll_back(deployment, reason, FAILED)
            return
        self._note(
            deployment,
            f"resumed {'by node ' + deployment.node if taken_over else 'after a restart'} "
            f"({deployment.phase})",
        )
        self._save(deployment)
        self._spawn(deployment)

    def _check_resumable(self, d: Deployment) -> None:
        """_Rollback when `d` cannot continue from its record."""
        try:
            parse_strategy(d.strategy)
        except StrategyInvalid as exc:
            raise _Rollback(str(exc)) from None
        published = {v.number for v in self._store.versions(d.function)}
        for version in (d.from_version, d.to_version):
            if version not in published:
                raise _Rollback(f"version {version} of {d.function} no longer exists")
        # The edge may have stopped between promoting and recording it: either is fine then.
        expected = {d.from_version}
        if d.phase == AFTER_ALLOW_TRAFFIC or (d.phase == ALLOW_TRAFFIC and d.step >= len(d.steps)):
            expected = {d.from_version, d.to_version}
        if d.phase == AFTER_ALLOW_TRAFFIC:
            expected = {d.to_version}
        self._check_alias(d, expected)

    def _check_alias(self, d: Deployment, expected: Collection[str]) -> None:
        """_Rollback (leaving the alias) when someone else moved or deleted it."""
        try:
            alias = self._store.alias(d.function, d.alias)
        except LookupError:
            raise _Rollback(
                f"the alias {d.function}:{d.alias} was deleted", leave_alias=True
            ) from None
        if alias.version not in expected:
            raise _Rollback(
                f"{d.function}:{d.alias} was moved to version {alias.version} outside the "
                "deployment; left there",
                leave_alias=True,
            )

    async def _run(self, d: Deployment) -> None:
        try:
            await self._drive(d)
        except Exception:
            # Not even its end could be recorded (the disk?): log it, and never take the
            # admin listener down with it.
            logger.exception("deployment %s: could not record its end", d.id)
        finally:
            self._done[d.id].set()

    async def _drive(self, d: Deployment) -> None:
        """Take `d` from its recorded phase to its end."""
        try:
            if d.phase == BEFORE_ALLOW_TRAFFIC:
                if d.pre_traffic_hook is not None:
                    await self._hook(d, d.pre_traffic_hook, "pre-traffic")
                self._begin_step(d, 0)
            steps = d.steps
            while d.phase == ALLOW_TRAFFIC and d.step < len(steps):
                await self._stored(d, functools.partial(self._shift, d, steps[d.step].weight))
                await self._hold(d, steps[d.step])
                self._begin_step(d, d.step + 1)
            if d.phase == ALLOW_TRAFFIC:
                await self._stored(d, functools.partial(self._promote, d))
            if d.phase == AFTER_ALLOW_TRAFFIC:
                if d.post_traffic_hook is not None:
                    await self._hook(d, d.post_traffic_hook, "post-traffic")
                self._end(d, SUCCEEDED, None)
        except _Rollback as rollback:
            if rollback.leave_alias:
                self._end(d, rollback.status, rollback.reason)
            else:
                await self._roll_back_when_stored(d, rollback.reason, rollback.status)
        except asyncio.CancelledError:
            # The edge is stopping: the record stays in progress and resumes on restart.
            raise
        except Exception as exc:
            logger.exception("deployment %s failed", d.id)
            self._roll_back(d, f"internal error: {exc!r}", FAILED)

    async def _stored(
        self, d: Deployment, change: Callable[[], None], *, stoppable: bool = True
    ) -> None:
        """Make an alias change; while the cluster's Redis refuses changes, wait for it
        (checking every second) instead of failing the deployment. A stop ends the wait
        (unless not `stoppable`: the rollback itself)."""
        warned = False
        while True:
            try:
                change()
                if warned:
                    self._note(d, "the cluster's Redis is back: continuing")
                return
            except StateUnavailable as exc:
                if not warned:
                    logger.warning("deployment %s waits for the cluster's Redis: %s", d.id, exc)
                    self._note(d, "waiting for the cluster's Redis to change the alias")
                    warned = True
            stop = self._stops.get(d.id) if stoppable else None
            if stop is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_SECONDS)
                if stop.is_set():
                    raise _Rollback("stopped through the admin API", STOPPED)
            else:
                await asyncio.sleep(RETRY_SECONDS)

    def _begin_step(self, d: Deployment, index: int) -> None:
        d.phase = ALLOW_TRAFFIC
        d.step = index
        d.step_started_at = self._clock()
        steps = d.steps
        d.next_step_at = (
            d.step_started_at + steps[index].hold_seconds * d.time_scale
            if index < len(steps)
            else None
        )
        self._save(d)

    def _shift(self, d: Deployment, weight: float) -> None:
        self._check_alias(d, {d.from_version})
        alias = self._store.alias(d.function, d.alias)
        if dict(alias.additional_weights) != {d.to_version: weight}:
            self._store.update_alias(d.function, d.alias, additional_weights={d.to_version: weight})
            self._note(d, f"step {d.step + 1}: {_percent(weight)} to version {d.to_version}")
        d.weight = weight
        self._save(d)

    async def _hold(self, d: Deployment, step: Step) -> None:
        """Keep the step's weight for its (scaled) interval, checking the alarms."""
        assert d.step_started_at is not None
        end = d.step_started_at + step.hold_seconds * d.time_scale
        interval = min(MAX_CHECK_SECONDS, max(MIN_CHECK_SECONDS, (end - self._clock()) / 20))
        baselines = {v: self._sample(d.function, v) for v in (d.from_version, d.to_version)}
        stop = self._stops[d.id]
        while True:
            self._check_alias(d, {d.from_version})
            self._check(d, baselines)
            remaining = end - self._clock()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(interval, remaining))
            if not stop.is_set() and await self._stop_asked_elsewhere(d):
                stop.set()
            if stop.is_set():
                raise _Rollback("stopped through the admin API", STOPPED)

    def _check(self, d: Deployment, baselines: Mapping[str, Sample]) -> None:
        """Update the step's counts and raise _Rollback when an alarm fires."""
        counts = {v: self._sample(d.function, v).since(b) for v, b in baselines.items()}
        for version, sample in counts.items():
            p99 = sample.quantile_seconds(0.99)
            d.current[version] = {
                "invocations": int(sample.invocations),
                "errors": int(sample.errors),
                "throttles": int(sample.throttles),
                "p99_ms": None if p99 is None else round(p99 * 1000, 1),
            }
        alarm = alarm_reason(counts[d.to_version], d.thresholds)
        if alarm is not None:
            raise _Rollback(f"alarm on version {d.to_version}, step {d.step + 1}: {alarm}")

    def _promote(self, d: Deployment) -> None:
        self._store.update_alias(d.function, d.alias, version=d.to_version, additional_weights={})
        d.weight = 1.0
        d.phase = AFTER_ALLOW_TRAFFIC
        d.next_step_at = None
        self._note(d, f"all traffic to version {d.to_version}")
        self._save(d)

    async def _hook(self, d: Deployment, function: str, kind: str) -> None:
        """Run a lifecycle hook; a function error, an invocation that could not run or a
        result whose `status` is `Failed` fails the deployment."""
        payload = orjson.dumps(
            {
                "DeploymentId": d.id,
                "LifecycleEventHookExecutionId": f"{d.id}-{d.phase}-" + secrets.token_urlsafe(12),
            }
        )
        self._note(d, f"{kind} hook {function} invoked")
        self._save(d)
        stop = self._stops[d.id]

        async def attempt() -> bytes | Exception:
            try:
                return await self._run_hook(function, payload)
            except Exception as exc:  # noqa: BLE001 - however a hook fails, it fails the deployment
                return exc

        async with asyncio.TaskGroup() as group:
            invocation = group.create_task(attempt())
            stopping = group.create_task(stop.wait())
            await asyncio.wait({invocation, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not invocation.done():
                invocation.cancel()
        if stop.is_set():
            raise _Rollback("stopped through the admin API", STOPPED)
        result = invocation.result()
        if isinstance(result, Exception):
            raise _Rollback(f"{kind} hook {function} failed: {_describe(result)}")
        status = _hook_status(result)
        if status is not None and status.lower() == "failed":
            raise _Rollback(f'{kind} hook {function} returned "status": "{status}"')
        self._note(d, f"{kind} hook {function} succeeded")

    async def _roll_back_when_stored(self, d: Deployment, reason: str, status: str) -> None:
        """`_roll_back`, waiting for the cluster's Redis while it refuses the change (an alias
        is not left half-shifted because Redis was away at that moment)."""
        try:
            await self._stored(d, functools.partial(self._restore_alias, d), stoppable=False)
        except (LookupError, ValueError, OSError) as exc:
            self._rolled_back(d, reason, status, exc)
        else:
            self._rolled_back(d, reason, status, None)

    def _roll_back(self, d: Deployment, reason: str, status: str) -> None:
        try:
            self._restore_alias(d)
        except Exception as exc:  # noqa: BLE001 - logged and recorded by _rolled_back
            self._rolled_back(d, reason, status, exc)
        else:
            self._rolled_back(d, reason, status, None)

    def _restore_alias(self, d: Deployment) -> None:
        self._store.update_alias(d.function, d.alias, version=d.from_version, additional_weights={})

    def _rolled_back(
        self, d: Deployment, reason: str, status: str, error: BaseException | None
    ) -> None:
        if error is None:
            self._note(d, f"rolled back: all traffic to version {d.from_version}")
        else:
            logger.error("deployment %s: the rollback failed", d.id, exc_info=error)
            reason += f"; the rollback failed: {error}"
        d.weight = 0.0
        self._end(d, status, reason)

    def _end(self, d: Deployment, status: str, reason: str | None) -> None:
        d.status = status
        d.phase = END
        d.reason = reason
        d.next_step_at = None
        d.ended_at = self._clock()
        self.outcomes[status] += 1
        self._note(d, status + (f": {reason}" if reason else ""))
        # The claim is left to expire (not given back): by then every node has read the end,
        # so none takes over a deployment it still believes in progress.
        self._save(d)
        log = logger.info if status == SUCCEEDED else logger.warning
        log("deployment %s %s%s", d.id, status, f": {reason}" if reason else "")

    def _note(self, d: Deployment, message: str) -> None:
        d.events.append({"time": iso_time(self._clock()), "message": message})

    # -- persistence ---------------------------------------------------------------------------

    def _save(self, d: Deployment) -> None:
        data = orjson.dumps(d.to_json(), option=orjson.OPT_INDENT_2)
        if self._owners is not None:
            # Best effort: a record Redis missed is sent again by `_keep_claims`.
            try:
                self._owners.publish(f"deployments/{d.id}.json", data)
                self._unpublished.discard(d.id)
            except OSError as exc:
                if d.id not in self._unpublished:
                    logger.warning("deployment %s: record not shared yet: %s", d.id, exc)
                self._unpublished.add(d.id)
        replace_file(self.directory / f"{d.id}.json", data)

    def _load(self) -> None:
        if not self.directory.is_dir():
            return
        loaded: list[Deployment] = []
        for path in self.directory.glob("d-*.json"):
            try:
                loaded.append(Deployment.from_json(orjson.loads(path.read_bytes())))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                logger.warning("deployment record %s is unreadable, skipped: %s", path, exc)
        loaded.sort(key=lambda d: d.created_at, reverse=True)
        ended = [d for d in loaded if d.status != IN_PROGRESS]
        forgotten = {d.id for d in ended[KEEP_ENDED:]}  # the oldest
        for d in loaded:
            if d.id not in forgotten:
                self._deployments[d.id] = d
                if d.status != IN_PROGRESS and self._owners is None:
                    self._owned.add(d.id)


def _percent(weight: float) -> str:
    return f"{weight * 100:g} %"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _hook_status(result: bytes) -> str | None:
    try:
        document = orjson.loads(result)
    except orjson.JSONDecodeError:
        return None
    if isinstance(document, dict):
        status = document.get("status")
        return status if isinstance(status, str) else None
    return None


def unfinished_deployments(state_dir: Path) -> list[str]:
    """Ids of the deployments recorded in progress under `state_dir` (for a warning when the
    edge starts without the admin listener that would resume them)."""
    found: list[str] = []
    for path in sorted((state_dir / "deployments").glob("d-*.json")):
        try:
            document = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(document, dict) and document.get("status") == IN_PROGRESS:
            found.append(
                f"{document.get('id')} ({document.get('function')}:{document.get('alias')})"
            )
    return found

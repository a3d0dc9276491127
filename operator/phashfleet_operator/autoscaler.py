"""The operator's autoscaler: worker replicas from the messages waiting in the queue, in the peering leader only.

It counts what KEDA's Redis trigger counts (the Dramatiq queue's length), so `autoscaling.batchesPerWorker`
means the same in both modes: queued batches per worker. kopf pauses a peer that a live peer outranks
(or ties), but a thread of ours runs on regardless, so every step first asks `Leadership.leads`, which
applies kopf's rule to the KopfPeering object kopf keeps.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from phashfleet import metrics
from phashfleet.state import keys
from phashfleet.state.store import SharedJobStore
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.kube import WorkerScale
from phashfleet_operator.reconcile import desired_replicas

log = logging.getLogger("phashfleet.operator")
#: Seconds a read of the peering object is reused (kopf's keepalives are much rarer).
PEERS_TTL = 2.0


def operator_identity() -> str:
    """This replica's name among kopf peers (the pod's name when the chart sets POD_ID, as kopf reads it)."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


def leads(peers: Mapping[str, Mapping[str, Any]], identity: str, priority: int, now: dt.datetime) -> bool:
    """kopf's rule: an operator acts unless another live peer has a higher or the same priority.

    `peers` is the peering object's status: identity -> {priority, lifetime (s), lastseen (ISO time)}.
    """
    for other, info in peers.items():
        if other == identity or not isinstance(info, Mapping):
            continue
        lastseen = dt.datetime.fromisoformat(str(info.get("lastseen")))
        if lastseen.tzinfo is None:
            lastseen = lastseen.replace(tzinfo=dt.UTC)
        alive = lastseen + dt.timedelta(seconds=int(info.get("lifetime", 60))) > now
        if alive and int(info.get("priority", 0)) >= priority:
            return False
    return True


@dataclass
class Leadership:
    """Whether this replica leads: always when standalone; peered, by kopf's rule on the peers it keeps."""

    identity: str
    priority: int
    #: Reads the peering object's status (identity -> peer); None when standalone.
    read_peers: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None
    _peers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    _read_at: float = field(default=float("-inf"), repr=False)

    def leads(self) -> bool:
        """True while this replica may scale; an unreadable peering object means not (two scalers are worse)."""
        if self.read_peers is None:
            return True
        if time.monotonic() - self._read_at >= PEERS_TTL:
            try:
                self._peers = self.read_peers()
            except Exception as exc:  # noqa: BLE001 - unknown leadership: hold off this second, say why
                log.warning("cannot read the operator peers, not scaling for now: %s", exc)
                return False
            self._read_at = time.monotonic()
        return leads(self._peers, self.identity, self.priority, dt.datetime.now(dt.UTC))


@dataclass
class Autoscaler:
    """Sets the worker Deployment's replicas from the queue, between minReplicas and maxReplicas."""

    scale: WorkerScale
    store: SharedJobStore
    config: OperatorConfig
    leadership: Leadership
    #: Batches still to hash across every job (queued, held by workers or not yet listed): JobEngine.backlog.
    work_left: Callable[[], int]
    idle_since: float | None = None
    leading: bool | None = None

    def step(self) -> int | None:
        """One step, about once a second: the replicas it set, None when it did nothing (not leading, or no
        Deployment)."""
        leading = self.leadership.leads()
        if leading != self.leading:
            log.info("this operator %s the autoscaler", "runs" if leading else "leaves to the peering leader")
            self.leading, self.idle_since = leading, None
        if not leading:
            return None
        current = self.scale.current()
        if current is None:
            return None
        spec_replicas, ready = current
        queued = self.store.queue_length()
        metrics.WORKER_REPLICAS_CURRENT.set(ready)
        metrics.QUEUE_BACKLOG.labels(keys.queue()).set(queued)
        decision = desired_replicas(
            queued,
            working=queued == 0 and self.work_left() > 0,
            current=spec_replicas,
            per_worker=self.config.batches_per_worker,
            minimum=self.config.min_replicas,
            maximum=self.config.max_replicas,
            idle_since=self.idle_since,
            now=time.monotonic(),
            cooldown=self.config.idle_cooldown_seconds,
        )
        self.idle_since = decision.idle_since
        metrics.WORKER_REPLICAS_DESIRED.set(decision.replicas)
        if decision.replicas != spec_replicas:
            log.info("scaling the workers from %d to %d (%d batches queued)", spec_replicas, decision.replicas, queued)
            self.scale.set(decision.replicas)
        return decision.replicas

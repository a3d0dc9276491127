"""What the operator's handlers work with, built once by `main.run` and handed to kopf as its memo.

kopf passes it to every handler as `memo` (a shallow copy per PhashJob, so all share one engine):
`handlers.tick` -> `memo.engine` (a JobEngine) -> `JobEngine.tick`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from phashfleet.state.store import SharedJobStore
from phashfleet_operator.autoscaler import Autoscaler
from phashfleet_operator.cadence import TickCadence
from phashfleet_operator.config import OperatorConfig
from phashfleet_operator.engine import JobEngine
from phashfleet_operator.limits import NamespaceLimits


@dataclass
class Runtime:
    """The store, the job engine, the autoscaler (None unless autoscaling=operator), the namespace limits
    and the settings."""

    store: SharedJobStore
    engine: JobEngine
    config: OperatorConfig
    #: The Redis connection the store uses, for the liveness probe and the Redis watch.
    redis: redis.Redis
    autoscaler: Autoscaler | None = None
    #: Which jobs wait for their namespace's limit on running jobs.
    limits: NamespaceLimits = field(default_factory=lambda: NamespaceLimits(0))
    #: The operator serves one namespace (its RBAC cannot list namespaces or CRDs cluster-wide).
    namespaced: bool = False
    #: Per PhashCronJob (kopf copies the memo per object): the (reason, message) of the last Event of its
    #: timer, so a decision re-made every tick is said once.
    cron_said: tuple[str, str] | None = None
    #: Per PhashJob (kopf's copy of the memo): when its timer runs a full tick.
    cadence: TickCadence | None = None

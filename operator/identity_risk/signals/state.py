"""What the engine remembers about each ServiceAccount: its learned baseline and recent use.

Behavioural detection compares a request with what the identity normally does, so each identity
carries a baseline learned during a warm-up period (``BaselineConfig.warmup`` and at least
``warmup_min_requests`` requests): the operations it performs (verb x API group/resource x
namespace), the user-agent families it uses, the networks it calls from and its per-minute request
rate. Alongside: first/last seen (for dormancy), the credentials it presented and from where (for
token replay and impossible travel), and a short window of forbidden requests (reconnaissance).

After warm-up the baseline keeps absorbing ordinary new operations (each is flagged once) but never
user agents, external networks or sensitive operations, so a compromise keeps being reported for
as long as it goes on rather than becoming "normal" after one request.

Memory per identity is bounded, whatever the traffic (defaults in brackets)::

    operations                ≤ max_operations                 [512]
    user-agent families       ≤ max_user_agents                [16]   (each ≤ 48 characters)
    networks                  ≤ max_networks                   [32]
    credentials               ≤ max_credentials                [32]   (least recently seen evicted)
      locations per credential ≤ max_locations_per_credential  [4]    (oldest evicted)
    rate and forbid windows   a few integers

An operation key is at most ~300 characters (names are length-limited by Kubernetes), so with the
defaults an identity's state stays well under 200 KB in memory and ~40 KB as JSON: small enough to
persist in its ``WorkloadIdentityRisk`` status. Values beyond a cap are not remembered; they are
counted in ``overflow`` so the loss is visible.

The state is the only mutable object of the core: updating it in place is what lets the loop run
at 100,000 events/s. Detectors only read it; ``IdentityState.learn`` is the one writer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_risk.domain import Identity
from identity_risk.ingest.record import AuditRecord

STATE_FORMAT_VERSION = 1

HUMAN_USER_AGENT_FAMILIES = frozenset(
    {
        "kubectl", "curl", "wget", "python-requests", "python-urllib", "python-httpx", "httpie",
        "postmanruntime", "insomnia", "k9s", "lens", "mozilla", "openlens", "kubectx", "kubens",
        "powershell",
    }
)  # fmt: skip
"""Clients people drive by hand; a workload's own code rarely presents itself as one of them."""

_MAX_FAMILY_LENGTH = 48


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineConfig:
    """How baselines are learned and how much of them is kept."""

    warmup: timedelta = timedelta(hours=24)
    warmup_min_requests: int = 50
    rate_window: timedelta = timedelta(minutes=1)
    rate_factor: float = 4.0
    rate_floor: int = 60
    max_operations: int = 512
    max_user_agents: int = 16
    max_networks: int = 32
    max_credentials: int = 32
    max_locations_per_credential: int = 4

    def __post_init__(self) -> None:
        for name in ("max_operations", "max_user_agents", "max_networks", "max_credentials",
                     "max_locations_per_credential", "warmup_min_requests"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"BaselineConfig.{name} must not be negative")
        if self.rate_window <= timedelta(0):
            raise ValueError("BaselineConfig.rate_window must be positive")


@functools.lru_cache(maxsize=4096)
def user_agent_family(user_agent: str) -> str:
    """The client family of a user agent: ``kubectl/v1.31.0 (linux/amd64) …`` → ``kubectl``."""
    head = user_agent.strip().split(" ", 1)[0].split("/", 1)[0].lower()
    return head[:_MAX_FAMILY_LENGTH] or "unknown"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _epoch(value: Any, field: str) -> float:
    if not isinstance(value, str):
        raise ValueError(f"identity state field {field!r} must be an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"identity state field {field!r} is not a time: {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"identity state field {field!r} has no timezone: {value!r}")
    return parsed.timestamp()


def _last_use(seen: Mapping[str, tuple[str, float]]) -> float:
    return max((t for _, t in seen.values()), default=0.0)


def _opt_epoch(value: Any, field: str) -> float | None:
    return None if value is None else _epoch(value, field)


class IdentityState:
    """One ServiceAccount's baseline and recent use. Create with ``IdentityState.new``."""

    __slots__ = (
        "created_at",
        "credentials",
        "first_seen",
        "forbid_bucket",
        "forbid_count",
        "identity",
        "last_seen",
        "networks",
        "operations",
        "overflow",
        "rate_bucket",
        "rate_count",
        "rate_peak",
        "requests",
        "user_agents",
        "warm",
    )

    def __init__(self, *, identity: Identity, created_at: float) -> None:
        self.identity = identity
        self.created_at = created_at
        self.first_seen: float | None = None
        self.last_seen: float | None = None
        self.requests = 0
        self.warm = False
        self.operations: set[str] = set()
        self.user_agents: set[str] = set()
        self.networks: set[str] = set()
        # credential-id → network → (last IP, last seen epoch)
        self.credentials: dict[str, dict[str, tuple[str, float]]] = {}
        self.rate_bucket = -1
        self.rate_count = 0
        self.rate_peak = 0
        self.forbid_bucket = -1
        self.forbid_count = 0
        self.overflow = 0

    @classmethod
    def new(cls, identity: Identity, *, now: datetime) -> IdentityState:
        """An empty state for an identity first tracked at ``now``."""
        return cls(identity=identity, created_at=now.timestamp())

    # --- questions detectors ask -----------------------------------------------------------

    def is_warm(self, epoch: float, config: BaselineConfig) -> bool:
        """Whether the baseline is established at ``epoch`` (warm-up over, enough requests)."""
        if self.warm:
            return True
        start = self.first_seen if self.first_seen is not None else epoch
        return (
            epoch - start >= config.warmup.total_seconds()
            and self.requests >= config.warmup_min_requests
        )

    def rate_bucket_of(self, epoch: float, config: BaselineConfig) -> int:
        return math.floor(epoch / config.rate_window.total_seconds())

    def count_in_rate_bucket(self, epoch: float, config: BaselineConfig) -> int:
        """How many requests the current rate window will hold once this one is counted."""
        bucket = self.rate_bucket_of(epoch, config)
        return self.rate_count + 1 if bucket == self.rate_bucket else 1

    # --- the one writer --------------------------------------------------------------------

    def learn(
        self,
        record: AuditRecord,
        *,
        config: BaselineConfig,
        network: str,
        external: bool,
        sensitive: bool,
        forbid_window: float,
        suspicious: bool = False,
    ) -> None:
        """Fold one request into the state (after detectors have looked at it).

        ``network`` is the request's network key and ``external`` whether it lies outside the
        cluster's networks; ``sensitive`` marks operations never learned after warm-up;
        ``suspicious`` (the request raised a Medium or High signal) keeps it out of the baseline
        altogether, so an attack during warm-up cannot teach the baseline that it is normal.
        """
        epoch = record.epoch
        warm = self.warm or self.is_warm(epoch, config)
        self.warm = warm
        if self.first_seen is None:
            self.first_seen = epoch
        if self.last_seen is None or epoch > self.last_seen:
            self.last_seen = epoch
        self.requests += 1

        if record.credential_id and network:
            self._remember_credential(
                record.credential_id, network, record.source_ip, epoch, config
            )
        self._count(record, epoch, warm, config, forbid_window)
        if suspicious:
            return

        operation = record.operation
        if operation not in self.operations and (not warm or not sensitive):
            if len(self.operations) < config.max_operations:
                self.operations.add(operation)
            else:
                self.overflow += 1
        if not warm:
            family = user_agent_family(record.user_agent)
            if family not in self.user_agents:
                if len(self.user_agents) < config.max_user_agents:
                    self.user_agents.add(family)
                else:
                    self.overflow += 1
        if network and network not in self.networks and (not warm or not external):
            if len(self.networks) < config.max_networks:
                self.networks.add(network)
            else:
                self.overflow += 1

    def _count(
        self,
        record: AuditRecord,
        epoch: float,
        warm: bool,
        config: BaselineConfig,
        forbid_window: float,
    ) -> None:
        bucket = self.rate_bucket_of(epoch, config)
        if bucket == self.rate_bucket:
            self.rate_count += 1
        elif bucket > self.rate_bucket:
            # A finished window teaches the baseline rate, unless it was itself anomalous.
            if self.rate_bucket >= 0 and (not warm or self.rate_count <= self.rate_limit(config)):
                self.rate_peak = max(self.rate_peak, self.rate_count)
            self.rate_bucket, self.rate_count = bucket, 1

        if record.denied:
            forbid_bucket = math.floor(epoch / forbid_window)
            if forbid_bucket == self.forbid_bucket:
                self.forbid_count += 1
            elif forbid_bucket > self.forbid_bucket:
                self.forbid_bucket, self.forbid_count = forbid_bucket, 1

    def rate_limit(self, config: BaselineConfig) -> float:
        """Requests per window above which the rate deviates from the learned peak."""
        return max(self.rate_peak * config.rate_factor, float(config.rate_floor))

    def _remember_credential(
        self, credential: str, network: str, ip: str, epoch: float, config: BaselineConfig
    ) -> None:
        # ``credentials`` is kept in least-recently-used order: the first key is evicted.
        credentials = self.credentials
        seen = credentials.pop(credential, None)
        if seen is None:
            if config.max_credentials == 0:
                return
            while len(credentials) >= config.max_credentials:
                del credentials[next(iter(credentials))]
            seen = {}
        credentials[credential] = seen
        previous = seen.get(network)
        if previous is not None:
            if epoch >= previous[1]:
                seen[network] = (ip, epoch)
            return
        if config.max_locations_per_credential == 0:
            return
        while len(seen) >= config.max_locations_per_credential:
            del seen[min(seen, key=lambda n: seen[n][1])]
        seen[network] = (ip, epoch)

    # --- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot (times as RFC 3339 strings, sets as sorted lists)."""
        return {
            "version": STATE_FORMAT_VERSION,
            "identity": {"namespace": self.identity.namespace, "name": self.identity.name},
            "createdAt": _iso(self.created_at),
            "firstSeen": None if self.first_seen is None else _iso(self.first_seen),
            "lastSeen": None if self.last_seen is None else _iso(self.last_seen),
            "requests": self.requests,
            "warm": self.warm,
            "operations": sorted(self.operations),
            "userAgents": sorted(self.user_agents),
            "networks": sorted(self.networks),
            "credentials": {
                cred: {
                    net: {"ip": ip, "lastSeen": _iso(t)} for net, (ip, t) in sorted(seen.items())
                }
                for cred, seen in self.credentials.items()
            },
            "rate": {"window": self.rate_bucket, "count": self.rate_count, "peak": self.rate_peak},
            "forbidden": {"window": self.forbid_bucket, "count": self.forbid_count},
            "overflow": self.overflow,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, config: BaselineConfig | None = None
    ) -> IdentityState:
        """The state a ``to_dict`` snapshot describes; ``ValueError`` says what is wrong.

        With ``config``, collections larger than its caps are truncated so that a state saved
        under larger caps still respects the current bound.
        """
        try:
            version = data.get("version")
            if version != STATE_FORMAT_VERSION:
                raise ValueError(f"unsupported identity state version {version!r}")
            ident = data["identity"]
            state = cls(
                identity=Identity(namespace=str(ident["namespace"]), name=str(ident["name"])),
                created_at=_epoch(data["createdAt"], "createdAt"),
            )
            state.first_seen = _opt_epoch(data.get("firstSeen"), "firstSeen")
            state.last_seen = _opt_epoch(data.get("lastSeen"), "lastSeen")
            state.requests = int(data.get("requests", 0))
            state.warm = bool(data.get("warm", False))
            state.operations = {str(x) for x in data.get("operations", ())}
            state.user_agents = {str(x) for x in data.get("userAgents", ())}
            state.networks = {str(x) for x in data.get("networks", ())}
            state.credentials = {
                str(cred): {
                    str(net): (str(loc["ip"]), _epoch(loc["lastSeen"], "credentials.lastSeen"))
                    for net, loc in seen.items()
                }
                for cred, seen in data.get("credentials", {}).items()
            }
            rate = data.get("rate", {})
            state.rate_bucket = int(rate.get("window", -1))
            state.rate_count = int(rate.get("count", 0))
            state.rate_peak = int(rate.get("peak", 0))
            forbidden = data.get("forbidden", {})
            state.forbid_bucket = int(forbidden.get("window", -1))
            state.forbid_count = int(forbidden.get("count", 0))
            state.overflow = int(data.get("overflow", 0))
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed identity state: {error!r}") from None
        if config is not None:
            state.operations = set(sorted(state.operations)[: config.max_operations])
            state.user_agents = set(sorted(state.user_agents)[: config.max_user_agents])
            state.networks = set(sorted(state.networks)[: config.max_networks])
            # Keep the most recently seen, stored least recently used first.
            recent = sorted(state.credentials.items(), key=lambda kv: -_last_use(kv[1]))
            state.credentials = {
                cred: dict(
                    sorted(seen.items(), key=lambda kv: kv[1][1])[
                        -config.max_locations_per_credential or len(seen) :
                    ]
                )
                for cred, seen in reversed(recent[: config.max_credentials])
            }
        return state

    def __repr__(self) -> str:
        return (
            f"IdentityState({self.identity}, requests={self.requests}, warm={self.warm}, "
            f"operations={len(self.operations)}, credentials={len(self.credentials)})"
        )


class IdentityStates:
    """The states of every tracked ServiceAccount, created on first use."""

    __slots__ = ("_states",)

    def __init__(self, states: Mapping[Identity, IdentityState] | None = None) -> None:
        self._states: dict[Identity, IdentityState] = dict(states or {})

    def get(self, identity: Identity, *, now: datetime) -> IdentityState:
        """The identity's state, created empty (tracked from ``now``) if it has none yet."""
        state = self._states.get(identity)
        if state is None:
            state = self._states[identity] = IdentityState.new(identity, now=now)
        return state

    def find(self, identity: Identity) -> IdentityState | None:
        return self._states.get(identity)

    def retain(self, identities: Iterable[Identity]) -> list[Identity]:
        """Forget every identity not in ``identities`` (ServiceAccounts that were deleted).

        The number of states is bounded by the ServiceAccounts that exist only if the operator
        prunes deleted ones, e.g. on each inventory refresh; returns the identities forgotten.
        """
        keep = set(identities)
        gone = [identity for identity in self._states if identity not in keep]
        for identity in gone:
            del self._states[identity]
        return gone

    def put(self, state: IdentityState) -> None:
        """Adopt a state restored from storage (replaces any state of the same identity)."""
        self._states[state.identity] = state

    def __iter__(self) -> Iterator[IdentityState]:
        return iter(self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {str(identity): state.to_dict() for identity, state in sorted(self._states.items())}

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Mapping[str, Any]], *, config: BaselineConfig | None = None
    ) -> IdentityStates:
        states = (IdentityState.from_dict(d, config=config) for d in data.values())
        return cls({s.identity: s for s in states})

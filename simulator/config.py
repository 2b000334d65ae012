"""A simulation run's configuration and its summary: plain values, no broker or database.

``simulator.runner`` takes a :class:`SimulationConfig` and returns a
:class:`SimulationSummary`; both are re-exported there.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from simulator.shop import DAY_MS
from streams.catalogue import DEFAULT_CATALOGUE, OfferSpec
from streams.errors import ConfigError

if TYPE_CHECKING:
    from promo.settings import Settings

HOUR_MS = 3_600_000


def _new_run_id() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything one run needs; ``from_settings`` fills servers, topics and truth parameters.

    ``start_ms`` (sim time of the first event, epoch ms) defaults to now minus ``days`` minus
    one hour. ``max_events_per_second`` caps the messages sent per wall second, malformed ones
    included. ``tail_seconds``: how long to keep reading offers after the last step.
    ``partitions`` and ``replication`` apply to topics the run creates. ``step_seconds`` is the
    sim time the clock advances per step. ``window_hours``, ``offer_ttl_hours``,
    ``gross_margin`` and ``catalogue`` parametrise the ground truth: keep them equal to the
    engine's settings. ``clickhouse_url`` (``clickhouse://user@host:port/db``, the database must
    exist) enables writing ``sim_truth`` and ``sim_runs``; ``None`` skips ClickHouse.
    """

    bootstrap_servers: list[str]
    clickstream_topic: str = "clickstream"
    offers_topic: str = "offers"
    clickhouse_url: str | None = None
    users: int = 3000
    days: float = 3.0
    seed: int = 1
    start_ms: int | None = None
    max_events_per_second: float = 1500.0
    malformed_share: float = 0.005
    tail_seconds: float = 15.0
    run_id: str = field(default_factory=_new_run_id)
    partitions: int = 8
    replication: int = 1
    step_seconds: float = 60.0
    window_hours: float = 48.0
    offer_ttl_hours: float = 48.0
    gross_margin: float = 0.3
    catalogue: tuple[OfferSpec, ...] = DEFAULT_CATALOGUE
    clickhouse_password: str = field(default="", repr=False)
    #: Broker security options of every Kafka client (``Settings.kafka_options``).
    kafka_options: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        checks = {
            "bootstrap_servers": bool(self.bootstrap_servers),
            "users": self.users >= 1,
            "days": self.days > 0,
            "max_events_per_second": self.max_events_per_second > 0,
            "malformed_share": 0.0 <= self.malformed_share < 1.0,
            "tail_seconds": self.tail_seconds >= 0,
            "run_id": 0 < len(self.run_id) <= 64,
            "partitions": self.partitions >= 1,
            "replication": self.replication >= 1,
            "step_seconds": self.step_seconds > 0,
            "window_hours": self.window_hours > 0,
            "offer_ttl_hours": self.offer_ttl_hours > 0,
            "gross_margin": 0 < self.gross_margin <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(f"simulation config: invalid {values}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SimulationConfig:
        """Servers, topics and truth parameters from the engine's settings, then overrides."""
        config = cls(
            bootstrap_servers=list(settings.bootstrap_servers),
            clickstream_topic=settings.topic_clickstream,
            offers_topic=settings.topic_offers,
            clickhouse_url=settings.clickhouse_url,
            clickhouse_password=settings.clickhouse_password.get_secret_value(),
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
            window_hours=settings.attribution_window_hours,
            offer_ttl_hours=settings.offer_ttl_hours,
            gross_margin=settings.gross_margin,
            catalogue=settings.catalogue(),
            kafka_options=settings.kafka_options(),
        )
        return replace(config, **overrides)


@dataclass(frozen=True)
class SimulationSummary:
    """What a run did. ``offers_not_shown`` counts offers received but not shown, by reason;
    ``offers_skipped`` counts messages of the offers topic that were not this run's offers
    (``before_run``: produced before it started; ``invalid``: not an offer)."""

    run_id: str
    users: int
    events_sent: int
    malformed_sent: dict[str, int]
    offers_received: int
    offers_shown: int
    offers_not_shown: dict[str, int]
    offers_skipped: dict[str, int]
    offers_clicked: int
    purchases: int
    coupon_purchases: int
    sim_start_ms: int
    sim_end_ms: int
    wall_seconds: float

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed_sent.values())

    @property
    def messages_per_second(self) -> float:
        return (self.events_sent + self.malformed_total) / max(self.wall_seconds, 1e-9)

    def format(self) -> str:
        """A few lines for the terminal."""
        start = datetime.fromtimestamp(self.sim_start_ms / 1000, tz=UTC)
        hours = (self.sim_end_ms - self.sim_start_ms) / HOUR_MS
        return "\n".join(
            [
                f"run {self.run_id}: {self.users} users, sim time {start:%Y-%m-%d %H:%M} UTC "
                f"+ {hours:.1f} h in {self.wall_seconds:.1f} s "
                f"({self.messages_per_second:.0f} messages/s)",
                f"events: {self.events_sent} good, {self.malformed_total} malformed"
                + _breakdown(self.malformed_sent),
                f"offers: {self.offers_received} received, {self.offers_shown} shown, "
                f"{self.offers_clicked} clicked"
                + _breakdown(self.offers_not_shown, "not shown")
                + _breakdown(self.offers_skipped, "skipped"),
                f"purchases: {self.purchases}, {self.coupon_purchases} with a coupon",
            ]
        )


def _breakdown(counts: dict[str, int], label: str = "") -> str:
    if not counts:
        return ""
    parts = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    return f"; {label} ({parts})" if label else f" ({parts})"


def default_start_ms(wall_now_ms: int, days: float) -> int:
    """Sim start such that the whole run's sim time lies before the wall clock at start."""
    return wall_now_ms - round(days * DAY_MS) - HOUR_MS

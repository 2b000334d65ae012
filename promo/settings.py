"""The one settings object, read once from ``PROMO_*`` environment variables at start-up.

Defaults are production values (Apache Kafka, current ClickHouse). The local Tansu broker's
quirks are not defaults: they live in the local profile ``deploy/local/promo.env``, which the
Makefile exports and ``promo --env-file`` (or ``PROMO_ENV_FILE``) reads. Nothing reads it
unasked: a production host never picks up the local profile. Pure code never sees this
object: agents pass it plain typed values.
"""

from __future__ import annotations

import json
import os
import ssl
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.catalogue import DEFAULT_CATALOGUE, OfferSpec, parse_catalogue
from streams.engine import TRIGGERS
from streams.errors import ConfigError
from streams.fairness import DEFAULT_MAX_RATIO
from streams.segments import HIGH_VALUE_SPEND_30D

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Every field is read from ``PROMO_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(env_prefix="PROMO_", frozen=True, extra="ignore")

    # --- servers -------------------------------------------------------------------------------
    broker_url: str = Field(
        "kafka://localhost:9092", description="Kafka bootstrap, kafka://host:port[;host:port]"
    )
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects (TLS and/or SASL)"
    )
    broker_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    broker_sasl_username: str = ""
    broker_sasl_password: SecretStr = Field(SecretStr(""), description="Kafka SASL password")
    broker_ssl_cafile: Path | None = Field(
        None, description="CA bundle for the broker's TLS certificate (default: system CAs)"
    )
    clickhouse_url: str = Field(
        "clickhouse://default@localhost:9000/promo",
        description="ClickHouse native protocol: clickhouse://user@host:port/database",
    )
    clickhouse_password: SecretStr = Field(SecretStr(""), description="ClickHouse password")
    pseudonymise_key: SecretStr | None = Field(
        None,
        description="Keyed hash (HMAC-SHA256) applied to user ids before they reach "
        "ClickHouse; unset: user ids are stored as sent",
    )
    clickhouse_ddl_dir: Path = Field(
        REPO_ROOT / "deploy" / "clickhouse", description="Folder of versioned DDL files"
    )

    # --- topics --------------------------------------------------------------------------------
    app_id: str = Field("promo-stream", description="Kafka consumer group and Faust app id")
    topic_clickstream: str = "clickstream"
    topic_offers: str = "offers"
    topic_dead_letters: str = "promo-dead-letters"
    topic_decisions: str = "promo-decisions"
    topic_outcomes: str = "promo-outcomes"
    topic_training: str = "promo-training"
    topic_models: str = "promo-models"
    topic_suppressions: str = "promo-suppressions"
    topic_rules: str = "promo-rules"
    topic_partitions: int = Field(8, ge=1, le=1024, description="Partitions of keyed topics")
    topic_replication: int = Field(3, ge=1, le=7, description="Replication of created topics")

    # --- Faust worker ----------------------------------------------------------------------------
    worker_port: int = Field(6066, ge=1, le=65535, description="Faust web port of this worker")
    worker_bind: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address the Faust web server listens on. Its pages show table contents "
        "unauthenticated: keep it on localhost unless a proxy guards it",
    )
    worker_log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text for people, or one JSON object per line (with the "
        "ids a log call carries) for a log pipeline; the worker's and every command's",
    )
    store_url: str = Field("memory://", description="Faust table store (changelog-backed)")
    broker_session_timeout: float = Field(60.0, gt=0, description="Consumer session timeout, s")
    broker_heartbeat_interval: float = Field(3.0, gt=0, description="Consumer heartbeat, s")
    producer_max_batch_size: int = Field(16384, ge=1, description="Producer batch size, bytes")
    changelog_end_markers: bool = Field(
        False,
        description="After each delivery's state changelog entries, one record alone in its "
        "batch per partition, so that a broker reporting the last batch's base offset + 1 as "
        "a partition's end (Tansu) still gives changelog recovery the true end",
    )
    consumer_fetch_max_wait_ms: int = Field(
        1500, ge=1, le=60_000, description="Longest the broker may hold the worker's fetch, ms"
    )
    batch_size: int = Field(500, ge=1, le=100_000, description="Clickstream events per batch")
    batch_seconds: float = Field(
        0.05, gt=0, le=60, description="Longest wait to fill a batch, s (latency when light)"
    )
    sink_batch_size: int = Field(10_000, ge=1, le=1_000_000, description="Rows per insert")
    sink_flush_seconds: float = Field(1.0, gt=0, le=300, description="Longest wait to insert, s")
    sinks_in_worker: bool = Field(
        True,
        description="Run the ClickHouse sinks inside each worker (one process to run). "
        "false: the workers only decide, and `promo sinks` processes write ClickHouse, on "
        "their own cores, so the hot path keeps the worker's one thread",
    )
    max_message_bytes: int = Field(
        65_536, ge=1024, description="Larger clickstream messages are rejected"
    )

    # --- features --------------------------------------------------------------------------------
    max_future_skew_seconds: int = Field(
        300, ge=0, description="Events further ahead of their Kafka timestamp are rejected"
    )
    max_event_age_days: int = Field(
        90, ge=1, description="Events older than their Kafka timestamp by more are rejected"
    )
    decision_lateness_minutes: int = Field(
        10, ge=0, description="Events older than the user's latest by more do not trigger offers"
    )
    cart_abandon_minutes: int = Field(
        30, ge=1, description="Idle time after which a cart is abandoned"
    )

    # --- policy ----------------------------------------------------------------------------------
    policy_version: str = Field("uplift-lcb-v7", min_length=1)
    offer_catalogue: Path | None = Field(None, description="JSON offer catalogue; default built in")
    control_share: float = Field(0.1, ge=0.0, lt=1.0, description="Share of users held out")
    holdout_salt: str = Field(
        "promo-holdout-1", min_length=1, description="Changing it reshuffles control"
    )
    explore_share: float = Field(
        0.1, ge=0.0, le=1.0, description="Sticky share of treated users whose decisions explore"
    )
    offer_confidence: float = Field(
        0.8,
        gt=0.5,
        lt=1.0,
        description="How sure the model must be that an offer adds profit before it is sent",
    )
    shadow_confidence: float | None = Field(
        None,
        gt=0.5,
        lt=1.0,
        description="Shadow mode: also decide with this confidence, log it, never send it",
    )
    decision_triggers: str = Field(
        "add_to_cart,cart_return",
        description="Decision points, comma-separated, among view, add_to_cart, cart_return",
    )
    gross_margin: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description="Margin rate on revenue before discounts, where no per-item margins came",
    )
    attribution_window_hours: float = Field(
        48.0, gt=0, description="Purchases this long after a decision count"
    )
    offer_ttl_hours: float = Field(48.0, gt=0, description="Offer expiry after the decision")
    decision_cooldown_minutes: float = Field(
        2880.0,
        ge=0,
        description="No new decision for a user within; by default the attribution window, "
        "so each purchase belongs to one decision and every action is labelled alike",
    )
    max_offers_per_day: int = Field(1, ge=0, description="Contact cap per user per 24 h")
    max_offers_per_week: int = Field(3, ge=0, description="Contact cap per user per 7 days")
    daily_budget: float | None = Field(
        None,
        gt=0,
        description="Expected discount the offers may commit per UTC day, paced over the "
        "day's traffic and split evenly over the clickstream partitions (unset: no budget)",
    )

    # --- bundle rules (promo rules) --------------------------------------------------------------
    rules_days: float = Field(
        30.0, gt=0, description="promo rules counts this many days of purchases, up to the latest"
    )
    rules_min_orders: int = Field(
        20, ge=1, description="promo rules keeps pairs of categories bought together this often"
    )

    # --- segments and fairness -------------------------------------------------------------------
    high_value_spend_30d: float = Field(
        HIGH_VALUE_SPEND_30D,
        gt=0,
        description="30-day spend, in the shop's currency, from which a user is high_value",
    )
    fairness_max_ratio: float = Field(
        DEFAULT_MAX_RATIO,
        gt=1.0,
        le=100.0,
        description="The report flags a group whose offer rate is below the highest group's "
        "by more than this factor (1.25: the four-fifths rule)",
    )
    abuse_threshold: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Users whose abuse score (the estimated share of their purchases paid with "
        "coupon codes we never sent them) reaches this get no offer; 1, the default, turns "
        "the gate off (it did not pay for the learned policy in the simulator: README)",
    )

    # --- models ----------------------------------------------------------------------------------
    n_segments: int = Field(6, ge=1, le=100)
    model_publish_every: int = Field(200, ge=1, description="Training examples per model snapshot")
    model_publish_seconds: float = Field(10.0, gt=0, description="Longest time between snapshots")
    model_seed: int = 42

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if not value.startswith("kafka://") or not value.removeprefix("kafka://"):
            raise ValueError("must look like kafka://host:port")
        return value

    @field_validator("decision_triggers")
    @classmethod
    def _decision_triggers(cls, value: str) -> str:
        names = [t.strip() for t in value.split(",") if t.strip()]
        unknown = sorted(set(names) - set(TRIGGERS))
        if not names or unknown:
            raise ValueError(f"must name decision points among {', '.join(TRIGGERS)}")
        return ",".join(names)

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "clickhouse" or not parts.hostname or not parts.path.strip("/"):
            raise ValueError("must look like clickhouse://user@host:port/database")
        if parts.password is not None:
            # URLs end up in logs, errors and `promo settings`; the password setting never does.
            raise ValueError("must not hold a password: set PROMO_CLICKHOUSE_PASSWORD instead")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.broker_heartbeat_interval >= self.broker_session_timeout:
            raise ValueError(
                "broker_heartbeat_interval must be below broker_session_timeout "
                "(PROMO_BROKER_HEARTBEAT_INTERVAL, PROMO_BROKER_SESSION_TIMEOUT)"
            )
        if self.max_offers_per_week < self.max_offers_per_day:
            raise ValueError("max_offers_per_week must be >= max_offers_per_day")
        sasl = self.broker_security_protocol.startswith("SASL")
        if sasl and not (
            self.broker_sasl_username and self.broker_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"PROMO_BROKER_SECURITY_PROTOCOL={self.broker_security_protocol} needs "
                "PROMO_BROKER_SASL_USERNAME and PROMO_BROKER_SASL_PASSWORD"
            )
        if self.broker_ssl_cafile is not None:
            if not self.broker_security_protocol.endswith("SSL"):
                raise ValueError(
                    "PROMO_BROKER_SSL_CAFILE is set but PROMO_BROKER_SECURITY_PROTOCOL uses no TLS"
                )
            if not self.broker_ssl_cafile.is_file():
                raise ValueError(f"PROMO_BROKER_SSL_CAFILE: {self.broker_ssl_cafile} is no file")
        if self.offer_ttl_hours > self.attribution_window_hours:
            raise ValueError(
                "offer_ttl_hours must not exceed attribution_window_hours: a coupon redeemed "
                "after the window closed could never be attributed (PROMO_OFFER_TTL_HOURS)"
            )
        return self

    @cached_property
    def bootstrap_servers(self) -> list[str]:
        """Broker addresses as kafka-python and aiokafka take them."""
        return [h.strip() for h in self.broker_url.removeprefix("kafka://").split(";") if h.strip()]

    def broker_ssl_context(self) -> ssl.SSLContext | None:
        """TLS for the broker when the protocol uses it (server certificate verified)."""
        if not self.broker_security_protocol.endswith("SSL"):
            return None
        cafile = str(self.broker_ssl_cafile) if self.broker_ssl_cafile else None
        return ssl.create_default_context(cafile=cafile)

    def kafka_options(self) -> dict[str, Any]:
        """Security options of every kafka-python and aiokafka client (same names in both)."""
        options: dict[str, Any] = {"security_protocol": self.broker_security_protocol}
        if self.broker_security_protocol.startswith("SASL"):
            options |= {
                "sasl_mechanism": self.broker_sasl_mechanism,
                "sasl_plain_username": self.broker_sasl_username,
                "sasl_plain_password": self.broker_sasl_password.get_secret_value(),
            }
        context = self.broker_ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options

    def catalogue(self) -> tuple[OfferSpec, ...]:
        """The offer catalogue: the built-in one, or the JSON file PROMO_OFFER_CATALOGUE names."""
        if self.offer_catalogue is None:
            return DEFAULT_CATALOGUE
        try:
            entries = json.loads(self.offer_catalogue.read_text(encoding="utf-8"))
            return parse_catalogue(entries)
        except (OSError, ValueError, ConfigError) as exc:
            raise ConfigError(f"PROMO_OFFER_CATALOGUE={self.offer_catalogue}: {exc}") from None


#: Names a profile file (``KEY=value`` lines) to read beneath the environment, like
#: ``promo --env-file``; never a field itself.
ENV_FILE_VARIABLE = "PROMO_ENV_FILE"


def env_file_from(option: Path | None) -> tuple[Path, str] | None:
    """The profile file to read and what named it (``--env-file`` wins over
    ``PROMO_ENV_FILE``), or ``None``: then only the environment counts."""
    if option is not None:
        return option, "--env-file"
    named = os.environ.get(ENV_FILE_VARIABLE)
    return (Path(named), ENV_FILE_VARIABLE) if named else None


def load_settings(env_file: Path | None = None) -> Settings:
    """Build the settings once; a bad value stops start-up with the variable's name.

    ``env_file`` (else the file ``PROMO_ENV_FILE`` names) is read beneath the environment: a
    variable set in the environment wins over the file's line. A missing file stops start-up
    naming the option, rather than falling back to production defaults unnoticed.
    """
    source = env_file_from(env_file)
    if source is not None and not source[0].is_file():
        raise ConfigError(f"{source[1]} {source[0]}: no such file")
    try:
        # pydantic-settings reads the file itself (dotenv), under the environment.
        return Settings(_env_file=source[0] if source else None)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(p) for p in error["loc"]) if error["loc"] else ""
            var = f"PROMO_{name.upper()}" if name else "settings"
            problems.append(f"{var}: {error['msg']}")
        where = f" (environment, then {source[0]})" if source else ""
        raise ConfigError(f"invalid configuration{where}: " + "; ".join(problems)) from None

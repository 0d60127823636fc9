"""Settings from the environment, with the defaults of the local stack `make run` starts."""

import os
from dataclasses import dataclass, field

# TLS over loopback only costs CPU on both ends.
DEFAULT_DATABASE_URL = "postgresql://orderflow:orderflow@127.0.0.1:5432/orderflow?sslmode=disable"
HTTP_PORTS = {"order": 8001, "inventory": 8002, "notification": 8003}


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Settings:
    service: str
    kafka_bootstrap_servers: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", DEFAULT_DATABASE_URL))
    smtp_url: str = field(default_factory=lambda: _env("SMTP_URL", "smtp://127.0.0.1:8025"))
    mail_from: str = field(default_factory=lambda: _env("MAIL_FROM", "orders@orderflow.example"))
    http_host: str = field(default_factory=lambda: _env("HTTP_HOST", "127.0.0.1"))
    log_level: str = field(default_factory=lambda: _env("LOG_LEVEL", "info"))
    # Apache Kafka refuses less than its group.min.session.timeout.ms (6 s by default; our local
    # broker allows 1 s). A short timeout makes group joins and takeovers quick.
    kafka_session_timeout_ms: int = field(default_factory=lambda: int(_env("KAFKA_SESSION_TIMEOUT_MS", "6000")))
    batch_size: int = field(default_factory=lambda: int(_env("BATCH_SIZE", "500")))
    # A message whose handling keeps failing with an error that may pass (a deadlock, a timeout, a resource
    # limit) while the database answers is tried this many times, then dead-lettered with the reason.
    message_attempts: int = field(default_factory=lambda: int(_env("MESSAGE_ATTEMPTS", "5")))
    # /health answers 503 when records wait on an assigned partition and no batch was committed for this long.
    health_stall_s: float = field(default_factory=lambda: float(_env("HEALTH_STALL_S", "60")))
    # Goodwill for a backorder whose ETA slips: this percentage off a future purchase.
    goodwill_percent: int = field(default_factory=lambda: int(_env("GOODWILL_PERCENT", "10")))
    # ... and for one that has waited this many days, looked for every GOODWILL_REVIEW_S seconds.
    goodwill_wait_days: int = field(default_factory=lambda: int(_env("GOODWILL_WAIT_DAYS", "14")))
    goodwill_review_s: float = field(default_factory=lambda: float(_env("GOODWILL_REVIEW_S", "300")))
    # How often inventory looks for ETAs that passed without supply (each moves once a day at most).
    eta_review_s: float = field(default_factory=lambda: float(_env("ETA_REVIEW_S", "3600")))
    # ETA changes to one order within this window make one mail.
    eta_update_window_s: float = field(default_factory=lambda: float(_env("ETA_UPDATE_WINDOW_S", "60")))
    # The storefront's webhook: every notification is also POSTed there, signed with the secret.
    webhook_url: str | None = field(default_factory=lambda: os.environ.get("WEBHOOK_URL") or None)
    webhook_secret: str = field(default_factory=lambda: _env("WEBHOOK_SECRET", ""))

    @property
    def notification_channels(self) -> tuple[str, ...]:
        return ("email", "webhook") if self.webhook_url else ("email",)

    @property
    def http_port(self) -> int:
        return int(_env(f"{self.service.upper()}_HTTP_PORT", str(HTTP_PORTS[self.service])))

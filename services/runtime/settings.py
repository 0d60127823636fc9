"""Typed settings from the environment, with the defaults of the local stack `make run` starts. A bad value
stops the service at start with a message that names the variable."""

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# TLS over loopback only costs CPU on both ends.
DEFAULT_DATABASE_URL = "postgresql://orderflow:orderflow@127.0.0.1:5432/orderflow?sslmode=disable"
HTTP_PORTS = {"order": 8001, "inventory": 8002, "notification": 8003}

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    # Each field is read from the variable of its name in capitals (DATABASE_URL); an empty one counts as unset.
    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="ignore")

    service: Literal["order", "inventory", "notification"]
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)  # it may hold a password
    smtp_url: str = "smtp://127.0.0.1:8025"
    mail_from: str = "orders@orderflow.example"
    http_host: str = "127.0.0.1"
    order_http_port: Port = HTTP_PORTS["order"]
    inventory_http_port: Port = HTTP_PORTS["inventory"]
    notification_http_port: Port = HTTP_PORTS["notification"]
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # json in production; make run shows the same lines readably on a terminal (console).
    log_format: Literal["json", "console"] = "json"
    # Apache Kafka refuses less than its group.min.session.timeout.ms (6 s by default; our local
    # broker allows 1 s). A short timeout makes group joins and takeovers quick.
    kafka_session_timeout_ms: Annotated[int, Field(ge=1000)] = 6000
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    # A message whose handling keeps failing with an error that may pass (a deadlock, a timeout, a resource
    # limit) while the database answers is tried this many times, then dead-lettered with the reason.
    message_attempts: Annotated[int, Field(ge=1)] = 5
    # /health answers 503 when records wait on an assigned partition and no batch was committed for this long.
    health_stall_s: Seconds = 60
    # Goodwill for a backorder whose ETA slips: this percentage off a future purchase.
    goodwill_percent: Annotated[int, Field(ge=0, le=100)] = 10
    # ... and for one that has waited this many days, looked for every GOODWILL_REVIEW_S seconds.
    goodwill_wait_days: Annotated[int, Field(ge=1)] = 14
    goodwill_review_s: Seconds = 300
    # How often inventory reviews ETAs and purchase orders that passed their date.
    eta_review_s: Seconds = 3600
    # How often inventory plans: forecasts demand, learns lead times, suggests replenishment, finds overstock.
    planning_s: Seconds = 3600
    # More days of forecast demand in stock than this is overstock.
    overstock_days: Annotated[int, Field(ge=1)] = 90
    # ETA changes to one order within this window make one mail.
    eta_update_window_s: Annotated[float, Field(ge=0)] = 60
    # The storefront's webhook: every notification is also POSTed there, signed with the secret.
    webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr("")
    # OpenTelemetry traces go over OTLP/HTTP to this collector (e.g. http://collector:4318); unset, none are
    # recorded. The other OTEL_* variables (headers, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) are the exporter's.
    otel_exporter_otlp_endpoint: str | None = None

    @property
    def notification_channels(self) -> tuple[str, ...]:
        return ("email", "webhook") if self.webhook_url else ("email",)

    @property
    def http_port(self) -> int:
        return getattr(self, f"{self.service}_http_port")


def load(service: str, **overrides) -> Settings:
    """The service's settings; SystemExit naming each bad variable and why, instead of a traceback."""
    try:
        return Settings(service=service, **overrides)
    except ValidationError as error:
        bad = "; ".join(f"{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise SystemExit(f"orderflow {service}: invalid setting: {bad}") from None

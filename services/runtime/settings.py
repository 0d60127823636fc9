"""Typed settings from the environment, with the defaults of the local stack `make run` starts. A bad value
stops the service at start with a message that names the variable."""

import os
import ssl
from typing import Annotated, Any, Literal, TypeVar

from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import Field, FilePath, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.db import local_url

# The local server's admin, which `make run` and the tests give each service a login of its own with; no
# service reads it (DATABASE_URL is the set-up's, services/migrate.py). TLS over loopback only costs
# CPU on both ends; elsewhere the URL's sslmode and sslrootcert say what a connection requires.
DEFAULT_ADMIN_DATABASE_URL = "postgresql://orderflow:orderflow@127.0.0.1:5432/orderflow?sslmode=disable"
HTTP_PORTS = {"order": 8001, "inventory": 8002, "notification": 8003}

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]


AnySettings = TypeVar("AnySettings", bound=BaseSettings)
SASL = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}


class KafkaSettings(BaseSettings):
    """Where Kafka is and how to connect to it: TLS, SASL. Everything of ours that talks to Kafka (the services'
    broker, hence their relay and dead letters, the admin client that creates topics, the command line)
    connects with `broker_security()` or `client_security()`, made here from these variables alone."""

    # Each field is read from the variable of its name in capitals (SMTP_URL); an empty one counts as unset.
    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # PEM files. Without a CA file the system's CAs verify the broker; a client certificate and key are for
    # brokers that ask for one (mutual TLS); the key may be in the certificate file.
    kafka_ssl_cafile: FilePath | None = None
    kafka_ssl_certfile: FilePath | None = None
    kafka_ssl_keyfile: FilePath | None = None
    # An idempotent producer: a send retried after a broker failed over is written once, in order. Tansu
    # cannot (it refuses InitProducerId): false there.
    kafka_enable_idempotence: bool = True

    @model_validator(mode="after")
    def _fits_the_protocol(self) -> "KafkaSettings":
        protocol = self.kafka_security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
        given = {name.upper() for name in self.model_fields_set if getattr(self, name) is not None}
        if sasl and not {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} <= given:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        # A setting the protocol would ignore is a mistake to point out, not to pass over.
        ignored = set() if sasl else given & {"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"}
        ignored |= set() if tls else given & {"KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"}
        if ignored:
            raise ValueError(f"{', '.join(sorted(ignored))} cannot be used with KAFKA_SECURITY_PROTOCOL={protocol}")
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the client certificate it belongs to)")
        if tls:
            try:
                self._ssl_context()
            except ssl.SSLError as error:  # at start, not at the first connection
                files = sorted(given & {"KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"})
                raise ValueError(f"{', '.join(files)}: not usable as PEM: {error}") from None
        return self

    def broker_security(self) -> BaseSecurity | None:
        """For FastStream's KafkaBroker (security=...)."""
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return None
        tls = self._ssl_context() if protocol.endswith("SSL") else None
        if protocol.startswith("SASL_"):
            return SASL[self.kafka_sasl_mechanism](self.kafka_sasl_username, self.kafka_sasl_password.get_secret_value(),
                                                  ssl_context=tls)
        return BaseSecurity(ssl_context=tls)

    def client_security(self) -> dict[str, Any]:
        """The same for an aiokafka client (producer, consumer, admin), in FastStream's own translation."""
        return parse_security(self.broker_security())

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_ssl_certfile:
            context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        return context


class Settings(KafkaSettings):
    """A service's settings: Kafka's, and its own."""

    service: Literal["order", "inventory", "notification"]
    # Each service logs in with its own URL (the order service with ORDER_DATABASE_URL, and so on), as a role
    # that owns its schema and nothing else; by default the login the local stack makes for it.
    order_database_url: SecretStr = SecretStr(local_url(DEFAULT_ADMIN_DATABASE_URL, "order"))
    inventory_database_url: SecretStr = SecretStr(local_url(DEFAULT_ADMIN_DATABASE_URL, "inventory"))
    notification_database_url: SecretStr = SecretStr(local_url(DEFAULT_ADMIN_DATABASE_URL, "notification"))
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
    # Inbox message ids (and sent notifications) older than this are pruned, and notifications that waited this
    # long for their order's contact refused, every PRUNE_INTERVAL_S. It must stay longer than a record can stay
    # in a topic (infra/topics.py: 7 days, plus a day for its segment), or a message Kafka still holds could be
    # handled twice; the rest covers a consumer that was down, or a dead letter re-driven, meanwhile.
    inbox_retention_hours: Annotated[int, Field(ge=1)] = 14 * 24
    prune_interval_s: Seconds = 3600
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

    @property
    def database_url(self) -> SecretStr:
        return getattr(self, f"{self.service}_database_url")


def admin_database_url() -> str | None:
    """DATABASE_URL: the admin's, read by the set-up only (`make run`, services/migrate.py), never a service."""
    return os.environ.get("DATABASE_URL") or None


def load(service: str, **overrides) -> Settings:
    """The service's settings; SystemExit naming each bad variable and why, instead of a traceback."""
    return _validated(Settings, f"orderflow {service}", service=service, **overrides)


def load_kafka(**overrides) -> KafkaSettings:
    """How to reach Kafka, for a program that is not a service (the command line, `make run`)."""
    return _validated(KafkaSettings, "orderflow", **overrides)


def _validated(settings: type[AnySettings], who: str, **overrides) -> AnySettings:
    try:
        return settings(**overrides)
    except ValidationError as error:
        # A field's error is named by its variable; one about several (a combination) names them itself.
        bad = "; ".join(f"{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" if e["loc"]
                        else e["msg"].removeprefix("Value error, ") for e in error.errors())
        raise SystemExit(f"{who}: invalid setting: {bad}") from None

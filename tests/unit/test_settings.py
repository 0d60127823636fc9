"""Settings from the environment: typed, secrets kept out of logs, a bad value named at start."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from faststream.security import SASLScram256

from infra.certificates import broker_certificate
from infra.topics import TOPIC_RETENTION, TOPIC_SEGMENT
from services.runtime.db import local_url
from services.runtime.settings import DEFAULT_ADMIN_DATABASE_URL, admin_database_url, load, load_kafka


def test_settings_are_read_typed_from_the_environment(monkeypatch):
    monkeypatch.setenv("BATCH_SIZE", "200")
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("INVENTORY_HTTP_PORT", "9102")
    monkeypatch.setenv("GOODWILL_PERCENT", "")  # empty counts as unset
    settings = load("inventory")
    assert (settings.batch_size, settings.http_port, settings.goodwill_percent) == (200, 9102, 10)
    assert settings.webhook_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings) and "orderflow:orderflow" not in repr(settings)


def test_each_service_reads_its_own_database_url_and_never_shows_it(monkeypatch):
    monkeypatch.setenv("ORDER_DATABASE_URL", "postgresql://orders:0rder-pw@db.internal/shop?sslmode=verify-full")
    monkeypatch.setenv("INVENTORY_DATABASE_URL", "postgresql://stock:st0ck-pw@stock.internal/stock?sslmode=require")
    order, notification = load("order"), load("notification")
    assert order.database_url.get_secret_value() == "postgresql://orders:0rder-pw@db.internal/shop?sslmode=verify-full"
    assert notification.database_url.get_secret_value() == local_url(DEFAULT_ADMIN_DATABASE_URL, "notification")
    for shown in (repr(order), str(order), repr(order.database_url), order.model_dump_json()):
        assert "0rder-pw" not in shown and "st0ck-pw" not in shown


def test_the_local_stack_derives_each_services_login_from_the_admin_url_keeping_its_server_and_tls():
    admin = "postgresql://admin:s3cret@db.example:6543/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem"
    logins = {service: urlsplit(local_url(admin, service)) for service in ("order", "inventory", "notification")}
    for service, login in logins.items():
        assert login.username == f"orderflow_{service}"
        assert (login.hostname, login.port, login.path) == ("db.example", 6543, "/shop")
        assert parse_qs(login.query) == {"sslmode": ["verify-full"], "sslrootcert": ["/etc/ca.pem"]}
        assert "s3cret" not in login.password
    assert len({login.password for login in logins.values()}) == 3
    assert local_url(admin, "order") == local_url(admin, "order")  # every run on one server agrees
    assert local_url(admin.replace("s3cret", "other"), "order") != local_url(admin, "order")


@pytest.mark.parametrize("name, value, why", [
    ("BATCH_SIZE", "many", "BATCH_SIZE"),
    ("GOODWILL_PERCENT", "150", "GOODWILL_PERCENT"),
    ("ORDER_HTTP_PORT", "70000", "ORDER_HTTP_PORT"),
    ("LOG_FORMAT", "xml", "LOG_FORMAT"),
])
def test_a_bad_setting_stops_the_service_with_a_message_that_names_it(monkeypatch, name, value, why):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load("order")
    assert why in str(stopped.value) and "invalid setting" in str(stopped.value)


def test_database_url_is_the_set_ups_and_no_service_reads_it(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://admin:pw@db.internal/orderflow")
    assert admin_database_url() == "postgresql://admin:pw@db.internal/orderflow"
    assert "admin:pw" not in load("order").database_url.get_secret_value()


def test_kafka_is_plaintext_unless_told_and_sasl_defaults_to_scram_sha_512(monkeypatch):
    assert load("order").broker_security() is None and load("order").client_security() == {}
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "orderflow")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-s3cret")
    settings = load("order")
    assert settings.client_security() == {"security_protocol": "SASL_PLAINTEXT", "ssl_context": None,
                                          "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "orderflow",
                                          "sasl_plain_password": "kafka-s3cret"}
    assert "kafka-s3cret" not in repr(settings)


def test_sasl_ssl_gives_the_broker_and_every_client_one_tls_context_trusting_the_ca(monkeypatch, tmp_path):
    keystore, cafile = broker_certificate(tmp_path)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "orderflow")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-s3cret")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(cafile))
    settings = load_kafka()
    assert isinstance(settings.broker_security(), SASLScram256)
    client = settings.client_security()
    assert (client["security_protocol"], client["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-256")
    assert [ca["subject"] for ca in client["ssl_context"].get_ca_certs()] == [((("commonName", "orderflow test CA"),),)]


def test_mutual_tls_loads_the_client_certificate_and_key(monkeypatch, tmp_path):
    keystore, cafile = broker_certificate(tmp_path)  # any certificate with its key will do as a client's
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(cafile))
    monkeypatch.setenv("KAFKA_SSL_CERTFILE", str(tmp_path / "broker.crt"))
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", str(tmp_path / "broker.key"))
    assert load_kafka().client_security()["security_protocol"] == "SSL"
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", str(cafile))  # not the certificate's key
    with pytest.raises(SystemExit) as stopped:
        load_kafka()
    assert "KAFKA_SSL_KEYFILE" in str(stopped.value) and "not usable" in str(stopped.value)


@pytest.mark.parametrize("variables, named", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "orderflow"}, "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_USERNAME"),
    ({"KAFKA_SASL_USERNAME": "orderflow", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "o", "KAFKA_SASL_PASSWORD": "p",
      "KAFKA_SSL_CAFILE": __file__}, "KAFKA_SSL_CAFILE"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": __file__}, "KAFKA_SSL_CERTFILE"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}, "KAFKA_SSL_CAFILE"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": __file__}, "KAFKA_SSL_CAFILE"),  # not PEM
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
])
def test_kafka_settings_that_do_not_fit_together_stop_the_service_naming_the_variable(monkeypatch, variables, named):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load("inventory")
    assert named in str(stopped.value) and "invalid setting" in str(stopped.value)


def test_the_inbox_remembers_message_ids_longer_than_the_topics_keep_them():
    # A topic deletes a segment at a time: a record stays up to a segment past the retention.
    assert timedelta(hours=load("order").inbox_retention_hours) > TOPIC_RETENTION + TOPIC_SEGMENT

"""Settings from the environment: typed, secrets kept out of logs, a bad value named at start."""

from urllib.parse import parse_qs, urlsplit

import pytest

from services.runtime.db import local_url
from services.runtime.settings import DEFAULT_ADMIN_DATABASE_URL, admin_database_url, load


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

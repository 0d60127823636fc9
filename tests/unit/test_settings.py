"""Settings from the environment: typed, secrets kept out of logs, a bad value named at start."""

from datetime import timedelta

import pytest

from services.runtime.settings import load


def test_settings_are_read_typed_from_the_environment(monkeypatch):
    monkeypatch.setenv("BATCH_SIZE", "200")
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("INVENTORY_HTTP_PORT", "9102")
    monkeypatch.setenv("GOODWILL_PERCENT", "")  # empty counts as unset
    settings = load("inventory")
    assert (settings.batch_size, settings.http_port, settings.goodwill_percent) == (200, 9102, 10)
    assert settings.webhook_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings) and "orderflow:orderflow" not in repr(settings)


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


def test_the_inbox_remembers_message_ids_longer_than_the_topics_keep_them():
    from infra.topics import TOPIC_RETENTION

    assert timedelta(hours=load("order").inbox_retention_hours) > TOPIC_RETENTION

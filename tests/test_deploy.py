"""The deployment files (Containerfile, deploy/, docs/scaling.md) checked against the code they
deploy: metric names and labels, config keys, probe paths, ports, selectors and names that refer
to each other. promtool runs when it is installed; deploy/check runs the other linters.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from shim.errors import UpstreamReason
from shim.loader import parse_config
from shim.metrics import Metrics
from shim.middleware import APIS
from shim.routing import Router

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"

CONFIG_PATH = "/etc/shim/config.toml"
PORT = 8080


# --- helpers ---------------------------------------------------------------------------------


def _catalog() -> dict[str, frozenset[str]]:
    """Every sample name shim exports → its label names (histogram buckets add ``le``)."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            value.labels(*["x"] * len(value._labelnames))
    return {
        sample.name: frozenset(sample.labels)
        for family in registry.collect()
        for sample in family.samples
        if sample.name.startswith("shim_")
    }


CATALOG = _catalog()
FAMILIES = {re.sub(r"_(bucket|count|sum|created|total)$", "", name) for name in CATALOG}
#: Label values that queries may match on, as shim produces them.
LABEL_VALUES = {
    "reason": set(typing.get_args(UpstreamReason)),
    "kind": {"prompt", "completion"},
    "endpoint": {*APIS.values(), "other"},
}

_SELECTOR = re.compile(r"\b(shim_[a-z_]+)(?:\{([^}]*)\})?")
_MATCHER = re.compile(r'([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_GROUPING = re.compile(r"\b(?:by|on|without)\s*\(([^)]*)\)")


def promql_problems(expr: str) -> list[str]:
    """Unknown shim metrics, labels or label values in a PromQL expression (a lexical check)."""
    problems = []
    labels: set[str] = set()
    for name, matchers in _SELECTOR.findall(expr):
        if name not in CATALOG:
            problems.append(f"unknown metric {name}")
            continue
        labels |= CATALOG[name]
        for label, op, value in _MATCHER.findall(matchers):
            if label not in CATALOG[name]:
                problems.append(f"{name} has no label {label}")
            elif label in LABEL_VALUES and op in ("=", "=~"):
                wanted = set(value.split("|")) if op == "=~" else {value}
                unknown = wanted - LABEL_VALUES[label]
                if unknown:
                    problems.append(f"{name}: {label} is never {sorted(unknown)}")
    if labels:
        grouped = {part.strip() for group in _GROUPING.findall(expr) for part in group.split(",")}
        problems += [f"grouping by unknown label {g}" for g in sorted(grouped - labels - {""})]
    return problems


def containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Containerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = containerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def manifests() -> dict[str, dict[str, Any]]:
    """The kustomization's resources by kind (one object of each kind here)."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    objects: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            assert doc["kind"] not in objects, f"two {doc['kind']} objects"
            objects[doc["kind"]] = doc
    return objects


def shim_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "shim")


def configmap_config_text() -> str:
    text: str = manifests()["ConfigMap"]["data"]["config.toml"]
    return text


def named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    dashboard = json.loads((GRAFANA / "shim-dashboard.json").read_text())
    return [
        (panel["title"], target)
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


# --- the catalog itself ----------------------------------------------------------------------


def test_catalog_has_the_documented_metrics() -> None:
    assert {
        "shim_requests_total", "shim_request_duration_seconds_bucket",
        "shim_time_to_first_token_seconds_bucket", "shim_time_per_output_token_seconds_bucket",
        "shim_tokens_total", "shim_upstream_request_duration_seconds_bucket",
        "shim_upstream_errors_total", "shim_in_flight_requests", "shim_overhead_seconds_bucket",
    } <= set(CATALOG)  # fmt: skip
    assert CATALOG["shim_requests_total"] == {"model", "endpoint", "status"}
    assert CATALOG["shim_overhead_seconds_bucket"] == {"model", "endpoint", "le"}


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(shim_request_total[5m])", "unknown metric shim_request_total"),
        ('rate(shim_tokens_total{type="prompt"}[5m])', "shim_tokens_total has no label type"),
        ('rate(shim_upstream_errors_total{reason="dns"}[5m])', "is never ['dns']"),
        ("sum by (key) (rate(shim_tokens_total[5m]))", "grouping by unknown label key"),
    ],
    ids=["metric", "label", "value", "grouping"],
)
def test_promql_check_finds_mistakes(expr: str, problem: str) -> None:
    assert any(problem in p for p in promql_problems(expr))


# --- Containerfile ---------------------------------------------------------------------------


def test_containerfile_bases_on_slim_python_311() -> None:
    bases = [args.split()[0] for word, args in containerfile() if word == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases)


def test_containerfile_runtime_stage() -> None:
    stage = final_stage()
    by_word: dict[str, list[str]] = {}
    for word, args in stage:
        by_word.setdefault(word, []).append(args)
    user = by_word["USER"][-1].split(":")[0]
    assert user not in ("root", "0"), "the image must not run as root"
    assert user.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    assert json.loads(by_word["ENTRYPOINT"][-1]) == ["shim", "serve"]
    cmd = json.loads(by_word["CMD"][-1])
    assert cmd == ["--host", "0.0.0.0", "--port", str(PORT)]
    assert by_word["EXPOSE"] == [str(PORT)]
    env = " ".join(by_word["ENV"])
    assert f"SHIM_CONFIG={CONFIG_PATH}" in env
    healthcheck = by_word["HEALTHCHECK"][-1]
    assert f"http://127.0.0.1:{PORT}/health" in healthcheck
    assert '"python", "-c"' in healthcheck and "curl" not in healthcheck


def test_containerfile_installs_without_dev_dependencies() -> None:
    installs = [args for word, args in containerfile() if word == "RUN" and "pip install" in args]
    assert installs
    for args in installs:
        assert "[test]" not in args and " -e " not in args


def test_containerignore_lets_in_only_the_package() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".containerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!shim/"} <= set(lines)
    assert not any(line.startswith("!tests") for line in lines)


# --- Grafana ---------------------------------------------------------------------------------


def test_dashboard_variables() -> None:
    dashboard = json.loads((GRAFANA / "shim-dashboard.json").read_text())
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["definition"] == "label_values(shim_requests_total, model)"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_layout() -> None:
    dashboard = json.loads((GRAFANA / "shim-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize(("title", "target"), dashboard_targets(), ids=lambda x: str(x)[:40])
def test_dashboard_queries_use_real_metrics(title: str, target: dict[str, Any]) -> None:
    assert target["refId"]
    assert promql_problems(target["expr"]) == []
    assert 'model=~"$model"' in target["expr"], "every query follows the model variable"


def test_dashboard_shows_every_metric() -> None:
    exprs = " ".join(target["expr"] for _, target in dashboard_targets())
    shown = {re.sub(r"_(bucket|total)$", "", name) for name, _ in _SELECTOR.findall(exprs)}
    assert shown == FAMILIES


# --- Prometheus ------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_rule_shape(rule: dict[str, Any]) -> None:
    assert promql_problems(rule["expr"]) == []
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    tests = load_yaml(PROMETHEUS / "alerts_test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == alerts
    assert quiet == alerts


def test_alerts_cover_the_asked_conditions() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert 'status=~"5.."' in exprs["ShimHighErrorRatio"]
    assert 'reason="loading"' in exprs["ShimUpstreamLoading"]
    assert "timeout" in exprs["ShimUpstreamTimeouts"]
    assert "shim_overhead_seconds_bucket" in exprs["ShimHighOverhead"]
    assert "> 0.010" in exprs["ShimHighOverhead"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_alert_rules_pass_promtool() -> None:
    for args in (["test", "rules", "alerts_test.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run(
            ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_shim_and_loads_the_rules() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "shim")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"shim:{PORT}"]


# --- compose ---------------------------------------------------------------------------------


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path, for the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = (DEPLOY / source).resolve()
    return mounts


def test_compose_services_and_mounts() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert set(services) >= {"shim", "prometheus", "grafana"}
    for service in services.values():
        for target, source in _mounts(service).items():
            assert source.exists(), f"{target}: {source} does not exist"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), "publish on loopback only"

    shim = services["shim"]
    assert (DEPLOY / shim["build"]["context"]).resolve() == ROOT
    assert shim["build"]["dockerfile"] == "Containerfile"
    assert _mounts(shim)[CONFIG_PATH] == (DEPLOY / "config.toml").resolve()
    assert f"127.0.0.1:{PORT}:{PORT}" in shim["ports"]

    prometheus = services["prometheus"]
    mounts = _mounts(prometheus)
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS / "prometheus.yml"
    # rule_files are relative to prometheus.yml: alerts.yml must sit beside it.
    assert mounts["/etc/prometheus/alerts.yml"] == PROMETHEUS / "alerts.yml"


def test_grafana_provisioning_finds_the_dashboard_and_prometheus() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    mounts = _mounts(compose["services"]["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    provider = load_yaml(provisioning / "dashboards" / "shim.yaml")["providers"][0]
    dashboard_dir = provider["options"]["path"]
    assert mounts[f"{dashboard_dir}/shim-dashboard.json"] == GRAFANA / "shim-dashboard.json"
    source = load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]


# --- shim configs ----------------------------------------------------------------------------


def test_compose_config_is_valid_without_any_env() -> None:
    path = DEPLOY / "config.toml"
    config = parse_config(path.read_text(), source=str(path), env={})
    assert Router(config).routes
    assert config.server.host == "0.0.0.0" and config.server.port == PORT
    assert config.server.api_keys == [""], "keys stay off while SHIM_API_KEY is unset"


def test_configmap_config_is_valid_with_the_secret() -> None:
    objects = manifests()
    secret_keys = set(objects["Secret"]["stringData"])
    text = configmap_config_text()
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert required <= secret_keys, f"not in the Secret: {required - secret_keys}"
    config = parse_config(text, source="configmap", env=dict.fromkeys(secret_keys, "x"))
    assert Router(config).routes
    assert config.server.port == PORT
    assert config.huggingface.cache_dir and config.huggingface.cache_dir.startswith("/tmp/")


# --- Kubernetes ------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    listed = load_yaml(K8S / "kustomization.yaml")["resources"]
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == files


def test_every_manifest_has_identity() -> None:
    for kind, obj in manifests().items():
        assert obj["apiVersion"] and obj["kind"] == kind
        assert obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "shim"


def test_deployment_pods() -> None:
    objects = manifests()
    deployment = objects["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = shim_container(deployment)
    assert deployment["apiVersion"] == "apps/v1"
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert container["args"] == ["--host", "0.0.0.0", "--port", str(PORT)]
    assert named_port(container, "http") == PORT

    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/ready" and named_port(container, ready["port"]) == PORT
    assert live["path"] == "/health" and named_port(container, live["port"]) == PORT

    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "128Mi"}
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}

    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    config_volume = volumes[mounts[str(Path(CONFIG_PATH).parent)]]
    assert config_volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert "config.toml" in objects["ConfigMap"]["data"]
    env_from = [e["secretRef"]["name"] for e in container["envFrom"]]
    assert objects["Secret"]["metadata"]["name"] in env_from


def test_grace_period_covers_pre_stop_and_drain() -> None:
    deployment = manifests()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    command = shim_container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    secret_keys = manifests()["Secret"]["stringData"]
    config = parse_config(configmap_config_text(), env=dict.fromkeys(secret_keys, "x"))
    assert config.server.drain_timeout == 30
    assert pod["terminationGracePeriodSeconds"] == int(command[1]) + config.server.drain_timeout


def test_service_reaches_the_pods() -> None:
    objects = manifests()
    service, deployment = objects["Service"], objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container = shim_container(deployment)
    (port,) = service["spec"]["ports"]
    assert named_port(container, port["targetPort"]) == PORT


def test_hpa_scales_the_deployment() -> None:
    objects = manifests()
    hpa, deployment = objects["HorizontalPodAutoscaler"], objects["Deployment"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shim"}
    assert target["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_pdb_and_service_monitor_select_the_pods() -> None:
    objects = manifests()
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    pdb = objects["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    monitor, service = objects["ServiceMonitor"], objects["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


# --- deploy/check and docs -------------------------------------------------------------------


def test_deploy_check_is_an_executable_bash_script() -> None:
    script = DEPLOY / "check"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


def test_scaling_doc_queries_use_real_metrics() -> None:
    text = (ROOT / "docs" / "scaling.md").read_text()
    blocks = re.findall(r"```promql\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                assert promql_problems(line) == [], line

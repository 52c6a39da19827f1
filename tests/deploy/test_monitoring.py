"""deploy/monitoring/: the alert rules (promtool), the Grafana dashboard (generated, and querying only what a
running replica declares), and one real scrape by Debian's Prometheus server of a running `reloader serve`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.grafana_dashboard import dashboard_json
from tests.support import ROOT, Models, ServeFactory, api_spec, free_port, notify_queue, prediction, wait_until

MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NO_PROMETHEUS = "{} not found: install Debian's prometheus package (`make test` does, where it runs as root on Debian)"


def queried_metrics(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in re.findall(r"\b(reloader_[a-z0-9_]+)\b", expr)}


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    templating = json.loads(DASHBOARD.read_text())["templating"]["list"]
    return [t["expr"] for p in panels for t in p.get("targets", [])] + [
        v["query"] for v in templating if v["type"] == "query"
    ]


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def declared(exposition: str) -> set[str]:
    """The sample names a /metrics exposition declares with `# TYPE` (a histogram's _bucket, _count, _sum)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        names |= {name + suffix for suffix in ("_bucket", "_count", "_sum")} if kind == "histogram" else {name}
    return names


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`reloader serve` of a local model folder: a live /metrics without AWS."""
    tmp_path = tmp_path_factory.mktemp("monitoring")
    folder = tmp_path / "models" / "1"
    folder.mkdir(parents=True)
    from tests.support import tagged_model

    (folder / "model.pkl").write_bytes(tagged_model(1.0))
    serve = ServeFactory(tmp_path, "http://127.0.0.1:9")
    server = serve.start(serve.spec(api_spec({"path": str(tmp_path / "models")})))
    yield server
    serve.stop_all()


# -- alert rules -----------------------------------------------------------------------------


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMETHEUS.format("promtool"))
def test_the_alert_rules_are_valid_and_their_unit_tests_pass():
    assert PROMTOOL is not None
    checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yaml"], cwd=MONITORING, capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test():
    tests = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert alerts == tested


# -- the dashboard ---------------------------------------------------------------------------


def test_the_checked_in_dashboard_is_the_generated_one():
    assert DASHBOARD.read_text() == dashboard_json(), "run: python -m infra.grafana_dashboard > " + str(DASHBOARD)


def test_the_dashboard_has_a_job_and_a_namespace_variable_used_by_every_query():
    variables = {v["name"] for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert {"datasource", "job", "namespace"} <= variables
    for expr in dashboard_expressions():
        if not expr.startswith("label_values"):
            assert 'job=~"$job"' in expr and 'namespace=~"$namespace"' in expr, expr


def test_every_metric_the_dashboard_and_the_rules_query_is_declared_by_a_live_replica(local_server):
    exposition = local_server.http.get("/metrics").text
    names = declared(exposition)
    for source, expressions in (("dashboard", dashboard_expressions()), ("alert rules", rule_expressions())):
        queried = queried_metrics(expressions)
        assert queried, source
        missing = queried - names
        assert not missing, f"the {source} query metrics /metrics does not declare: {sorted(missing)}"
    # and what the issue asks the dashboard to show is there
    shown = queried_metrics(dashboard_expressions())
    for wanted in (
        "reloader_reload_latency_seconds_bucket",
        "reloader_load_failures_total",
        "reloader_events_total",
        "reloader_s3_requests_total",
        "reloader_scan_drift_total",
        "reloader_versions_loaded",
    ):
        assert wanted in shown, wanted


# -- a real scrape ---------------------------------------------------------------------------


class Prometheus:
    """Debian's prometheus binary on a free loopback port, with its own data folder (not the packaged daemon)."""

    def __init__(self, folder: Path, target: str) -> None:
        assert PROMETHEUS is not None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "reloader", "static_configs": [{"targets": [target]}]}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=5)
        response.raise_for_status()
        return response.json()["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.mark.localstack
@pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS.format("prometheus"))
def test_prometheus_scrapes_a_running_replica_and_finds_the_reload_latency(
    serve, s3_client, sqs_client, bucket, tmp_path
):
    # GIVEN a replica in queue mode that reloaded version 2 from its S3 event (the latency is then observed)
    models = Models(s3_client, bucket)
    models.put_version("models/iris", 1, tag=1.0, marker="_READY")
    reloading = {"queue_url": notify_queue(s3_client, sqs_client, bucket), "ready_marker": "_READY", "interval": 3600}
    server = serve.start(serve.spec(api_spec({"path": f"s3://{bucket}/models/iris"}, reloading=reloading)))
    models.put_version("models/iris", 2, tag=2.0, marker="_READY")
    wait_until(lambda: prediction(server) == 2.0, what="version 2 served")

    # WHEN Prometheus scrapes it for a few seconds, with the alert rules loaded
    prometheus = Prometheus(tmp_path, server.url.removeprefix("http://"))
    try:
        wait_until(
            lambda: prometheus.query('reloader_reload_latency_seconds_count{job="reloader"}'),
            timeout=60,
            interval=0.5,
            what=f"the histogram in Prometheus; its log:\n{prometheus.log}",
        )
        # THEN a query returns the reload latency histogram, its buckets and a quantile
        (count,) = prometheus.query('reloader_reload_latency_seconds_count{job="reloader", model="test-api"}')
        assert float(count["value"][1]) >= 1
        buckets = prometheus.query('reloader_reload_latency_seconds_bucket{job="reloader", model="test-api"}')
        assert {bucket["metric"]["le"] for bucket in buckets} >= {"0.1", "1.0", "+Inf"}
        quantile = prometheus.query(
            'histogram_quantile(0.5, sum by (le) (reloader_reload_latency_seconds_bucket{job="reloader"}))'
        )
        assert 0 < float(quantile[0]["value"][1]) < 60
        # AND the replica is up and ready, its version counted by state, and every alert rule evaluates cleanly
        assert prometheus.query('up{job="reloader"} == 1')
        assert prometheus.query("reloader_ready == 1")
        ready = prometheus.query('reloader_versions{state="ready"}')
        assert float(ready[0]["value"][1]) == 2

        def rules_evaluated() -> list[dict[str, Any]]:
            rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
            return rules if rules and all(rule.get("lastEvaluation", "").startswith("2") for rule in rules) else []

        rules = wait_until(rules_evaluated, timeout=20, what="the alert rules evaluated")
        assert {rule["health"] for rule in rules} == {"ok"}, rules
        assert not [rule["name"] for rule in rules if rule["state"] == "firing"]
    finally:
        prometheus.stop()

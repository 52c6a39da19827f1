"""The Grafana dashboard of model-reloader replicas, built with grafana-foundation-sdk.

    python -m infra.grafana_dashboard > deploy/monitoring/grafana-dashboard.json

The JSON is checked in (import it into Grafana as it is); a test keeps it equal to this code and checks
that every metric it queries is declared by a running replica's /metrics.
"""

from __future__ import annotations

import sys

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

UID = "model-reloader"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every query is limited to the chosen scrape job and namespace ("All" matches series without one too).
SELECTOR = 'job=~"$job", namespace=~"$namespace"'


def _select(metric: str, extra: str = "") -> str:
    return f"{metric}{{{SELECTOR}{', ' + extra if extra else ''}}}"


def _query(expr: str, legend: str) -> Dataquery:
    return Dataquery().expr(expr).legend_format(legend)


def _panel(title: str, unit: str, *queries: Dataquery, description: str = "") -> Panel:
    panel = Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(12).min(0)
    if description:
        panel = panel.description(description)
    for letter, query in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(query.ref_id(letter))
    return panel


def _quantiles(metric: str, by: str = "", quantiles: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[Dataquery]:
    group = f"le{', ' + by if by else ''}"
    return [
        _query(
            f"histogram_quantile({q}, sum by ({group}) (rate({_select(metric + '_bucket')}[$__rate_interval])))",
            f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else ""),
        )
        for q in quantiles
    ]


def _rate(metric: str, by: str, extra: str = "") -> str:
    return f"sum by ({by}) (rate({_select(metric, extra)}[$__rate_interval]))"


def build() -> Dashboard:
    return (
        Dashboard("model-reloader")
        .uid(UID)
        .tags(["model-reloader"])
        .refresh("30s")
        .time("now-3h", "now")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            QueryVariable("job")
            .label("Scrape job")
            .datasource(DATASOURCE)
            .query("label_values(reloader_ready, job)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
            .multi(True)
        )
        .with_variable(
            QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query('label_values(reloader_ready{job=~"$job"}, namespace)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
            .multi(True)
        )
        .with_row(Row("Reloads"))
        .with_panel(
            _panel(
                "Reload latency (S3 event to serving)",
                "s",
                *_quantiles("reloader_reload_latency_seconds"),
                description="From the S3 event that announced a version to the version serving; event-driven loads.",
            )
        )
        .with_panel(
            _panel(
                "Load duration (download + load) by model",
                "s",
                *_quantiles("reloader_load_duration_seconds", "model", (0.95,)),
            )
        )
        .with_panel(
            _panel(
                "Loads and failed attempts by model",
                "ops",
                _query(_rate("reloader_load_duration_seconds_count", "model"), "loads {{model}}"),
                _query(_rate("reloader_load_failures_total", "model"), "failed attempts {{model}}"),
                description="Failed attempts count every retry of a failing version.",
            )
        )
        .with_panel(
            _panel(
                "Versions by state",
                "short",
                _query(f"sum by (state) ({_select('reloader_versions')})", "{{state}}"),
                _query(f"sum by (model) ({_select('reloader_versions_loaded')})", "serving {{model}}"),
            )
        )
        .with_row(Row("Events and the safety net"))
        .with_panel(
            _panel("S3 events by outcome", "ops", _query(_rate("reloader_events_total", "outcome"), "{{outcome}}"))
        )
        .with_panel(
            _panel(
                "SQS messages by result",
                "ops",
                _query(_rate("reloader_messages_total", "result"), "{{result}}"),
                description="left: kept for redelivery after a temporary failure.",
            )
        )
        .with_panel(
            _panel(
                "Drift found by full scans",
                "short",
                _query(
                    f"sum by (model) (increase({_select('reloader_scan_drift_total')}[$__rate_interval]))", "{{model}}"
                ),
                _query(f"sum (increase({_select('reloader_scans_total')}[$__rate_interval]))", "scans"),
                description="Changes a scan found that no event announced: above 0, events are being lost.",
            )
        )
        .with_panel(
            _panel(
                "Replicas ready",
                "short",
                _query(f"sum ({_select('reloader_ready')})", "ready"),
                _query(f"count ({_select('reloader_ready')})", "replicas"),
            )
        )
        .with_row(Row("AWS and TF Serving"))
        .with_panel(
            _panel(
                "S3 requests by operation",
                "reqps",
                _query(_rate("reloader_s3_requests_total", "operation"), "{{operation}}"),
            )
        )
        .with_panel(
            _panel(
                "S3 request duration by operation (p95)",
                "s",
                *_quantiles("reloader_s3_request_seconds", "operation", (0.95,)),
            )
        )
        .with_panel(
            _panel(
                "SQS requests by operation",
                "reqps",
                _query(_rate("reloader_sqs_requests_total", "operation"), "{{operation}}"),
            )
        )
        .with_panel(
            _panel(
                "TF Serving config re-sends",
                "short",
                _query(f"sum (increase({_select('reloader_tfserving_resends_total')}[$__rate_interval]))", "re-sends"),
                description="TF Serving had lost loaded versions (a restart) or missed a change (TensorFlow handler).",
            )
        )
    )


def dashboard_json() -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dashboard_json())

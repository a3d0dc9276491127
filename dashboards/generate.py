"""Generate the Grafana dashboards (fleet overview, per-job) with grafana-foundation-sdk: `python dashboards/generate.py`.

The SDK's builders make the dashboards; its JSON encoder writes them into dashboards/*.json and the
same files into charts/phash-fleet/dashboards/, which the chart ships as sidecar ConfigMaps.
`check()` reads a file back into the SDK's dashboard model and fails unless it encodes to the same
JSON. tests/unit/test_dashboards.py runs it on the checked-in files and fails when they differ from
what this script makes, so edit this file, never the JSON.
"""

from __future__ import annotations

import enum
import json
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

ROOT = Path(__file__).resolve().parent.parent
OUT_DIRS = (ROOT / "dashboards", ROOT / "charts" / "phash-fleet" / "dashboards")
DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
#: (PromQL, legend) of one query of a panel.
Query = tuple[str, str]
Threshold = tuple[float | None, str]


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    """One PromQL query of a panel."""
    query = prometheus.Dataquery().datasource(DATASOURCE).expr(expr).legend_format(legend or "__auto").ref_id(ref)
    return query.instant() if instant else query.range()


def _targets(queries: list[Query], instant: bool = False) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    return [target(expr, legend, chr(ord("A") + i), instant) for i, (expr, legend) in enumerate(queries)]


def _thresholds(steps: list[Threshold]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def stat_panel(
    panel_id: int,
    title: str,
    expr: str,
    unit: str = "short",
    description: str = "",
    mappings: list[model.ValueMap] | None = None,
    thresholds: list[Threshold] | None = None,
    w: int = 4,
) -> stat.Panel:
    """A single-number panel."""
    return (
        stat.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(w)
        .height(4)
        .targets(_targets([(expr, title)], instant=True))
        .unit(unit)
        .mappings(list(mappings or []))
        .thresholds(_thresholds(thresholds or [(None, "green")]))
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(common.BigValueTextMode.AUTO)
    )


def timeseries_panel(
    panel_id: int,
    title: str,
    queries: list[Query],
    unit: str = "short",
    description: str = "",
    w: int = 12,
    stack: bool = False,
) -> timeseries.Panel:
    """A graph panel with one line per query (and per label set)."""
    return (
        timeseries.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(w)
        .height(8)
        .targets(_targets(queries))
        .unit(unit)
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .stacking(
            common_builders.StackingConfig()
            .mode(common.StackingMode.NORMAL if stack else common.StackingMode.NONE)
            .group("A")
        )
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )


def datasource_variable() -> dash.DatasourceVariable:
    """The Prometheus data source picker every query uses."""
    return (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .hide(model.VariableHide.DONT_HIDE)
        .multi(False)
        .include_all(False)
    )


def query_variable(name: str, label: str, query: str) -> dash.QueryVariable:
    """A variable whose values come from label_values() of a metric."""
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": query, "refId": f"{name}-values"})
        .definition(query)
        .hide(model.VariableHide.DONT_HIDE)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(False)
        .include_all(False)
        .regex("")
    )


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[stat.Panel | timeseries.Panel],
    variables: list[dash.DatasourceVariable | dash.QueryVariable],
) -> dash.Dashboard:
    """The dashboard envelope Grafana imports (and the sidecar loads); the SDK lays the panels out row by row."""
    builder = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["phash-fleet"])
        .timezone("browser")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .version(1)
        .time("now-6h", "now")
        .variables(list(variables))
    )
    for panel in panels:
        builder = builder.with_panel(panel)
    return builder


def quantiles(metric: str, by: str = "", scale: str = "") -> list[Query]:
    """p50/p90/p99 queries of a histogram."""
    group = f"le, {by}" if by else "le"
    legend_by = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}]))){scale}",
            f"p{int(q * 100)}{legend_by}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def fleet_overview() -> dash.Dashboard:
    """Throughput, backlog, workers desired vs current, latency percentiles, failures by reason."""
    up_down = model.ValueMap(
        options={
            "0": model.ValueMappingResult(text="DOWN", color="red"),
            "1": model.ValueMappingResult(text="UP", color="green"),
        }
    )
    panels: list[stat.Panel | timeseries.Panel] = [
        stat_panel(
            1,
            "Files/s",
            f"sum(rate(phashfleet_files_processed_total[{RATE}]))",
            "ops",
            "Files hashed, failed or skipped per second, all jobs.",
        ),
        stat_panel(2, "Queue backlog", "sum(phashfleet_queue_backlog)", "short", "Messages waiting in the broker."),
        stat_panel(
            3,
            "Workers ready",
            "max(phashfleet_worker_replicas_current)",
            "short",
            "Worker replicas the Deployment reports ready.",
        ),
        stat_panel(
            4,
            "Workers wanted",
            "max(phashfleet_worker_replicas_desired)",
            "short",
            "Worker replicas the autoscaler asks for.",
        ),
        stat_panel(5, "Jobs running", 'sum(phashfleet_jobs{phase="Running"})', "short", "PhashJobs in phase Running."),
        stat_panel(
            6,
            "Redis",
            "max(phashfleet_redis_up)",
            "short",
            "Whether the operator reaches Redis.",
            mappings=[up_down],
            thresholds=[(None, "red"), (1, "green")],
        ),
        timeseries_panel(
            7,
            "Throughput by result",
            [(f"sum by (result) (rate(phashfleet_files_processed_total[{RATE}]))", "{{result}}")],
            "ops",
            "Files per second by result (ok, failed, skipped).",
            stack=True,
        ),
        timeseries_panel(
            8,
            "Backlog and in-flight batches",
            [
                ("sum by (queue) (phashfleet_queue_backlog)", "queued {{queue}}"),
                ("sum(phashfleet_inflight_batches)", "handed out, not done"),
                ("sum(phashfleet_worker_inflight_batches)", "being hashed"),
            ],
            "short",
            "Batches waiting in the broker, handed out by the operator, and being hashed by workers.",
        ),
        timeseries_panel(
            9,
            "Workers: wanted vs ready",
            [
                ("max(phashfleet_worker_replicas_desired)", "wanted"),
                ("max(phashfleet_worker_replicas_current)", "ready"),
            ],
            "short",
            "What the autoscaler asks for against what the Deployment has ready.",
        ),
        timeseries_panel(
            10,
            "Hash latency",
            quantiles("phashfleet_hash_duration_seconds"),
            "s",
            "Time to read, decode and hash one file: p50, p90, p99.",
        ),
        timeseries_panel(
            11,
            "Failures by reason",
            [(f"sum by (result, reason) (rate(phashfleet_file_failures_total[{RATE}]))", "{{result}}: {{reason}}")],
            "ops",
            "Failed and skipped files per second by reason code.",
            stack=True,
        ),
        timeseries_panel(
            12,
            "Bytes read",
            [(f"sum(rate(phashfleet_bytes_read_total[{RATE}]))", "read")],
            "Bps",
            "Source bytes workers read per second.",
        ),
        timeseries_panel(
            13,
            "Dramatiq messages",
            [
                (f"sum(rate(dramatiq_messages_total[{RATE}]))", "processed"),
                (f"sum(rate(dramatiq_message_errors_total[{RATE}]))", "errored"),
                (f"sum(rate(dramatiq_message_retries_total[{RATE}]))", "retried"),
                (f"sum(rate(dramatiq_message_rejects_total[{RATE}]))", "dead-lettered"),
            ],
            "ops",
            "Messages per second as Dramatiq's own middleware counts them.",
        ),
        timeseries_panel(
            14,
            "Dramatiq message duration",
            quantiles("dramatiq_message_duration_milliseconds", scale=" / 1000"),
            "s",
            "Time to process one batch message: p50, p90, p99.",
        ),
        timeseries_panel(
            15,
            "Reconcile errors",
            [(f"sum by (handler) (rate(phashfleet_reconcile_errors_total[{RATE}]))", "{{handler}}")],
            "ops",
            "Operator handler runs that raised, per second.",
        ),
        timeseries_panel(
            16,
            "Reconcile duration p99",
            [
                (
                    f"histogram_quantile(0.99, sum by (le, handler) (rate(phashfleet_reconcile_duration_seconds_bucket[{RATE}])))",
                    "{{handler}}",
                )
            ],
            "s",
            "Operator handler run time, p99.",
        ),
        timeseries_panel(
            17,
            "Jobs by phase",
            [("sum by (phase) (phashfleet_jobs)", "{{phase}}")],
            "short",
            "PhashJobs known to the operator, by phase.",
            w=24,
            stack=True,
        ),
    ]
    return dashboard(
        "phash-fleet-overview",
        "phash-fleet / Fleet overview",
        "Throughput, backlog, workers, latency and failures of the whole fleet.",
        panels,
        [datasource_variable()],
    )


def per_job() -> dash.Dashboard:
    """Progress, rate, ETA and failed/skipped files of one PhashJob (variables namespace and phashjob)."""
    sel = 'namespace="$namespace", phashjob="$phashjob"'
    files = f"phashfleet_files_processed_total{{{sel}}}"
    rate = f"sum(rate({files}[{RATE}]))"
    remaining = (
        f'max(phashfleet_job_files{{{sel}, state="total"}})'
        f' - sum(phashfleet_job_files{{{sel}, state=~"succeeded|failed|skipped"}})'
    )
    panels: list[stat.Panel | timeseries.Panel] = [
        stat_panel(
            1,
            "Progress",
            f"max(phashfleet_job_progress_ratio{{{sel}}})",
            "percentunit",
            "Share of the job's files done.",
        ),
        stat_panel(2, "Rate", rate, "ops", "Files per second over the rate interval."),
        stat_panel(3, "ETA", f"({remaining}) / {rate}", "s", "Files left divided by the current rate."),
        stat_panel(4, "Succeeded", f'max(phashfleet_job_files{{{sel}, state="succeeded"}})', "short", "Files hashed."),
        stat_panel(
            5,
            "Failed",
            f'max(phashfleet_job_files{{{sel}, state="failed"}})',
            "short",
            "Unreadable, corrupt or timed out after retries.",
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat_panel(
            6,
            "Skipped",
            f'max(phashfleet_job_files{{{sel}, state="skipped"}})',
            "short",
            "Not an image.",
            thresholds=[(None, "green"), (1, "orange")],
        ),
        timeseries_panel(
            7,
            "Progress",
            [(f"max(phashfleet_job_progress_ratio{{{sel}}})", "progress")],
            "percentunit",
            "Share of the job's files done over time.",
        ),
        timeseries_panel(
            8,
            "Rate by result",
            [(f"sum by (result) (rate({files}[{RATE}]))", "{{result}}")],
            "ops",
            "Files per second by result.",
            stack=True,
        ),
        timeseries_panel(
            9,
            "Files by state",
            [(f"max by (state) (phashfleet_job_files{{{sel}}})", "{{state}}")],
            "short",
            "Total, succeeded, failed and skipped counts as the operator last counted them.",
        ),
        timeseries_panel(
            10,
            "Failed and skipped by reason",
            [
                (
                    f"sum by (result, reason) (increase(phashfleet_file_failures_total{{{sel}}}[{RATE}]))",
                    "{{result}}: {{reason}}",
                )
            ],
            "short",
            "Failed and skipped files per interval, by reason code.",
            stack=True,
        ),
        timeseries_panel(
            11,
            "In-flight batches",
            [(f"sum(phashfleet_inflight_batches{{{sel}}})", "handed out")],
            "short",
            "Batches of this job handed out and not yet done.",
        ),
        timeseries_panel(
            12,
            "Bytes read",
            [(f"sum(rate(phashfleet_bytes_read_total{{{sel}}}[{RATE}]))", "read")],
            "Bps",
            "Source bytes of this job read per second.",
        ),
    ]
    variables: list[dash.DatasourceVariable | dash.QueryVariable] = [
        datasource_variable(),
        query_variable("namespace", "Namespace", "label_values(phashfleet_job_progress_ratio, namespace)"),
        query_variable(
            "phashjob",
            "PhashJob",
            'label_values(phashfleet_job_progress_ratio{namespace="$namespace"}, phashjob)',
        ),
    ]
    return dashboard(
        "phash-fleet-job",
        "phash-fleet / PhashJob",
        "Progress, rate, ETA and failures of one PhashJob.",
        panels,
        variables,
    )


DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {"fleet-overview.json": fleet_overview, "phash-job.json": per_job}


def encode(board: model.Dashboard) -> str:
    """The JSON text of an SDK dashboard model, as the files hold it."""
    return JSONEncoder(sort_keys=True, indent=2).encode(board) + "\n"


def render() -> dict[str, str]:
    """Return {file name: JSON text} for every dashboard."""
    return {name: encode(build().build()) for name, build in DASHBOARDS.items()}


def check(text: str) -> model.Dashboard:
    """Read dashboard JSON into the SDK's model; raise ValueError unless it encodes back to the same JSON.

    The model keeps only the fields of Grafana's dashboard schema (panel options and queries by their
    plugin's schema), so a misspelt or unknown field changes the JSON; enum fields must hold a member.
    """
    register_default_plugins()
    data = json.loads(text)
    board = model.Dashboard.from_json(data)
    again = json.loads(encode(board))
    if again != data:
        raise ValueError(f"not a dashboard of the SDK's schema: {_first_difference(data, again)}")
    # from_json keeps an enum field's raw value; the schema allows only the enum's members.
    for problem in _enum_problems(board, ""):
        raise ValueError(f"not a dashboard of the SDK's schema: {problem}")
    return board


def _enum_problems(obj: object, path: str) -> Iterator[str]:
    """Fields of the SDK's model objects, nested ones too, whose value is none of their enum's members."""
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _enum_problems(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _enum_problems(item, f"{path}.{key}")
    elif type(obj).__module__.startswith("grafana_foundation_sdk.models."):
        for field, hint in typing.get_type_hints(type(obj).__init__).items():
            value = getattr(obj, field, None)
            choices = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
            enums = [t for t in choices if isinstance(t, type) and issubclass(t, enum.Enum)]
            allowed = [m.value for t in enums for m in t]
            if value is not None and enums and enums == choices and value not in allowed:
                yield f"{path}.{field}: {value!r} is none of {allowed}"
            yield from _enum_problems(value, f"{path}.{field}")


def _first_difference(a: object, b: object, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in b:
                return f"{path}.{key} is not in the schema"
            if key not in a:
                return f"{path}.{key} appears on the way back"
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path or '.'}: {a!r} became {b!r}"


def main(out_dirs: tuple[Path, ...] = OUT_DIRS) -> None:
    """Write every dashboard into each output folder, each checked against the SDK's schema first."""
    rendered = render()
    for text in rendered.values():
        check(text)
    for out in out_dirs:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (out / name).write_text(text)


if __name__ == "__main__":
    main(tuple(Path(p) for p in sys.argv[1:]) or OUT_DIRS)

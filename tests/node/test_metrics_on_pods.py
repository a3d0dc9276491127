"""A real Prometheus scrapes the chart's operator and worker pods during a job: every dashboard query returns
data, every alert rule evaluates cleanly and stays quiet on a healthy fleet."""

from __future__ import annotations

import time

from chart.e2e import install_apis
from chart.prometheus import EMPTY_MEANS_HEALTHY, Prometheus, dashboard_queries, epoch, value
from harness.fleet import make_corpus
from harness.wait import wait_for
from node.release import PREFIX, install, run_job, running_pods

#: The workers' series the panels take rate() of, counted once each is born.
WORKER_SERIES = "phashfleet_files_processed_total|phashfleet_file_failures_total|phashfleet_hash_duration_seconds_count"


def test_every_panel_and_alert_sees_the_fleet(node, restricted_namespace, tmp_path):
    install_apis(node.plane)
    namespace = restricted_namespace
    data, out = tmp_path / "data", tmp_path / "out"
    out.mkdir()
    truth = make_corpus(data, photos=12)
    fleet = install(
        node,
        namespace,
        data,
        out,
        parts=tmp_path / "parts",
        values={
            "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
            "metrics": {"prometheusRule": {"enabled": True}},
        },
    )
    fleet["truth"] = truth
    rule = node.plane.get_json("prometheusrule", PREFIX, namespace=namespace)
    wait_for(lambda: running_pods(node, namespace, "worker"), timeout=120, what="the worker pod")
    operator_ip = running_pods(node, namespace, "operator")[0]["status"]["podIP"]
    worker_ip = running_pods(node, namespace, "worker")[0]["status"]["podIP"]
    prom = Prometheus(
        tmp_path / "prometheus",
        {
            f"{PREFIX}-operator": f"{operator_ip}:8080",
            f"{PREFIX}-worker": f"{worker_ip}:9191",
        },
        rule["spec"],
    )
    prom.start()
    try:
        wait_for(prom.ready, timeout=60, what="prometheus ready")
        wait_for(
            lambda: (
                all(t["health"] == "up" for t in prom.api("targets")["activeTargets"])
                and len(prom.api("targets")["activeTargets"]) == 2
            ),
            timeout=60,
            what="both targets scraped",
        )
        start = time.time()
        # Small batches spread the job over several scrapes, so rate() sees the counters grow.
        status = run_job(node, fleet, "photos", batchSize=2)
        assert status["phase"] == "Succeeded", status
        # Wait until Prometheus holds the final state of both targets, and every rule was evaluated on it.
        files = fleet["truth"]["files"]
        wait_for(
            lambda: (
                value(prom, f'max(phashfleet_job_progress_ratio{{namespace="{namespace}", phashjob="photos"}})') == 1.0
                and value(prom, f'sum(phashfleet_files_processed_total{{namespace="{namespace}", phashjob="photos"}})')
                == files
            ),
            timeout=60,
            what="the operator's progress 1.0 and the workers' final counts scraped",
        )
        # rate() needs two samples of a series: wait for a second scrape of every series of the workers' that
        # the panels rate. A job of seconds can put them all on /metrics between two scrapes.
        wait_for(
            lambda: (
                (
                    value(
                        prom,
                        f"min(count_over_time({{__name__=~{WORKER_SERIES!r}}}[1m]))",
                    )
                    or 0
                )
                >= 2
            ),
            timeout=60,
            what="two scrapes of the workers' counters",
        )
        scraped = time.time()
        wait_for(
            lambda: all(epoch(g["lastEvaluation"]) > scraped for g in prom.api("rules")["groups"]),
            timeout=30,
            what="the alert rules evaluated on the final state",
        )

        empty = []
        for dashboard, title, expr in dashboard_queries(namespace, "photos"):
            data = prom.api("query_range", query=expr, start=str(start - 5), end=str(time.time()), step="1s")
            if not data["result"] and not any(name in expr for name in EMPTY_MEANS_HEALTHY):
                empty.append(f"{dashboard} / {title}: {expr}")
        assert empty == [], "panels with no data during a job:\n" + "\n".join(empty)

        for variable_query in ("phashfleet_job_progress_ratio", "phashfleet_files_processed_total"):
            labels = {(s["namespace"], s["phashjob"]) for s in prom.api("series", **{"match[]": variable_query})}
            assert (namespace, "photos") in labels, f"{variable_query} lacks the job's namespace/phashjob labels"

        groups = prom.api("rules")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        assert set(rules) == {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
        for name, r in rules.items():
            assert r["health"] == "ok", f"{name}: {r.get('lastError')}"
        # Firing is what reaches Alertmanager. A ratio over a 10-minute window is briefly "pending" after a
        # job that lasted seconds (its counters were born mid-job); with `for: 10m` it never fires.
        firing = {name: r["state"] for name, r in rules.items() if r["state"] == "firing"}
        assert firing == {}, f"alerts firing on a healthy fleet: {firing}"
        pending = {name for name, r in rules.items() if r["state"] == "pending"}
        assert pending <= {"PhashFleetFailureRatioHigh"}, f"alerts pending on a healthy fleet: {pending}"
        redis_up = prom.api("query", query="max(phashfleet_redis_up)")["result"]
        assert redis_up and redis_up[0]["value"][1] == "1", (
            "phashfleet_redis_up is not 1 while the operator talks to Redis: the operator must set "
            "metrics.REDIS_UP after each Redis round trip, or PhashFleetRedisDown fires on a healthy fleet"
        )
        assert rules["PhashFleetRedisDown"]["state"] == "inactive"
    finally:
        prom.stop()

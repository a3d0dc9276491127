"""`phashfleet operator`: run the kopf operator in-cluster or with a kubeconfig."""

from __future__ import annotations

import os

import click

from phashfleet.cli.options import log_options


@click.command("operator")
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False),
    envvar="KUBECONFIG",
    help="Kubeconfig to use outside a cluster (in a pod the service account is used).",
)
@click.option(
    "--namespace", envvar="PHASHFLEET_NAMESPACE", default=None, help="Watch PhashJobs in this namespace only."
)
@click.option("--all-namespaces", is_flag=True, help="Watch every namespace (needs cluster-wide RBAC).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    default=8081,
    show_default=True,
    help="Port of the /healthz liveness endpoint.",
)
@click.option(
    "--peering",
    default=None,
    envvar="PHASHFLEET_PEERING",
    help="kopf peering name: with two replicas only the highest-priority one acts.",
)
@click.option("--priority", type=int, default=0, envvar="PHASHFLEET_PEERING_PRIORITY", show_default=True)
@log_options
def cli(
    kubeconfig: str | None,
    namespace: str | None,
    all_namespaces: bool,
    metrics_port: int,
    health_port: int,
    peering: str | None,
    priority: int,
) -> None:
    """Reconcile PhashJobs into batches on Redis, status on the CR and worker replicas."""
    if bool(namespace) == bool(all_namespaces):
        raise click.UsageError("give exactly one of --namespace NAME or --all-namespaces")
    if kubeconfig:
        # The kubernetes client reads KUBECONFIG when first imported, for kopf's login as well as ours.
        os.environ["KUBECONFIG"] = os.path.abspath(kubeconfig)
    from phashfleet_operator.main import run

    run(
        kubeconfig=kubeconfig,
        namespace=namespace,
        metrics_port=metrics_port,
        health_port=health_port,
        peering=peering,
        priority=priority,
    )

"""Prometheus metrics, every series labelled ``deployment`` (local/cloud, the seed's §9 tag).

One :class:`Metrics` per app, on its own registry (no process-wide globals, so two servers in one
test process never mix their counts). Two kinds of figures:

* measured as things happen — HTTP latency by route template, open WebSocket/SSE clients, and the
  attempt-start latency that the execution engine reports through :meth:`Metrics.observe_attempt_start`;
* read at scrape time — processes by status and run reason (one GROUP BY on the database), queued and
  running executions (``ExecutionService.status()``), and running containers (one Engine API call).
  Reading at scrape time keeps them true after a restart without the engine having to report them.

Scrapes run in a worker thread (:meth:`Metrics.render` blocks on the database and Docker).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ATTEMPT_START_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class Metrics:
    """The metrics of one server; ``observe_*``/``stream_*`` are cheap and safe from any thread."""

    def __init__(self, deployment: str, registry: CollectorRegistry | None = None) -> None:
        self.deployment = deployment
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._http = Histogram(
            "anyon_http_request_duration_seconds",
            "Time to answer an HTTP request (streams: until their headers), by route template.",
            ("deployment", "method", "route", "status"),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self._attempt_start = Histogram(
            "anyon_attempt_start_seconds",
            "Time from an attempt start request to its first process running.",
            ("deployment",),
            buckets=ATTEMPT_START_BUCKETS,
            registry=self.registry,
        )
        self._streams = Gauge(
            "anyon_stream_clients",
            "Open live-stream clients (WebSocket and SSE).",
            ("deployment", "kind"),
            registry=self.registry,
        )
        for kind in ("websocket", "sse"):
            self._streams.labels(deployment, kind).set(0)
        self._attempt_start.labels(deployment)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        self._http.labels(self.deployment, method, route, str(status)).observe(seconds)

    def observe_attempt_start(self, seconds: float) -> None:
        """Hook for the execution engine: seconds from "start attempt" to its first process running."""
        self._attempt_start.labels(self.deployment).observe(max(0.0, seconds))

    def stream_opened(self, kind: str) -> None:
        self._streams.labels(self.deployment, kind).inc()

    def stream_closed(self, kind: str) -> None:
        self._streams.labels(self.deployment, kind).dec()

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        """The text exposition format (blocking: run it in a worker thread)."""
        return generate_latest(self.registry)


class ServicesCollector(Collector):
    """Scrape-time figures read from the services; a failing source is skipped, never the whole scrape."""

    def __init__(
        self,
        deployment: str,
        process_counts: Callable[[], Iterable[tuple[str, str, int]]],
        execution_status: Callable[[], dict[str, int]],
        running_containers: Callable[[], int] | None = None,
        swarm_nodes: Callable[[], list[tuple[str, str, int]]] | None = None,
    ) -> None:
        self._deployment = deployment
        self._process_counts = process_counts
        self._execution_status = execution_status
        self._running_containers = running_containers
        self._swarm_nodes = swarm_nodes

    def describe(self) -> list[Metric]:
        return []  # families are only known at collect time; the registry must not call collect early

    def collect(self) -> Iterator[Metric]:
        dep = self._deployment
        try:
            processes = GaugeMetricFamily(
                "anyon_execution_processes",
                "Execution processes in the database, by status and run reason.",
                labels=("deployment", "status", "run_reason"),
            )
            for state, reason, count in self._process_counts():
                processes.add_metric((dep, state, reason), count)
            yield processes
        except Exception as exc:
            log.warning("metrics: cannot count execution processes: %s", exc)
        try:
            status = self._execution_status()
            queued = GaugeMetricFamily(
                "anyon_executions_queued", "Attempts waiting for a free slot.", labels=("deployment",)
            )
            queued.add_metric((dep,), status.get("queued", 0))
            yield queued
            running = GaugeMetricFamily(
                "anyon_executions_running", "Attempts holding a slot.", labels=("deployment",)
            )
            running.add_metric((dep,), status.get("running", 0))
            yield running
        except Exception as exc:
            log.warning("metrics: cannot read the execution status: %s", exc)
        if self._running_containers is not None:
            try:
                containers = GaugeMetricFamily(
                    "anyon_containers_running",
                    "Running per-attempt containers of this server.",
                    labels=("deployment",),
                )
                containers.add_metric((dep,), self._running_containers())
                yield containers
            except Exception as exc:
                log.warning("metrics: cannot count running containers: %s", exc)
        if self._swarm_nodes is not None:
            yield from self._collect_swarm_nodes()

    def _collect_swarm_nodes(self) -> Iterator[Metric]:
        try:
            report = self._swarm_nodes() if self._swarm_nodes is not None else []
        except Exception as exc:
            log.warning("metrics: cannot read the swarm's nodes: %s", exc)
            return
        dep = self._deployment
        attempts = GaugeMetricFamily(
            "anyon_swarm_node_attempts_running",
            "Attempt containers of this server running on each swarm node.",
            labels=("deployment", "node"),
        )
        up = GaugeMetricFamily(
            "anyon_swarm_node_ready",
            "1 when the swarm node is ready and active (attempts may be placed on it), else 0.",
            labels=("deployment", "node", "state"),
        )
        for node, state, running in report:
            attempts.add_metric((dep, node), running)
            up.add_metric((dep, node, state), 1 if state == "ready/active" else 0)
        yield attempts
        yield up


def services_collector(deployment: str, services: Any) -> ServicesCollector:
    """The collector for one deployment's services (database, executions, the Docker runner)."""
    from peewee import fn

    from anyon.services.db.models import ExecutionProcess

    def process_counts() -> list[tuple[str, str, int]]:
        with services.database.connection():
            query = ExecutionProcess.select(
                ExecutionProcess.status, ExecutionProcess.run_reason, fn.COUNT(ExecutionProcess.id)
            ).group_by(ExecutionProcess.status, ExecutionProcess.run_reason)
            rows: list[Any] = list(query.tuples())
            return [(str(s), str(r), int(n)) for s, r, n in rows]

    running_containers: Callable[[], int] | None = None
    swarm_nodes: Callable[[], list[tuple[str, str, int]]] | None = None
    docker = getattr(services, "docker", None)
    if docker is not None and hasattr(docker, "node_report"):  # the Swarm runner: per node
        swarm_nodes = docker.node_report

        def running_containers() -> int:
            return sum(running for _, _, running in docker.node_report())

    elif docker is not None:
        from anyon.services.runners.container_spec import LABEL_INSTANCE, LABEL_MANAGED

        def running_containers() -> int:
            labels = [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={docker.instance_id}"]
            found = docker.api.containers(filters={"label": labels, "status": "running"})
            return len(found)

    return ServicesCollector(
        deployment, process_counts, services.executions.status, running_containers, swarm_nodes
    )

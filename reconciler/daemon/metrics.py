"""Prometheus metrics of the daemon, on a registry of its own (no process-global state).

Runs by outcome, run duration, actions by kind and outcome, heals (workspaces brought back without
a spec change) by reason and outcome, workspaces by tier and health (from the backend's labels
after each run), the last successful sync, webhook deliveries by outcome.
Label values are closed vocabularies (outcomes, kinds, tiers, health states): never ids or text.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

from reconciler.model.enums import HealthState, Tier
from reconciler.model.observed import ObservedWorkspace

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WEBHOOK_OUTCOMES = {202: "accepted", 200: "ignored", 401: "bad_signature", 413: "too_large", 400: "malformed"}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = PromCounter("reconciler_runs", "Reconcile runs by outcome", ["outcome"], registry=r)
        self.run_duration = Histogram(
            "reconciler_run_duration_seconds", "Duration of apply runs", registry=r,
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
        )
        self.actions = PromCounter("reconciler_actions", "Actions by kind and outcome", ["kind", "outcome"],
                                   registry=r)
        self.heals = PromCounter("reconciler_heals", "Workspaces brought back without a spec change, by reason"
                                 " (missing, stopped, unhealthy) and outcome", ["reason", "outcome"], registry=r)
        self.workspaces = Gauge("reconciler_workspaces", "Managed workspaces by tier and health",
                                ["tier", "health"], registry=r)
        self.last_success = Gauge("reconciler_last_successful_sync_timestamp_seconds",
                                  "When the watched branch was last converged (epoch seconds)", registry=r)
        self.webhooks = PromCounter("reconciler_webhook_deliveries", "Webhook deliveries by outcome",
                                    ["outcome"], registry=r)
        self.reviews = PromCounter("reconciler_pr_reviews", "Pull request reviews by outcome", ["outcome"],
                                   registry=r)

    def run_finished(self, outcome: str, duration_s: float | None) -> None:
        self.runs.labels(outcome=outcome).inc()
        if duration_s is not None:
            self.run_duration.observe(duration_s)

    def action_done(self, kind: str, outcome: str) -> None:
        self.actions.labels(kind=kind, outcome=outcome).inc()

    def heal_done(self, reason: str, outcome: str) -> None:
        self.heals.labels(reason=reason, outcome=outcome).inc()

    def observed(self, workspaces: list[ObservedWorkspace]) -> None:
        counts = Counter((w.tier.value, w.health.value) for w in workspaces)
        for tier in Tier:
            for health in HealthState:
                self.workspaces.labels(tier=tier.value, health=health.value).set(counts[(tier.value, health.value)])

    def webhook(self, status_code: int) -> None:
        self.webhooks.labels(outcome=WEBHOOK_OUTCOMES.get(status_code, "error")).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

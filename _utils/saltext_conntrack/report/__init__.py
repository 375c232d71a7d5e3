"""What the numbers mean: the verdict, the diagnosis and its findings, the Prometheus textfile, the fleet."""

from saltext_conntrack.report import diagnosis, fleet, host_findings, prometheus, trend_findings, verdict, walk_findings

__all__ = ["diagnosis", "fleet", "host_findings", "prometheus", "trend_findings", "verdict", "walk_findings"]

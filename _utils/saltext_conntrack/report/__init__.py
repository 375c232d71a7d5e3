"""What the numbers mean: the verdict, the diagnosis and its findings, the Prometheus textfile, the fleet, the
views an operator scans."""

from saltext_conntrack.report import (
    diagnosis,
    fleet,
    host_findings,
    prometheus,
    table,
    trend_findings,
    verdict,
    walk_findings,
)

__all__ = ["diagnosis", "fleet", "host_findings", "prometheus", "table", "trend_findings", "verdict", "walk_findings"]

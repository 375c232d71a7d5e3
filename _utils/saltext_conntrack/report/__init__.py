"""What the numbers mean: the verdict, the diagnosis, the Prometheus textfile."""

from saltext_conntrack.report import diagnosis, prometheus, verdict

__all__ = ["diagnosis", "prometheus", "verdict"]

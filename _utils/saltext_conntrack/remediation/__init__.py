"""Guarded auto-remediation: the state kept between calls (``guard``), what every
namespace shows (``observe``), the checked options (``options``), the decision
(``decide``) and carrying it out (``apply``)."""

from saltext_conntrack.remediation import apply, decide, guard, observe, options

__all__ = ["apply", "decide", "guard", "observe", "options"]

{#- Applied by the reactor (salt/reactor/conntrack_remediate.sls) on the
    minion a table_full event names, or by hand. It takes nothing from the
    event: conntrack_remediate.remediate confirms the incident from this
    host's own counters, sizes from its own RAM, rate-limits itself and fires
    conntrack/remediated or conntrack/remediation_refused.
    Pillar: conntrack:remediate (threshold, interval, hash_ratio, cap, persist,
    flush: off by default; on, a confirmed incident also deletes the
    unreplied UDP entries to the port this minion's own walk names);
    conntrack:max as the target size, conntrack:persist as the sysctl file.
    The hashsize goes to the modprobe file conntrack.tuned keeps (the module's
    default, /etc/modprobe.d/conntrack.conf): no second file to disagree. -#}
{%- from "conntrack/map.jinja" import conntrack with context %}
{%- set r = conntrack.remediate %}
{%- set target = conntrack.max if conntrack.max is number else none %}

conntrack-remediate:
  module.run:
    - conntrack_remediate.remediate:
      - threshold: {{ r.threshold|json }}
      - interval: {{ r.interval|json }}
      - hash_ratio: {{ r.hash_ratio|json }}
      - cap: {{ r.cap|json }}
      - target: {{ target|json }}
      - persist: {{ r.persist|json }}
      - flush: {{ r.flush|json }}
      - sysctl_file: {{ (conntrack.persist or 'default')|json }}

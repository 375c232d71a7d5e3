{#- Size the conntrack table and its timeouts, at runtime, persisted, and
    across module reloads (conntrack.tuned). Pillar: conntrack:max, buckets,
    timeouts, persist, survive_reload, force. -#}
{%- from "conntrack/map.jinja" import conntrack with context %}

conntrack-tuned:
  conntrack.tuned:
    - max: {{ conntrack.max|json }}
    - buckets: {{ conntrack.buckets|json }}
    - timeouts: {{ conntrack.timeouts|json }}
    - persist: {{ conntrack.persist|json }}
    - survive_reload: {{ conntrack.survive_reload|json }}
    - force: {{ conntrack.force|json }}

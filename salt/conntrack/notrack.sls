{#- Exempt flows from connection tracking, both directions, live and persisted.
    Pillar: conntrack:notrack:flows, backend, persist. -#}
{%- from "conntrack/map.jinja" import conntrack with context %}
{%- set nt = conntrack.notrack %}

{%- if nt.flows %}

conntrack-notrack:
  conntrack.notrack:
    - flows: {{ nt.flows|json }}
    - backend: {{ nt.backend|json }}
    - persist: {{ nt.persist|json }}
{%- endif %}

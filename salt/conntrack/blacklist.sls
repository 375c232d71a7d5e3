{#- Keep the conntrack modules from loading (modprobe.d blacklist).
    Pillar: conntrack:blacklist:modules, hard, file. -#}
{%- from "conntrack/map.jinja" import conntrack with context %}
{%- set bl = conntrack.blacklist %}

{%- if bl.modules %}

conntrack-blacklisted:
  conntrack.blacklisted:
    - names: {{ bl.modules|json }}
    - hard: {{ bl.hard|json }}
    - path: {{ bl.file|json }}
{%- endif %}

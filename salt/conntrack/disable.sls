{#- Do not track at all: first take the state matches out of the saved rules
    (so a reload does not bring conntrack back), then unload the modules
    (consumers first; on a kernel with conntrack built in this fails and says
    so), then blacklist them. Each step requires the one before.
    Pillar: conntrack:disable:stateless_files, stateless_mode, force_stateless, force_unload,
    and conntrack:blacklist. -#}
{%- from "conntrack/map.jinja" import conntrack with context %}
{%- set dis = conntrack.disable %}
{%- set bl = conntrack.blacklist %}
{%- set stateless_ids = [] %}

{%- for path in dis.stateless_files %}
{%-   do stateless_ids.append('conntrack-stateless-' ~ path) %}

conntrack-stateless-{{ path }}:
  conntrack.stateless:
    - name: {{ path|json }}
    - mode: {{ dis.stateless_mode|json }}
    - force: {{ dis.force_stateless|json }}
{%- endfor %}

conntrack-unloaded:
  conntrack.unloaded:
    - force: {{ dis.force_unload|json }}
{%- if stateless_ids %}
    - require:
{%-   for id in stateless_ids %}
      - conntrack: {{ id|json }}
{%-   endfor %}
{%- endif %}

{%- if bl.modules %}

conntrack-disable-blacklisted:
  conntrack.blacklisted:
    - names: {{ bl.modules|json }}
    - hard: {{ bl.hard|json }}
    - path: {{ bl.file|json }}
    - require:
      - conntrack: conntrack-unloaded
{%- endif %}

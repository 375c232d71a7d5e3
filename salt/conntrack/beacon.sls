{#- Turn the conntrack beacon on on this minion (table_full, usage_high,
    usage_ok, drops and drift events; see the beacon's documentation).
    saltutil.sync_all first: the beacon imports the shared core (_utils), which
    sync_beacons alone would not ship.
    Pillar: conntrack:beacon (enabled, save, and the beacon's own options). -#}
{%- from "conntrack/map.jinja" import conntrack with context %}
{%- set options = {} %}
{%- for key, value in conntrack.beacon|dictsort if key not in ('enabled', 'save') and value is not none %}
{%-   do options.update({key: value}) %}
{%- endfor %}

conntrack-beacon-synced:
  saltutil.sync_all:
    - refresh: true

{%- if conntrack.beacon.enabled %}

conntrack-beacon:
  beacon.present:
    - name: conntrack
    - save: {{ conntrack.beacon.save|json }}
{%-   for key, value in options|dictsort %}
    - {{ key }}: {{ value|json }}
{%-   endfor %}
    - require:
      - saltutil: conntrack-beacon-synced
{%- else %}

conntrack-beacon:
  beacon.absent:
    - name: conntrack
    - save: {{ conntrack.beacon.save|json }}
{%- endif %}

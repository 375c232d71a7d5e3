{#- Install the formula's Prometheus alerting rules (files/conntrack-alerts.rules.yml:
    filling within 15 and 2 minutes by predict_linear, dropping, the textfile's
    full_in forecast, critical findings, insert clash) where a Prometheus server
    reads them; add the path to prometheus.yml's rule_files. With check, the new
    file must pass `promtool check rules` before it replaces the old one.
    Pillar: conntrack:alert_rules (path, check). -#}
{%- from "conntrack/map.jinja" import conntrack with context %}
{%- set rules = conntrack.alert_rules %}

conntrack-alert-rules:
  file.managed:
    - name: {{ rules.path|json }}
    - source: salt://conntrack/files/conntrack-alerts.rules.yml
    - mode: '0644'
    - makedirs: true
{%- if rules.check %}
    - check_cmd: promtool check rules
    - tmp_ext: .yml
{%- endif %}

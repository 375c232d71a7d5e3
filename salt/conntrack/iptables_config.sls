{#- Keep RHEL's iptables-config from undoing the tuning: do not unload the
    modules on restart, and re-apply the conntrack sysctls when they load.
    Pillar: conntrack:iptables_config:files (path -> settings). -#}
{%- from "conntrack/map.jinja" import conntrack with context %}

{%- for path, settings in conntrack.iptables_config.files|dictsort %}
{%-   if settings %}

conntrack-iptables-config-{{ path }}:
  conntrack.iptables_config:
    - name: {{ path|json }}
    - settings: {{ settings|json }}
{%-   endif %}
{%- endfor %}

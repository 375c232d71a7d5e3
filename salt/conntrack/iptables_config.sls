{#- Keep RHEL's iptables-config from undoing the tuning: do not unload the
    modules on restart, and re-apply the conntrack sysctls when they load.
    Pillar: conntrack:iptables_config:files (path -> settings).

    IP(6)TABLES_SYSCTL_LOAD_LIST has one owner. While conntrack:survive_reload
    is true, conntrack.tuned (init.sls) adds the running kernel's token
    (.nf_conntrack, or .ip_conntrack on CentOS 5) to the list and keeps the
    other tokens, so this SLS leaves the key alone; otherwise it sets the key
    as given. Both managing it would undo each other on every highstate. -#}
{%- from "conntrack/map.jinja" import conntrack with context %}
{%- set tuned_owns = ('IPTABLES_SYSCTL_LOAD_LIST', 'IP6TABLES_SYSCTL_LOAD_LIST')
      if conntrack.survive_reload else () %}

{%- for path, all_settings in conntrack.iptables_config.files|dictsort %}
{%-   set settings = {} %}
{%-   for key, value in (all_settings or {})|dictsort if key not in tuned_owns %}
{%-     do settings.update({key: value}) %}
{%-   endfor %}
{%-   if settings %}

conntrack-iptables-config-{{ path }}:
  conntrack.iptables_config:
    - name: {{ path|json }}
    - settings: {{ settings|json }}
{%-   endif %}
{%- endfor %}

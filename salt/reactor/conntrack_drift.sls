{#- Reactor: a conntrack beacon said a minion's runtime values drifted
    (a module reload or another agent undid what conntrack.tuned set).

    Off by default: uncomment its line in salt/reactor/conntrack.conf.
    The same guard rails as conntrack_remediate.sls: the only value taken is
    the minion id in the tag, only as a list target after a strict pattern
    check; nothing from the event reaches the minion. The minion confirms
    from its own conntrack.drift, rate-limits itself
    (conntrack:remediate:interval) and re-applies its own conntrack SLS with
    its own pillar (conntrack_remediate.reapply). -#}
{%- set parts = tag.split('/') %}
{%- if parts|length == 5 and parts[0] == 'salt' and parts[1] == 'beacon'
      and parts[3] == 'conntrack' and parts[4] == 'drift' %}
{%-   set minion_id = parts[2] %}
{%-   if minion_id|regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,253})$') %}
conntrack_reapply:
  local.conntrack_remediate.reapply:
    - tgt:
      - {{ minion_id|json }}
    - tgt_type: list
{%-   endif %}
{%- endif %}

{#- Reactor: a conntrack beacon said a minion's table is full.

    Trust nothing in the event. Salt forwards a minion's beacon events without
    proving which minion they are about: any minion can send
    salt/beacon/<another id>/conntrack/table_full with any data. So:
      * the only value taken is the minion id in the tag, and only as the
        target (list targeting: no globs, no compound expressions);
      * an id that is not a plain minion id renders nothing;
      * no event value goes into the state: conntrack.remediate decides on
        the target itself, from its own counters, with its own rate limit.
    The default state lock means a burst of events runs one state at a time;
    the rest are refused by the minion ("state already running"). -#}
{%- set parts = tag.split('/') %}
{%- if parts|length == 5 and parts[0] == 'salt' and parts[1] == 'beacon'
      and parts[3] == 'conntrack' and parts[4] in ('table_full', 'usage_high') %}
{%-   set minion_id = parts[2] %}
{%-   if minion_id|regex_match('^([A-Za-z0-9][A-Za-z0-9._-]{0,253})$') %}
conntrack_remediate:
  local.state.apply:
    - tgt:
      - {{ minion_id|json }}
    - tgt_type: list
    - args:
      - mods: conntrack.remediate
{%-   endif %}
{%- endif %}

{#- Reactor: a conntrack beacon said a minion's table is full.

    Trust nothing in the event. Salt forwards a minion's beacon events without
    proving which minion they are about: any minion can send
    salt/beacon/<another id>/conntrack/table_full with any data. So:
      * the only value taken is the minion id in the tag, and only as the
        target (list targeting: no globs, no compound expressions);
      * an id that is not a plain minion id renders nothing;
      * no event value goes into the state: conntrack.remediate decides on
        the target itself, from its own counters, with its own rate limit.

    State lock, chosen on purpose: queue False (explicit, so a minion's
    state_queue option cannot turn it into a queue), not concurrent.
      * Cost: while a reaction's state run is alive (about a second: compile
        conntrack.remediate, one module call) it is a running state.* job, so
        a highstate started in that window fails with "already running"; a
        forger can aim events at that. A reaction that arrives while a
        highstate runs is refused the same way, so an incident during a long
        highstate waits for the beacon's next table_full (one per
        min_interval while the kernel keeps logging) after it.
      * Why not queue: True: a burst of forged events would queue one state
        run each, holding the lock for the whole burst (and every highstate
        then fails for that long); queue False refuses them at once, before
        any pillar or state compile.
      * Why not concurrent: True (the module has its own file lock, so it
        would be safe): it does not free highstates (a concurrent run is
        still a running state.* job they refuse to start beside) and it
        removes the only back-pressure on a flood: each forged event would
        compile pillar and states on the target, all at once.
    Calling the execution function (local.conntrack_remediate.remediate)
    instead would take no state lock at all; it is not done so that the
    pillar-driven arguments stay in one place (conntrack/remediate.sls). -#}
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
      - queue: false
{%-   endif %}
{%- endif %}

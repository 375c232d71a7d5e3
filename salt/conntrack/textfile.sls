{#- Export the conntrack breakdown and diagnosis findings to node_exporter's
    textfile collector, on Salt's scheduler: conntrack.textfile every
    conntrack:textfile:interval seconds (one walk of the table each time, at
    most conntrack:textfile:timeout seconds or conntrack:textfile:sample entries).
    Pillar: conntrack:textfile (enabled, path, interval, timeout, sample, top, splay). -#}
{%- from "conntrack/map.jinja" import conntrack with context %}
{%- set tf = conntrack.textfile %}

{%- if tf.enabled %}

conntrack-textfile:
  schedule.present:
    - name: conntrack-textfile
    - function: conntrack.textfile
    - job_kwargs:
        path: {{ tf.path|json }}
        sample: {{ tf.sample|json }}
        timeout: {{ tf.timeout|json }}
        top: {{ tf.top|json }}
    - seconds: {{ tf.interval|json }}
    - splay: {{ tf.splay|json }}
    - maxrunning: 1
    - run_on_start: true
    - return_job: false
    - persist: true
{%- else %}

conntrack-textfile:
  schedule.absent:
    - name: conntrack-textfile
    - persist: true
{%- endif %}

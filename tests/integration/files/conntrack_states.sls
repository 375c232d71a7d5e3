# Every conntrack state, as the integration test applies it. Paths are host
# paths: the test minion's conntrack.root sends them to a tmp tree.
conntrack-size:
  conntrack.tuned:
    - max: auto
    - buckets: 131072
    - timeouts:
        tcp_established: 3600
        udp: 45

/etc/sysconfig/iptables:
  conntrack.stateless:
    - mode: comment
    # INPUT drops by policy: taking out its ESTABLISHED,RELATED accept is a
    # lockout the state refuses unless told
    - force: true

# Declared after stateless and before notrack: the state refuses while saved
# or live rules need conntrack (the notrack rules do too).
conntrack-modules-gone:
  conntrack.unloaded:
    - require:
      - conntrack: /etc/sysconfig/iptables

dns-untracked:
  conntrack.notrack:
    - flows:
        - proto: udp
          port: 53
        - proto: tcp
          ports: [8080, 8443]
    - persist: true

no-conntrack-helpers:
  conntrack.blacklisted:
    - names: [nf_conntrack_ftp, nf_nat_ftp]
    - hard: true

/etc/sysconfig/iptables-config:
  conntrack.iptables_config:
    - settings:
        IPTABLES_MODULES_UNLOAD: no
        IPTABLES_SAVE_ON_STOP: "no"
        IPTABLES_RESTORE_WAIT: 600

xt_state-allowed:
  conntrack.not_blacklisted:
    - names: [xt_state]

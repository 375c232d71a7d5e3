"""The beacon's path to ``conntrack.diagnose(walk=False)``'s findings, each fact at its own price.

``diagnosis.gather`` asks every reader again (the firewall's iptables-save and
nft, a walk of /proc for the namespaces, the boot files): 10-60 ms. An event
run has 3 ms. ``Facts`` gathers the same dict, for the same
``diagnosis.findings``, from:

- ``status``: the one the beacon's run has just read (not read again);
- ``dependents``: kept while the firewall's fingerprint is unchanged
  (``firewall.generation.Rules``), at most ``ttl`` seconds;
- the namespaces: their counters read fresh; the list of namespaces (the
  walk of /proc, most of the cost) and their owners kept ``ttl`` seconds,
  and walked again at once when a table-full line names a namespace not in it;
- ``recommend``, ``timeouts``, ``sysctl_names`` and the boot and
  iptables-config files: kept while ``max`` and ``buckets`` are unchanged, at
  most ``ttl`` seconds (they change when someone tunes the table, and a
  ``conntrack.tuned`` run changes ``max``).
"""

import os

from salt.exceptions import CommandExecutionError

from saltext_conntrack.firewall import generation
from saltext_conntrack.report import diagnosis
from saltext_conntrack.runtime import namespaces

SLOW = ("conntrack.recommend", "conntrack.timeouts", "conntrack.sysctl_names")


class Facts:
    """What one beacon's findings are judged on between runs (kept in its ``Watch``)."""

    def __init__(self, ttl=600.0):
        self.ttl = ttl
        self.rules = generation.Rules(ttl)
        self.kept = {}  # name -> (key, when, value)
        self.netns = None  # (when, namespaces.discover's answer, inodes looked for and not found)
        self.owners = {}  # pid -> namespaces.owner_of, for the processes of that answer

    def discovered(self, root, now, wanted=()):
        """``namespaces.discover``'s answer, walked again when ``ttl`` old or missing one of ``wanted``
        (a namespace still missing after that walk is gone: not walked for again)."""
        kept = self.netns
        wanted = {i for i in wanted if i is not None}
        if kept is None or not 0 <= now - kept[0] < self.ttl or wanted - kept[1].keys() - kept[2]:
            found = namespaces.discover(root)
            kept = self.netns = (now, found, wanted - found.keys())
            self.owners = {}
        return kept[1]

    def _kept(self, name, key, now, ttl, compute):
        """``(when computed, value)``: ``compute()``'s, reused while ``key`` holds and younger than ``ttl``."""
        old = self.kept.get(name)
        if old and old[0] == key and 0 <= now - old[1] < ttl:
            return old[1], old[2]
        value = compute()
        self.kept[name] = (key, now, value)
        return now, value

    def gather(self, root, status, readers, now, wanted=()):
        """``diagnosis.gather``'s dict for ``status``; ``readers``: ``__salt__`` (see ``diagnosis.READERS``)."""
        notes = []
        ask = diagnosis.asker(readers, notes)
        key = (status.get("flavour"), status.get("max"), status.get("buckets"))
        slow = {}
        for fun in SLOW:
            _, slow[fun] = self._kept(fun, key, now, self.ttl, lambda fun=fun: ask(fun))
            if slow[fun] is None:  # failed (a note): asked again next time
                self.kept.pop(fun, None)
        try:
            rules = self.rules.get(root, readers["conntrack_fw.dependents"], now)
        except CommandExecutionError as err:
            notes.append(f"conntrack_fw.dependents: {err}")
            rules = None
        _, host = self._kept("host", key, now, self.ttl, lambda: diagnosis.host_facts(root))
        found = self.discovered(root, now, wanted)
        # ctnetlink for namespaces without a stat file, where conntrack.namespaces asks it by default
        # (the live root; the minion option conntrack.netlink is the module's alone).
        live = os.path.realpath(root) == "/"
        rows = namespaces.survey(
            root, status.get("flavour"), status.get("max"), netlink_ok=live, found=found, owners=self.owners
        )
        return {
            "status": status,
            "recommend": slow["conntrack.recommend"],
            "timeouts": slow["conntrack.timeouts"],
            "names": slow["conntrack.sysctl_names"],
            "dependents": rules,
            "host": {**host, "namespaces": rows, "self_inode": namespaces.self_inode(root)},
            "notes": notes,
        }

    def findings(self, root, status, readers, now, wanted=()):
        """``conntrack.diagnose(walk=False)``'s findings, from ``status`` and what is kept.

        ``wanted``: the namespaces (inodes) the table-full lines named.
        """
        gathered = self.gather(root, status, readers, now, wanted)
        return diagnosis.run(root, gathered, walk=False)["findings"]

"""Unloading the conntrack module chain with ``rmmod``: the refusals that come
before the first module goes, and the removal in the kernel's order."""

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import commands
from saltext_conntrack.runtime import module_chain


def refuse(plan, deps_found, force):
    """Raise when unloading ``plan`` (``module_chain.unload_plan``) must not start."""
    if deps_found and not force:
        shown = "; ".join(f"{d['rule']} ({d['why']}, {d['source']})" for d in deps_found[:5])
        raise CommandExecutionError(
            f"{len(deps_found)} firewall rule(s) need conntrack, so it stays loaded: {shown}. "
            "Remove them first (see conntrack_fw.stateless) or pass force=True"
        )
    if plan["in_use"]:
        # rmmod would refuse these once it reaches them, after unloading the
        # consumers before them: a half-removed chain. Refuse before the first.
        held = ", ".join(f"{n} (refcnt {plan['refcnt'].get(n)})" for n in plan["in_use"])
        raise CommandExecutionError(
            f"{held} in use by rules or sockets, so rmmod would refuse it partway through "
            f"the unload order ({', '.join(plan['order'])}): nothing was unloaded. "
            "Remove what holds it first (force does not override this)"
        )


def remove(root, plan, removed):
    """``rmmod`` each module of ``plan`` in order, appending each to ``removed``; then
    check ``/proc/modules`` that none is left."""
    for name in plan["order"]:
        proc = commands.run(["rmmod", name], check=False)
        if proc.returncode != 0:
            raise CommandExecutionError(
                f"rmmod {name} failed after unloading {removed or 'nothing'}: {(proc.stderr or proc.stdout).strip()}"
            )
        removed.append(name)
    left = [m for m in plan["order"] if m in (module_chain.proc_modules(root) or {})]
    if left:
        raise CommandExecutionError(f"still loaded after rmmod: {', '.join(left)}")

"""Carrying out a remediation plan: the runtime change (buckets, then max), the
persisting where ``conntrack.tuned`` keeps its values, and the report that
says what did change, partial changes included.

The execution functions that change the host come in as :py:class:`Actions`:
the loader file passes them, so nothing here reads ``__salt__``.
"""

import dataclasses
import logging
from collections.abc import Callable

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack import runtime

log = logging.getLogger(__name__)

TAG_REMEDIATED = "conntrack/remediated"
TAG_REFUSED = "conntrack/remediation_refused"
TAG_REAPPLIED = "conntrack/reapplied"
TAG_REAPPLY_REFUSED = "conntrack/reapply_refused"
# The execution functions behind each callable field of Actions.
FUNCTIONS = {
    "set_buckets": "conntrack.set_buckets",
    "set_max": "conntrack.set_max",
    "persist_sysctl": "conntrack_files.persist_sysctl",
    "module_options": "conntrack_files.module_options",
    "sysctl_names": "conntrack.sysctl_names",
}


@dataclasses.dataclass(frozen=True)
class Actions:
    """The execution functions a remediation changes the host with, and where it runs."""

    set_buckets: Callable
    set_max: Callable
    persist_sysctl: Callable
    module_options: Callable
    sysctl_names: Callable
    root: str
    release: str


def fire(send, tag, data):
    """Send an event with ``send`` (``event.send``); one that cannot be sent is
    logged, never raised: the call's report must still reach its caller."""
    try:
        send(tag, data)
    except Exception as err:  # whatever broke the event bus, the remediation stands
        log.warning("conntrack_remediate: could not send %s: %s", tag, err)


def describe(err):
    """An error as a sentence: Salt's own as they are, others with their type."""
    if isinstance(err, (CommandExecutionError, SaltInvocationError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def report(status, shown, now, decision):
    """The return of a call that changed nothing (yet), with ``decision`` (``decide.gate``)."""
    return {
        "remediated": False,
        "refused": decision.refused,
        "reason": decision.reason,
        "evidence": list(decision.evidence),
        "old": {"max": status["max"], "buckets": status["buckets"]},
        "new": {"max": status["max"], "buckets": status["buckets"]},
        "persisted": {},
        "namespaces": shown,
        "time": now,
    }


def finish(ret):
    """``ret`` with its ``result``, and the event to fire: ``(tag, data)``."""
    ret["result"] = not ret.get("errors") and ret["refused"] not in ("at_ceiling", "apply_failed")
    event = {k: v for k, v in ret.items() if k != "namespaces"}
    return TAG_REMEDIATED if ret["remediated"] else TAG_REFUSED, event


def persist(actions, conf, flavour, new_max, new_buckets, test):
    """Write (or with ``test`` plan) the new values where ``conntrack.tuned`` keeps
    them, through the same editor, never lowering what the files already hold."""
    key = actions.sysctl_names()["max"]
    done = {"sysctl": actions.persist_sysctl({key: new_max}, path=conf["sysctl_file"], lower=False, test=test)}
    builtin, _ = runtime.module_chain.builtin(actions.root, actions.release)
    if new_buckets and builtin:
        # As conntrack.tuned does: options for a module that never loads would
        # never apply, so none are written.
        done["modprobe"] = {"skipped": f"{builtin} is built into this kernel: no modprobe options written"}
    elif new_buckets:
        done["modprobe"] = actions.module_options(
            flavour, {"hashsize": new_buckets}, path=conf["modprobe_file"], lower=False, test=test
        )
    return done


def relieve(diagnose, flush):
    """With ``conntrack:remediate:flush`` on: delete the entries this host's own walk names.

    ``diagnose`` and ``flush`` are ``conntrack.diagnose`` and
    ``conntrack.flush``. Only ``unreplied_udp_port``'s filter is used (unreplied
    UDP to the one port filling the table): computed here from this host's
    own table, never from an event. Returns what ``flushed`` reports.
    """
    try:
        found = {f["id"]: f for f in diagnose(top=5)["findings"]}
        relief = (found.get("unreplied_udp_port") or {}).get("relief")
        if relief is None:
            return {"skipped": "the walk names no unreplied UDP port filling the table: nothing flushed"}
        done = flush(**relief["kwargs"])
    except Exception as err:  # the relief is optional: the remediation goes on, the report says why
        return {"error": f"not flushed: {describe(err)}"}
    return {key: done.get(key) for key in ("filter", "matched", "deleted", "gone")}


def _plan_files(ret, plan, conf, flavour, actions):
    """Plan the files before the kernel changes: a file that cannot be written
    refuses the whole remediation, not its last step. True when it may go on."""
    try:
        persist(actions, conf, flavour, plan.new_max, plan.new_buckets, test=True)
    except Exception as err:  # every failure refuses, with what it was
        ret.update(errors=[f"not persisted: {describe(err)}"], refused="apply_failed")
        ret["reason"] = f"nothing changed: the new values could not be persisted: {describe(err)}"
        return False
    return True


def run(ret, plan, conf, flavour, actions):
    """Carry out ``plan`` (from ``decide.size``), recording in ``ret`` what changed."""
    ret["ceiling"] = plan.ceiling
    if plan.refused is not None:
        ret.update(refused=plan.refused, reason=plan.reason)
        return
    if conf["persist"] and not _plan_files(ret, plan, conf, flavour, actions):
        return
    current, buckets = plan.current_max, plan.current_buckets
    errors = []
    if plan.new_buckets > buckets:
        # Resize first: the bigger table should not land in the old, smaller hash.
        try:
            ret["new"]["buckets"] = actions.set_buckets(plan.new_buckets)["new"]
        except Exception as err:  # reported, and the max is still raised
            errors.append(f"buckets not resized: {describe(err)}")
    try:
        ret["new"]["max"] = actions.set_max(plan.new_max)["new"]
    except Exception as err:  # whatever it was, the event must say what did change (the buckets)
        errors.append(f"max not raised: {describe(err)}")
        ret["errors"] = errors
        ret["refused"] = "apply_failed"
        ret["reason"] = f"could not raise max from {current} to {plan.new_max}: {describe(err)}" + (
            f"; buckets already resized to {ret['new']['buckets']}" if ret["new"]["buckets"] != buckets else ""
        )
        return
    ret["remediated"] = True
    ret["reason"] = (
        f"max raised from {current} to {ret['new']['max']} "
        f"(min(ceiling {plan.ceiling}, max(2 x {current}, {plan.recommendation})))"
    )
    if conf["persist"]:
        try:
            ret["persisted"] = persist(actions, conf, flavour, ret["new"]["max"], ret["new"]["buckets"], test=False)
        except Exception as err:  # the runtime fix holds: reported, not raised
            errors.append(f"not persisted: {describe(err)}")
    if errors:
        ret["errors"] = errors
        ret["reason"] += "; but " + "; ".join(errors)


def reapply_report(decision, differences):
    """The return of a re-apply that changed nothing (yet), with ``decision`` (``decide.reapply``)."""
    return {
        "reapplied": False,
        "refused": decision.refused,
        "reason": decision.reason,
        "differences": differences,
        "result": True,
    }


def reapply_event(ret):
    return TAG_REAPPLIED if ret["reapplied"] else TAG_REAPPLY_REFUSED, ret


def reapplied(applied, differences):
    """The outcome of ``state.apply conntrack``: ``reapplied``, or ``apply_failed`` with what failed."""
    if isinstance(applied, dict):
        failed = [v.get("comment") for v in applied.values() if isinstance(v, dict) and v.get("result") is False]
    else:
        failed = [str(applied)]  # a list of errors: the SLS did not render, or a state run is going on
    if failed:
        return {
            "refused": "apply_failed",
            "result": False,
            "reason": f"state.apply conntrack failed: {failed or applied}",
        }
    return {"reapplied": True, "reason": f"{len(differences)} difference(s): conntrack formula re-applied"}

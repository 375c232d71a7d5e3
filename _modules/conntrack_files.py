"""
Conntrack settings that must survive: sysctl.d, modprobe.d, udev and
iptables-config files, and the tuning that keeps the runtime values and
those files in step.

The files are edited, not owned: every line this module does not manage stays
byte for byte, writes are atomic (temp file in the same directory, fsync,
rename) and keep the file's mode and owner. Each function plans first: it
checks every input, checks the path is one its kind may write and resolves it
(links included) under the minion option ``conntrack.root`` (default ``/``),
reads the file through that resolved path and computes the new text; only
then does it write. ``test=True`` runs the same plan and writes nothing, so it
refuses exactly what a real run refuses.

Each function writes only its own kind of file (anything else is a
``SaltInvocationError``): sysctl ``/etc/sysctl.d/*.conf`` or
``/etc/sysctl.conf``; modprobe ``/etc/modprobe.d/*.conf`` or
``/etc/modprobe.conf``; udev ``/etc/udev/rules.d/*.rules``; iptables-config
``/etc/sysconfig/ip(6)tables-config``. A symlink is written through to its
target, which must stay under ``conntrack.root``, never replaced by a file.

:depends: Linux
"""

import os
from collections.abc import Callable, Mapping
from typing import Any

try:
    from saltext_conntrack import common, persistence, runtime
except ImportError as err:  # Salt prints this as the module's reason (salt-ssh from file_roots: docs/design.md)
    raise ImportError(
        f"{err}: salt-ssh carries saltext.conntrack only where it is pip-installed on the master"
    ) from err

__virtualname__ = "conntrack_files"

# Set by Salt's loader when it loads this file (declared here for readers and type checkers).
__opts__: dict[str, Any]
__salt__: Mapping[str, Callable[..., Any]]
__grains__: Mapping[str, Any]


def __virtual__():
    return runtime.kernel.virtual(__grains__, __virtualname__)


def _root():
    return common.paths.root_of(__opts__)


def _test(test):
    return common.numbers.boolean(test, "test")


# ---------------------------------------------------------------------------
# sysctl


def persist_sysctl(values, path=None, test=False, lower=True):
    """
    Persist conntrack sysctls in a sysctl file, editing only their lines.

    ``values`` maps full keys (only ``net.netfilter.nf_conntrack_*``,
    ``net.ipv4.netfilter.ip_conntrack_*`` and ``net.nf_conntrack_max``) to
    integers within that knob's bounds (``max``/``expect_max`` 1 to
    2147483647, ``buckets`` 1 to 268435455, timeouts 1 to 2147483, the 0/1
    switches 0 or 1); a knob with no known bounds is refused. A key already
    in the file has its line rewritten in place (every line for that key, so
    the last one cannot override; ``-key = value``, systemd's form that
    ignores errors, is the same key and keeps its ``-``); a new key is
    appended. With ``lower=False`` a value already in the file that is larger
    stays (the auto-remediation never undoes a bigger size). Returns
    ``path``, ``changes`` (``{key: {old, new}}``) and ``written``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.persist_sysctl '{"net.netfilter.nf_conntrack_max": 262144}'
        salt '*' conntrack_files.persist_sysctl '{"net.netfilter.nf_conntrack_max": 262144}' test=True
    """
    test, lower = _test(test), common.numbers.boolean(lower, "lower")
    return persistence.plans.result(_root(), persistence.sysctl_plan.plan(_root(), values, path, lower), test)


def sysctl_overrides(values, path=None):
    """
    The files applied after ``path`` at boot that set one of ``values``'s keys
    to another value, so they win over it.

    ``values`` maps sysctl keys to the values persisted in ``path`` (default
    ``/etc/sysctl.d/90-conntrack.conf``, or ``/etc/sysctl.conf`` where there
    is no ``/etc/sysctl.d``). Boot (systemd-sysctl) applies the
    ``sysctl.d`` directories' files in name order, a name in ``/etc/sysctl.d``
    masking the same name in ``/run``, ``/usr/local/lib`` and ``/usr/lib``,
    then ``/etc/sysctl.conf`` (which distros also link as
    ``99-sysctl.conf``). A key's alias (``net.nf_conntrack_max`` for
    ``net.netfilter.nf_conntrack_max``) and the ``-key`` form count as the
    key. Returns a list of ``{file, key, value}``, in the order boot applies
    them; reads only.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.sysctl_overrides '{"net.netfilter.nf_conntrack_max": 262144}'
    """
    return persistence.sysctl_plan.overrides(_root(), values, path)


# ---------------------------------------------------------------------------
# modprobe.d and udev


def module_options(module, options, path=persistence.module_files.MODPROBE_FILE, test=False, lower=True):
    """
    Keep ``options MODULE key=value ...`` in a modprobe.d file.

    The options given are set in the module's ``options`` line (so
    ``hashsize`` survives a reload of the module); other options on that line
    stay. Keys are module parameter names, values integers. With
    ``lower=False`` a larger value already there stays.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.module_options nf_conntrack '{"hashsize": 131072}'
    """
    test = _test(test)
    return persistence.plans.result(
        _root(), persistence.module_files.options_plan(_root(), module, options, path, lower), test
    )


def blacklist(names, hard=False, present=True, path=persistence.module_files.BLACKLIST_FILE, test=False):
    """
    Blacklist kernel modules in a modprobe.d file (or lift the blacklist).

    ``blacklist NAME`` only stops loading by alias; ``hard=True`` also writes
    ``install NAME /bin/false`` so an explicit ``modprobe NAME`` fails too.
    ``present=False`` removes both lines for each name, and ``elsewhere``
    lists the other ``/etc/modprobe.d`` files that still blacklist one. With
    ``present=True`` and ``hard=False`` an ``install NAME /bin/false`` line
    written earlier is removed. ``warning`` says when a soft blacklist of
    ``nf_conntrack`` leaves a rule load able to load it as a dependency
    (``nft_ct``, ``xt_conntrack``, ``xt_state`` not blacklisted too).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.blacklist nf_conntrack hard=True
        salt '*' conntrack_files.blacklist '[xt_state, xt_conntrack]'
        salt '*' conntrack_files.blacklist nf_conntrack present=False
    """
    test = _test(test)
    plan = persistence.module_files.blacklist_plan(_root(), names, hard, present, path)
    ret = persistence.plans.result(_root(), plan, test)
    ret["elsewhere"] = (
        {}
        if present
        else persistence.module_files.blacklisted_elsewhere(_root(), persistence.plans.modules(names), path)
    )
    if present:
        ret["warning"] = persistence.module_files.soft_blacklist_gap(persistence.plans.modules(names), hard)
    return ret


def udev_rule(module="nf_conntrack", present=True, path=persistence.module_files.UDEV_RULE_FILE, test=False):
    """
    Keep the udev rule that re-applies conntrack sysctls whenever the module loads.

    ``ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack",
    RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"`` (the
    prefix is ``/net/ipv4/netfilter`` for ``ip_conntrack``). The file holds
    only that rule; ``present=False`` removes it.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.udev_rule
        salt '*' conntrack_files.udev_rule present=False
    """
    test = _test(test)
    return persistence.plans.result(_root(), persistence.module_files.udev_plan(_root(), module, present, path), test)


# ---------------------------------------------------------------------------
# iptables-config


def iptables_config(settings, path=persistence.iptables_config.CONFIGS[0], add_tokens=None, test=False):
    """
    Enforce keys of a RHEL ``iptables-config`` (or ``ip6tables-config``) file.

    The file is sourced by root's init script, so values are checked before the
    file is touched: yes/no keys take only ``yes``/``no`` (YAML booleans are
    accepted), ``IPTABLES_MODULES`` only module names, ``IPTABLES_SYSCTL_LOAD_LIST``
    only sysctl name parts (at most 64 items and 1024 characters each),
    ``IPTABLES_RESTORE_WAIT*`` only digits. Lines are written as
    ``KEY="value"``; a commented default line (``#KEY=...``) is replaced in
    place; every other line stays byte for byte.

    ``add_tokens`` maps list keys to tokens that must be in the list, keeping
    the tokens already there (used to add ``.nf_conntrack`` to
    ``IPTABLES_SYSCTL_LOAD_LIST``).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.iptables_config '{"IPTABLES_MODULES_UNLOAD": "no"}'
        salt '*' conntrack_files.iptables_config '{"IP6TABLES_MODULES_UNLOAD": "no"}' \\
            path=/etc/sysconfig/ip6tables-config
    """
    test = _test(test)
    return persistence.plans.result(
        _root(), persistence.iptables_config.plan(_root(), settings, path, add_tokens), test
    )


# ---------------------------------------------------------------------------
# Tuning: one plan for the runtime values and every file, then one apply


def _tuning_plan(max=None, buckets=None, timeouts=None, persist=None, survive_reload=True, force=False):
    """The :py:func:`tune` plan (see ``persistence.tuning.plan``): every check, nothing changed."""
    request = {"max": max, "buckets": buckets, "timeouts": timeouts, "persist": persist,
               "survive_reload": survive_reload, "force": force}  # fmt: skip
    release = __grains__.get("kernelrelease") or os.uname().release
    return persistence.tuning.plan(_root(), release, persistence.tuning.RuntimeCalls.of(__salt__), request)


def tune(max=None, buckets=None, timeouts=None, persist=None, survive_reload=True, force=False, test=False):
    """
    Plan a ``conntrack.tuned`` request, then apply it: the runtime values
    through ``conntrack.set_max``, ``set_buckets`` and ``set_timeout``, then
    every planned file. Nothing is changed unless the whole plan passed;
    ``test=True`` stops after the plan.

    ``max`` and ``buckets`` take an integer or ``auto``: the size
    ``conntrack.recommend`` gives, or what the kernel has now where that is
    larger (``auto`` never lowers; an explicit integer may, within
    ``conntrack.set_max``'s checks); ``timeouts`` maps short names
    (``tcp_established``, ``udp``, ...) to seconds; ``persist`` is the sysctl
    file (default ``/etc/sysctl.d/90-conntrack.conf``, or ``/etc/sysctl.conf``
    where there is no ``/etc/sysctl.d``). With ``survive_reload``
    the modprobe.d options, the udev rule and ``IPTABLES_SYSCTL_LOAD_LIST``
    are planned too. Each runtime write is checked by its setter in test
    mode, each file is planned (path resolved under ``conntrack.root``, new
    text computed). Returns the plan's ``changes``, ``pending``,
    ``overrides`` (see :py:func:`sysctl_overrides`) and ``persist``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.tune max=auto buckets=auto
        salt '*' conntrack_files.tune timeouts='{"udp": 30}' test=True
    """
    test = _test(test)
    plan = _tuning_plan(max, buckets, timeouts, persist, survive_reload, force)
    if not test:
        persistence.tuning.apply(_root(), plan, persistence.tuning.RuntimeCalls.of(__salt__), __opts__["cachedir"])
    return persistence.tuning.summary(plan)

"""
Conntrack settings that must survive: sysctl.d, modprobe.d, udev and
iptables-config files.

The files are edited, not owned: every line this module does not manage stays
byte for byte, writes are atomic (temp file in the same directory, fsync,
rename) and keep the file's mode and owner. Every input is validated before
any file is touched. Paths are resolved against the minion option
``conntrack.root`` (default ``/``), as in the ``conntrack`` module.

Every writing function takes ``test=True``: it then returns exactly what
would change and writes nothing.

Each function writes only its own kind of file (anything else is a
``SaltInvocationError``): sysctl ``/etc/sysctl.d/*.conf`` or
``/etc/sysctl.conf``; modprobe ``/etc/modprobe.d/*.conf`` or
``/etc/modprobe.conf``; udev ``/etc/udev/rules.d/*.rules``; iptables-config
``/etc/sysconfig/ip(6)tables-config``; saved rules ``/etc/sysconfig/ip(6)tables``
or ``/etc/iptables/rules.v4``/``rules.v6``; notrack ``/etc/nftables.d/*.nft`` or
``/etc/iptables/*.rules``; nft_include ``/etc/nftables.conf`` or
``/etc/sysconfig/nftables.conf``. A symlink is written through to its target (which
must stay under ``conntrack.root``), never replaced by a file.

:depends: Linux
"""

import logging
import os
import re
import tempfile

from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "conntrack_files"

INT_MAX = 2**31 - 1
TIMEOUT_MAX = INT_MAX // 1000
HASHSIZE_MAX = INT_MAX // 8

# A module name never starts with "-": the init script runs `modprobe $mod`.
MODULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Keys a conntrack sysctl file may hold: nothing outside these namespaces.
SYSCTL_KEY = re.compile(
    r"net\.netfilter\.nf_conntrack_[a-z0-9_]{1,64}"
    r"|net\.ipv4\.netfilter\.ip_conntrack_[a-z0-9_]{1,64}"
    r"|net\.nf_conntrack_max|net\.ipv4\.ip_conntrack_max"
)
# Timeout short names known on any kernel, for hosts where conntrack is not
# loaded yet (the kernel lists only the ones it has once it is).
KNOWN_TIMEOUTS = (
    "tcp_established", "tcp_syn_sent", "tcp_syn_sent2", "tcp_syn_recv", "tcp_fin_wait",
    "tcp_close_wait", "tcp_last_ack", "tcp_time_wait", "tcp_close", "tcp_max_retrans",
    "tcp_unacknowledged", "udp", "udp_stream", "udplite", "udplite_stream", "icmp",
    "icmpv6", "generic", "sctp_closed", "sctp_cookie_wait", "sctp_cookie_echoed",
    "sctp_established", "sctp_shutdown_sent", "sctp_shutdown_recd",
    "sctp_shutdown_ack_sent", "sctp_heartbeat_sent", "dccp_request", "dccp_respond",
    "dccp_partopen", "dccp_open", "dccp_closereq", "dccp_closing", "dccp_timewait",
    "gre", "gre_stream",
)  # fmt: skip
# CentOS 5's ip_conntrack knows only these (no icmpv6, dccp, sctp, gre, udplite):
# persisting another would make `sysctl -p` fail there.
KNOWN_TIMEOUTS_IP_CONNTRACK = (
    "tcp_established", "tcp_syn_sent", "tcp_syn_recv", "tcp_fin_wait", "tcp_close_wait",
    "tcp_last_ack", "tcp_time_wait", "tcp_close", "tcp_max_retrans", "udp", "udp_stream",
    "icmp", "generic",
)  # fmt: skip

# Bounds of a persisted sysctl, by the knob's name after the flavour prefix.
_SYSCTL_BOUNDS = (
    (re.compile(r"max|expect_max"), 1, INT_MAX),
    (re.compile(r"buckets"), 1, HASHSIZE_MAX),
    (re.compile(r"[a-z0-9_]*timeout[a-z0-9_]*"), 1, TIMEOUT_MAX),
    (re.compile(r"tcp_loose|tcp_be_liberal|tcp_ignore_invalid_rst|acct|timestamp|checksum|helper"), 0, 1),
    (re.compile(r"events"), 0, 2),
    (re.compile(r"log_invalid"), 0, 255),
    (re.compile(r"tcp_max_retrans"), 0, 255),
)

# iptables-config: the file is sourced by root's init script, so every value is code.
_YESNO = ("MODULES_UNLOAD", "SAVE_ON_STOP", "SAVE_ON_RESTART", "SAVE_COUNTER",
          "STATUS_NUMERIC", "STATUS_VERBOSE", "STATUS_LINENUMBERS")  # fmt: skip
IPTABLES_CONFIG_KEYS = {
    **dict.fromkeys(_YESNO, "yesno"),
    "MODULES": "modules",
    "SYSCTL_LOAD_LIST": "sysctl_list",
    "RESTORE_WAIT": "digits",
    "RESTORE_WAIT_INTERVAL": "digits",
}
_SYSCTL_TOKEN = re.compile(r"[A-Za-z0-9_.]{1,128}")

UDEV_RULE_FILE = "/etc/udev/rules.d/90-conntrack-sysctl.rules"
MODPROBE_FILE = "/etc/modprobe.d/conntrack.conf"
BLACKLIST_FILE = "/etc/modprobe.d/conntrack-blacklist.conf"
SYSCTL_FILE = "/etc/sysctl.d/90-conntrack.conf"
HEADER = "# Managed by Salt (saltext-conntrack): lines below are kept by a state.\n"


def __virtual__():
    if __grains__.get("kernel") != "Linux":  # noqa: F821
        return False, "conntrack_files: conntrack settings exist only on Linux"
    return __virtualname__


# ---------------------------------------------------------------------------
# Paths and the one atomic writer


def _root():
    return __opts__.get("conntrack.root", "/") or "/"  # noqa: F821


def _path(path):
    """A host path (``/etc/...``) resolved against ``conntrack.root``."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise SaltInvocationError(f"a file path must be absolute, got {path!r}")
    if ".." in path.split("/"):
        raise SaltInvocationError(f"a file path must not contain '..', got {path!r}")
    return os.path.join(_root(), path.lstrip("/"))


# The files each function may write, as host paths ("*" is one file name).
_ALLOWED = {
    "sysctl": ("/etc/sysctl.d/*.conf", "/etc/sysctl.conf"),
    "modprobe": ("/etc/modprobe.d/*.conf", "/etc/modprobe.conf"),
    "udev": ("/etc/udev/rules.d/*.rules",),
    "iptables-config": ("/etc/sysconfig/iptables-config", "/etc/sysconfig/ip6tables-config"),
    "saved rules": ("/etc/sysconfig/iptables", "/etc/sysconfig/ip6tables",
                    "/etc/iptables/rules.v4", "/etc/iptables/rules.v6"),
    "notrack": ("/etc/nftables.d/*.nft", "/etc/iptables/*.rules"),
    "nftables main": ("/etc/nftables.conf", "/etc/sysconfig/nftables.conf"),
}  # fmt: skip


def _allowed(path, kind):
    """``path`` when it is one of the files a ``kind`` function may write, else SaltInvocationError."""
    _path(path)
    for pattern in _ALLOWED[kind]:
        rx = re.escape(pattern).replace(r"\*", r"[A-Za-z0-9_.@+-]+")
        if re.fullmatch(rx, path) and not os.path.basename(path).startswith("."):
            return path
    raise SaltInvocationError(f"a {kind} file must be {' or '.join(_ALLOWED[kind])}, got {path!r}")


def _read_text(path):
    """(text, exists) of a host path; a missing file is empty."""
    try:
        with open(_path(path), encoding="utf-8", newline="") as fh:
            return fh.read(), True
    except FileNotFoundError:
        return "", False
    except OSError as err:
        raise CommandExecutionError(f"cannot read {_path(path)}: {err}") from err


def _atomic_write(path, text, mode=0o644):
    """Write ``text`` to ``path`` (real, already resolved) atomically.

    Temp file in the same directory, fsync, rename; an existing file's mode
    and owner are kept, a new file gets ``mode``. Not a public function of
    the module (it takes a resolved path); other functions here call it.
    """
    # A symlink stays a symlink: write through to its target, which must stay
    # under conntrack.root.
    root = os.path.realpath(_root())
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise CommandExecutionError(
            f"{path} resolves to {real}, outside {root} (conntrack.root): not written"
        )
    path = real
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
        try:
            st = os.stat(path)
            mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
        except FileNotFoundError:
            owner = None
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            if owner is not None and os.geteuid() == 0:
                os.chown(tmp, *owner)
            os.rename(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as err:
        raise CommandExecutionError(f"cannot write {path}: {err}") from err


def _finish(path, old_text, new_text, changes, test, mode=0o644, exists=True):
    ret = {"path": path, "changes": changes, "written": False}
    if new_text != old_text or (not exists and new_text):
        if not test:
            _atomic_write(_path(path), new_text, mode)
            ret["written"] = True
    return ret


def _lines(text):
    return text.splitlines(keepends=True)


def _joined(lines):
    """Join lines, making sure an appended line does not glue onto a last line without newline."""
    out = []
    for i, line in enumerate(lines):
        if i < len(lines) - 1 and not line.endswith("\n"):
            line += "\n"
        out.append(line)
    return "".join(out)


# ---------------------------------------------------------------------------
# The one validation layer


def _bool(value, name):
    if isinstance(value, bool):
        return value
    raise SaltInvocationError(f"{name} must be true or false, got {value!r}")


def _valid_integer(value, name, low, high):
    """An int in [low, high]; a string of digits is accepted, nothing else."""
    if isinstance(value, bool):
        raise SaltInvocationError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise SaltInvocationError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise SaltInvocationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _valid_modules(names):
    """A list of kernel module names (``[A-Za-z0-9_-]+``) from a name or a list."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)) or not names:
        raise SaltInvocationError(f"module names must be a name or a non-empty list, got {names!r}")
    out = []
    for name in names:
        if not isinstance(name, str) or not MODULE_NAME.fullmatch(name):
            raise SaltInvocationError(
                f"{name!r} is not a kernel module name (letters, digits, '_' and '-' only)"
            )
        if name not in out:
            out.append(name)
    return out


def _valid_sysctl_key(key):
    if not isinstance(key, str) or not SYSCTL_KEY.fullmatch(key):
        raise SaltInvocationError(
            f"{key!r} is not a conntrack sysctl key (net.netfilter.nf_conntrack_*, "
            "net.ipv4.netfilter.ip_conntrack_*, net.nf_conntrack_max)"
        )
    return key


def _iptables_key(key):
    if not isinstance(key, str):
        raise SaltInvocationError(f"iptables-config key must be a string, got {key!r}")
    match = re.fullmatch(r"IP6?TABLES_([A-Z_]+)", key)
    if not match or match.group(1) not in IPTABLES_CONFIG_KEYS:
        known = ", ".join(f"IPTABLES_{k}" for k in IPTABLES_CONFIG_KEYS)
        raise SaltInvocationError(f"unknown iptables-config key {key!r}; known: {known} (and IP6TABLES_ twins)")
    return IPTABLES_CONFIG_KEYS[match.group(1)]


def _valid_iptables_value(key, value):
    """The shell-safe string for ``key``, or SaltInvocationError."""
    kind = _iptables_key(key)
    if kind == "yesno":
        if isinstance(value, bool):  # YAML turns yes/no into booleans
            return "yes" if value else "no"
        if value in ("yes", "no"):
            return value
        raise SaltInvocationError(f"{key} takes only yes or no, got {value!r}")
    if kind == "digits":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
            return value
        raise SaltInvocationError(f"{key} takes only digits, got {value!r}")
    tokens = value if isinstance(value, (list, tuple)) else str(value).split(" ") if isinstance(value, str) else None
    if tokens is None:
        raise SaltInvocationError(f"{key} takes a space-separated list, got {value!r}")
    tokens = [t for t in tokens if t != ""]
    pattern = MODULE_NAME if kind == "modules" else _SYSCTL_TOKEN
    for token in tokens:
        if not isinstance(token, str) or not pattern.fullmatch(token):
            what = "module names" if kind == "modules" else "sysctl name parts (letters, digits, '_' and '.')"
            raise SaltInvocationError(f"{key} takes only {what}, got {token!r} in {value!r}")
    return " ".join(tokens)


def _valid_sysctl_value(key, value):
    """``value`` for ``key`` within that knob's bounds; an unknown knob is refused."""
    _valid_sysctl_key(key)
    knob = re.sub(r"^(net\.netfilter\.nf_conntrack_|net\.ipv4\.netfilter\.ip_conntrack_|net\.nf_conntrack_|net\.ipv4\.ip_conntrack_)", "", key)
    for rx, low, high in _SYSCTL_BOUNDS:
        if rx.fullmatch(knob):
            return _valid_integer(value, key, low, high)
    raise SaltInvocationError(
        f"{key} is not a conntrack sysctl this module knows the bounds of "
        "(max, expect_max, buckets, timeouts, tcp_loose, tcp_be_liberal, acct, events, ...)"
    )


def _timeout_key(short, flavour="nf_conntrack"):
    """The sysctl key of a timeout short name (``tcp_established``)."""
    proto, _, rest = short.partition("_")
    base = f"{proto}_timeout" + (f"_{rest}" if rest else "")
    if flavour == "ip_conntrack":
        return f"net.ipv4.netfilter.ip_conntrack_{base}"
    return f"net.netfilter.nf_conntrack_{base}"


def _loaded():
    return os.path.exists(_path("/proc/sys/net/netfilter/nf_conntrack_max")) or os.path.exists(
        _path("/proc/sys/net/ipv4/netfilter/ip_conntrack_max")
    )


def tuning_plan(max=None, buckets=None, timeouts=None, persist=None):  # pylint: disable=redefined-builtin
    """
    Validate a ``conntrack.tuned`` request and resolve it to concrete values.

    ``max`` and ``buckets`` take an integer or ``auto``: the size
    ``conntrack.recommend`` gives, or what the kernel has now where that is
    larger (``auto`` never lowers; an explicit integer may, and still goes
    through ``conntrack.set_max``'s checks); ``timeouts`` maps short names
    (``tcp_established``, ``udp``, ...) to seconds. Returns the runtime
    values, the sysctl keys and values to persist (under the names the running
    kernel understands), the module name, whether conntrack is loaded and the
    persistence file. Nothing is read beyond the kernel's names; nothing is
    written.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.tuning_plan max=auto buckets=auto
        salt '*' conntrack_files.tuning_plan timeouts='{"tcp_established": 3600}'
    """
    names = __salt__["conntrack.sysctl_names"]()  # noqa: F821
    flavour = "ip_conntrack" if names["max"].startswith("net.ipv4.") else "nf_conntrack"
    recommended = None

    def size(value, name, key, high):
        nonlocal recommended
        if value is None:
            return None
        if value == "auto":
            # auto never lowers: the larger of what the kernel has and the recommendation
            if recommended is None:
                recommended = __salt__["conntrack.recommend"]()  # noqa: F821
            value = recommended[key]
            held = (recommended.get("current") or {}).get(key)
            if isinstance(held, int) and not isinstance(held, bool) and held > value:
                value = held
            value = min(value, high)
        return _valid_integer(value, name, 1, high)

    plan = {
        "flavour": flavour,
        "loaded": _loaded(),
        "max": size(max, "max", "max", INT_MAX),
        "buckets": size(buckets, "buckets", "hashsize", HASHSIZE_MAX),
        "timeouts": {},
        "sysctl": {},
        "persist": persist or default_sysctl_file(),
        "rhel_configs": [
            p
            for p in ("/etc/sysconfig/iptables-config", "/etc/sysconfig/ip6tables-config")
            if os.path.isfile(_path(p))
        ],
    }
    _allowed(plan["persist"], "sysctl")
    if timeouts is None:
        timeouts = {}
    if not isinstance(timeouts, dict):
        raise SaltInvocationError(f"timeouts must be a mapping of short names to seconds, got {timeouts!r}")
    known = {short for short, key in names.items() if "_timeout" in key}
    if not plan["loaded"] or not known:
        known |= set(KNOWN_TIMEOUTS_IP_CONNTRACK if flavour == "ip_conntrack" else KNOWN_TIMEOUTS)
    for short, seconds in timeouts.items():
        if short not in known:
            raise SaltInvocationError(
                f"unknown conntrack timeout {short!r}; known: {', '.join(sorted(known))}"
            )
        plan["timeouts"][short] = _valid_integer(seconds, f"timeout {short}", 1, TIMEOUT_MAX)
    if plan["max"] is not None:
        plan["sysctl"][names["max"]] = plan["max"]
    if plan["buckets"] is not None and _buckets_writable(names["buckets"]):
        plan["sysctl"][names["buckets"]] = plan["buckets"]
    for short, seconds in sorted(plan["timeouts"].items()):
        plan["sysctl"][names.get(short) or _timeout_key(short, flavour)] = seconds
    for key in plan["sysctl"]:
        _valid_sysctl_key(key)
    return plan


def _buckets_writable(key):
    """nf_conntrack_buckets takes writes on 5.x+ (initial netns); older kernels make it 0444,
    and ``sysctl -p`` would then fail on a persisted line."""
    path = _path("/proc/sys/" + key.replace(".", "/"))
    try:
        return bool(os.stat(path).st_mode & 0o200)
    except OSError:
        return False


# ---------------------------------------------------------------------------
# sysctl persistence


def default_sysctl_file():
    """
    Where conntrack sysctls are persisted on this host.

    ``/etc/sysctl.d/90-conntrack.conf`` where ``/etc/sysctl.d`` exists,
    ``/etc/sysctl.conf`` otherwise (CentOS 5).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.default_sysctl_file
    """
    if os.path.isdir(_path("/etc/sysctl.d")):
        return SYSCTL_FILE
    return "/etc/sysctl.conf"


_SYSCTL_LINE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*=\s*(.*?)\s*$")
# Two names for one knob: the kernel keeps a short alias of the table limit.
SYSCTL_ALIASES = {
    "net.nf_conntrack_max": "net.netfilter.nf_conntrack_max",
    "net.ipv4.ip_conntrack_max": "net.ipv4.netfilter.ip_conntrack_max",
}


def _sysctl_key_of(name):
    """The key a sysctl line sets: a leading ``-`` (systemd's "ignore errors") is
    not part of it, and ``net/netfilter/x`` is ``net.netfilter.x``."""
    return name.lstrip("-").replace("/", ".")


def persist_sysctl(values, path=None, test=False, lower=True):
    """
    Persist conntrack sysctls in a sysctl file, editing only their lines.

    A line written ``-key = value`` (systemd's form that ignores errors)
    is the same key: it is rewritten in place, keeping its ``-``.

    ``values`` maps full keys (only ``net.netfilter.nf_conntrack_*``,
    ``net.ipv4.netfilter.ip_conntrack_*`` and ``net.nf_conntrack_max``) to
    integers within that knob's bounds (``max``/``expect_max`` 1 to
    2147483647, ``buckets`` 1 to 268435455, timeouts 1 to 2147483, the 0/1
    switches 0 or 1); a knob with no known bounds is refused. A key already in the file has its line rewritten in place (every
    line for that key, so the last one cannot override); a new key is
    appended. With ``lower=False`` a value already in the file that is larger
    stays (the auto-remediation never undoes a bigger size). Returns ``path``,
    ``changes`` (``{key: {old, new}}``) and ``written``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.persist_sysctl '{"net.netfilter.nf_conntrack_max": 262144}'
        salt '*' conntrack_files.persist_sysctl '{"net.netfilter.nf_conntrack_max": 262144}' test=True
    """
    if not isinstance(values, dict):
        raise SaltInvocationError(f"values must be a mapping of sysctl keys to integers, got {values!r}")
    values = {k: _valid_sysctl_value(k, v) for k, v in values.items()}
    path = _allowed(path or default_sysctl_file(), "sysctl")
    text, exists = _read_text(path)
    lines = _lines(text)
    changes = {}
    seen = set()
    for i, line in enumerate(lines):
        match = _SYSCTL_LINE.match(line)
        if not match or line.lstrip().startswith(("#", ";")):
            continue
        key = _sysctl_key_of(match.group(1))
        if key not in values:
            continue
        seen.add(key)
        held = match.group(2)
        if not lower and held.isdigit() and int(held) >= values[key]:
            continue
        if held != str(values[key]):
            changes[key] = {"old": match.group(2), "new": str(values[key])}
            lines[i] = f"{match.group(1)} = {values[key]}" + ("\n" if line.endswith("\n") else "")
    missing = [k for k in values if k not in seen]
    if missing and not text.strip():
        lines.append(HEADER)
    for key in missing:
        changes[key] = {"old": None, "new": str(values[key])}
        lines.append(f"{key} = {values[key]}\n")
    return _finish(path, text, _joined(lines), changes, test, exists=exists)


def _sysctl_applied_after(path):
    """The /etc sysctl files applied after ``path`` at boot, in order.

    systemd-sysctl (and ``sysctl --system``) applies ``/etc/sysctl.d/*.conf``
    in lexical order of the name, then ``/etc/sysctl.conf`` (which distros
    also link as ``/etc/sysctl.d/99-sysctl.conf``: counted once, where the
    link sorts). For the same key the last file wins.
    """
    order = []
    try:
        names = sorted(n for n in os.listdir(_path("/etc/sysctl.d")) if n.endswith(".conf"))
    except OSError:
        names = []
    for name in names:
        if os.path.isfile(_path(f"/etc/sysctl.d/{name}")):
            order.append(f"/etc/sysctl.d/{name}")
    real = {os.path.realpath(_path(p)): p for p in order}
    if os.path.isfile(_path("/etc/sysctl.conf")) and os.path.realpath(_path("/etc/sysctl.conf")) not in real:
        order.append("/etc/sysctl.conf")
    mine = os.path.realpath(_path(path))
    at = [i for i, p in enumerate(order) if os.path.realpath(_path(p)) == mine]
    if at:
        return order[at[-1] + 1 :]
    if path == "/etc/sysctl.conf":  # not there yet: read last
        return []
    # not written yet (test mode): where its name will sort
    return [p for p in order if not p.startswith("/etc/sysctl.d/") or os.path.basename(p) > os.path.basename(path)]


def sysctl_overrides(values, path=None):
    """
    The files applied after ``path`` at boot that set one of ``values``'s keys
    to another value, so they win over it.

    ``values`` maps sysctl keys to the values persisted in ``path`` (default
    :py:func:`default_sysctl_file`). The files after it are those in
    ``/etc/sysctl.d`` whose name sorts later, then ``/etc/sysctl.conf``
    (which systemd-sysctl reads as ``99-sysctl.conf``). A key's alias
    (``net.nf_conntrack_max`` for ``net.netfilter.nf_conntrack_max``) and the
    ``-key`` form count as the key. Returns a list of ``{file, key, value}``,
    in the order boot applies them; reads only.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.sysctl_overrides '{"net.netfilter.nf_conntrack_max": 262144}'
    """
    if not isinstance(values, dict):
        raise SaltInvocationError(f"values must be a mapping of sysctl keys to integers, got {values!r}")
    path = _allowed(path or default_sysctl_file(), "sysctl")
    wanted = {str(k): str(v) for k, v in values.items()}
    for alias, key in SYSCTL_ALIASES.items():
        if key in wanted:
            wanted.setdefault(alias, wanted[key])
        elif alias in wanted:
            wanted.setdefault(key, wanted[alias])
    found = []
    for later in _sysctl_applied_after(path):
        text, _ = _read_text(later)
        for line in _lines(text):
            match = _SYSCTL_LINE.match(line)
            if not match or line.lstrip().startswith(("#", ";")):
                continue
            key = _sysctl_key_of(match.group(1))
            if key in wanted and match.group(2) != wanted[key]:
                found.append({"file": later, "key": key, "value": match.group(2)})
    return found


# ---------------------------------------------------------------------------
# modprobe.d: options and blacklists


def _modprobe_edit(path, wanted, unwanted, test):
    """Ensure the exact lines ``wanted`` are in ``path`` (replacing the line
    ``wanted`` maps from, a regex) and the lines matching ``unwanted`` are gone."""
    text, exists = _read_text(path)
    lines = _lines(text)
    changes = {}
    keep = []
    for line in lines:
        bare = line.rstrip("\n")
        if any(rx.fullmatch(bare.strip()) for rx in unwanted):
            changes[bare.strip()] = {"old": "present", "new": "absent"}
            continue
        keep.append(line)
    for new_line, rx in wanted:
        found = [i for i, line in enumerate(keep) if rx.fullmatch(line.strip())]
        if any(keep[i].strip() == new_line for i in found):
            # drop duplicates that say something else
            for i in reversed(found):
                if keep[i].strip() != new_line:
                    changes.setdefault(new_line, {"old": keep[i].strip(), "new": new_line})
                    del keep[i]
            continue
        if found:
            changes[new_line] = {"old": keep[found[0]].strip(), "new": new_line}
            keep[found[0]] = new_line + ("\n" if keep[found[0]].endswith("\n") else "")
            for i in reversed(found[1:]):
                del keep[i]
        else:
            if not keep:
                keep.append(HEADER)
            changes[new_line] = {"old": None, "new": new_line}
            keep.append(new_line + "\n")
    return _finish(path, text, _joined(keep), changes, test, exists=exists)


def module_options(module, options, path=MODPROBE_FILE, test=False, lower=True):
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
    (module,) = _valid_modules(module)
    lower = _bool(lower, "lower")
    if not isinstance(options, dict) or not options:
        raise SaltInvocationError(f"options must be a non-empty mapping, got {options!r}")
    wanted = {}
    for key, value in options.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", key):
            raise SaltInvocationError(f"{key!r} is not a module parameter name")
        wanted[key] = _valid_integer(value, key, 0, INT_MAX)
    _allowed(path, "modprobe")
    rx = re.compile(rf"options\s+{re.escape(module)}(\s.*)?")
    text, _ = _read_text(path)
    # Every options line of the module folds into one, in the order met.
    merged = {}
    for line in _lines(text):
        if rx.fullmatch(line.strip()):
            for token in line.split()[2:]:
                key, _, value = token.partition("=")
                merged[key] = value
    for key, value in wanted.items():
        held = merged.get(key, "")
        if lower or not held.isdigit() or int(held) < value:
            merged[key] = str(value)
    parts = [f"{key}={value}" if value else key for key, value in merged.items()]
    return _modprobe_edit(path, [(f"options {module} {' '.join(parts)}", rx)], [], test)


def blacklist(names, hard=False, present=True, path=BLACKLIST_FILE, test=False):
    """
    Blacklist kernel modules in a modprobe.d file (or lift the blacklist).

    ``blacklist NAME`` only stops loading by alias; ``hard=True`` also writes
    ``install NAME /bin/false`` so an explicit ``modprobe NAME`` fails too.
    ``present=False`` removes both lines for each name. With ``present=True``
    and ``hard=False`` an ``install NAME /bin/false`` line written earlier is
    removed.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.blacklist nf_conntrack hard=True
        salt '*' conntrack_files.blacklist '[xt_state, xt_conntrack]'
        salt '*' conntrack_files.blacklist nf_conntrack present=False
    """
    names = _valid_modules(names)
    hard = _bool(hard, "hard")
    present = _bool(present, "present")
    _allowed(path, "modprobe")
    wanted, unwanted = [], []
    for name in names:
        bl = re.compile(rf"blacklist\s+{re.escape(name)}")
        inst = re.compile(rf"install\s+{re.escape(name)}\s+/bin/(false|true)")
        if present:
            wanted.append((f"blacklist {name}", bl))
            if hard:
                wanted.append((f"install {name} /bin/false", inst))
            else:
                unwanted.append(inst)
        else:
            unwanted += [bl, inst]
    ret = _modprobe_edit(path, wanted, unwanted, test)
    ret["elsewhere"] = _blacklisted_elsewhere(names, path) if not present else {}
    return ret


def _blacklisted_elsewhere(names, path):
    found = {}
    directory = _path("/etc/modprobe.d")
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return found
    for entry in entries:
        host_path = f"/etc/modprobe.d/{entry}"
        if host_path == path or not entry.endswith(".conf"):
            continue
        text, _ = _read_text(host_path)
        for name in names:
            if re.search(rf"^\s*(blacklist\s+{re.escape(name)}|install\s+{re.escape(name)}\s+/bin/false)\s*$", text, re.M):
                found.setdefault(name, []).append(host_path)
    return found


# ---------------------------------------------------------------------------
# udev


def udev_running():
    """
    Whether udev runs on this host (``/run/udev/control`` exists).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.udev_running
    """
    return os.path.exists(_path("/run/udev/control")) or os.path.isdir(_path("/run/udev/data"))


def _systemd_sysctl():
    for candidate in ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl"):
        if os.path.exists(_path(candidate)):
            return candidate
    return "/usr/lib/systemd/systemd-sysctl"


def udev_rule(module="nf_conntrack", present=True, path=UDEV_RULE_FILE, test=False):
    """
    Keep the udev rule that re-applies conntrack sysctls whenever the module loads.

    ``ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack",
    RUN+="/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter"`` (the
    prefix is ``/net/ipv4/netfilter`` for ``ip_conntrack``). The file holds
    only that rule.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.udev_rule
        salt '*' conntrack_files.udev_rule present=False
    """
    (module,) = _valid_modules(module)
    present = _bool(present, "present")
    _allowed(path, "udev")
    prefix = "/net/ipv4/netfilter" if module == "ip_conntrack" else "/net/netfilter"
    rule = (
        f'ACTION=="add", SUBSYSTEM=="module", KERNEL=="{module}", '
        f'RUN+="{_systemd_sysctl()} --prefix={prefix}"\n'
    )
    text, exists = _read_text(path)
    if present:
        new = HEADER + rule
        changes = {} if text == new else {path: {"old": text or None, "new": new}}
        return _finish(path, text, new, changes, test, exists=exists)
    ret = {"path": path, "changes": {}, "written": False}
    if exists:
        ret["changes"] = {path: {"old": text, "new": None}}
        if not test:
            try:
                os.unlink(_path(path))
            except OSError as err:
                raise CommandExecutionError(f"cannot remove {_path(path)}: {err}") from err
            ret["written"] = True
    return ret


# ---------------------------------------------------------------------------
# iptables-config


def _shell_value(raw):
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def iptables_config(settings, path="/etc/sysconfig/iptables-config", add_tokens=None, test=False):
    """
    Enforce keys of a RHEL ``iptables-config`` (or ``ip6tables-config``) file.

    The file is sourced by root's init script, so values are checked before the
    file is touched: yes/no keys take only ``yes``/``no`` (YAML booleans are
    accepted), ``IPTABLES_MODULES`` only module names, ``IPTABLES_SYSCTL_LOAD_LIST``
    only sysctl name parts, ``IPTABLES_RESTORE_WAIT*`` only digits. Lines are
    written as ``KEY="value"``; a commented default line (``#KEY=...``) is
    replaced in place; every other line stays byte for byte.

    ``add_tokens`` maps list keys to tokens that must be in the list, keeping
    the tokens already there (used to add ``.nf_conntrack`` to
    ``IPTABLES_SYSCTL_LOAD_LIST``).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.iptables_config '{"IPTABLES_MODULES_UNLOAD": "no"}'
        salt '*' conntrack_files.iptables_config '{"IP6TABLES_MODULES_UNLOAD": "no"}' path=/etc/sysconfig/ip6tables-config
    """
    settings = {} if settings is None else settings
    if not isinstance(settings, dict):
        raise SaltInvocationError(f"settings must be a mapping, got {settings!r}")
    wanted = {key: _valid_iptables_value(key, value) for key, value in settings.items()}
    for key, tokens in (add_tokens or {}).items():
        if _iptables_key(key) not in ("modules", "sysctl_list"):
            raise SaltInvocationError(f"{key} is not a list key")
        _valid_iptables_value(key, tokens)
    _allowed(path, "iptables-config")
    text, exists = _read_text(path)
    lines = _lines(text)
    current = {}
    for line in lines:
        match = re.match(r"^([A-Z0-9_]+)=(.*)$", line.rstrip("\n"))
        if match:
            current[match.group(1)] = _shell_value(match.group(2))
    for key, tokens in (add_tokens or {}).items():
        have = (wanted.get(key) if key in wanted else current.get(key, "")).split()
        tokens = [tokens] if isinstance(tokens, str) else list(tokens)
        wanted[key] = _valid_iptables_value(key, have + [t for t in tokens if t not in have])
    changes = {}
    for key, value in wanted.items():
        new_line = f'{key}="{value}"'
        active = [i for i, line in enumerate(lines) if re.match(rf"^{key}=", line)]
        if active:
            held = [_shell_value(lines[i].rstrip("\n").split("=", 1)[1]) for i in active]
            if all(v == value for v in held):
                continue  # already holds the value (quoted or not): the line stays as it is
            changes[key] = {"old": current.get(key), "new": value}
            for i in active:
                lines[i] = new_line + ("\n" if lines[i].endswith("\n") else "")
            continue
        changes[key] = {"old": None, "new": value}
        commented = [i for i, line in enumerate(lines) if re.match(rf"^#\s*{key}=", line)]
        if commented:
            i = commented[0]
            lines[i] = new_line + ("\n" if lines[i].endswith("\n") else "")
        else:
            lines.append(new_line + "\n")
    return _finish(path, text, _joined(lines), changes, test, mode=0o600, exists=exists)


# ---------------------------------------------------------------------------
# Saved rules without conntrack

# What makes a saved iptables rule need connection state.
_STATEFUL = re.compile(r"(^|\s)(-m\s+(state|conntrack)|--state|--ctstate|--ctstatus)(\s|$)")
STATELESS_MARK = "# conntrack.stateless: "


def _restore_test(path, text):
    """Run ``ip(6)tables-restore --test`` on ``text``; raise when it rejects it.
    Returns the command used, or None where there is no such command."""
    import shutil  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel

    cmd = "ip6tables-restore" if "6" in os.path.basename(path) else "iptables-restore"
    exe = shutil.which(cmd, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not exe:
        return None
    proc = subprocess.run(
        [exe, "--test"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise CommandExecutionError(
            f"{cmd} --test rejects the rewritten {path}, so it was left as it was: "
            f"{(proc.stderr or proc.stdout).strip()}"
        )
    return cmd


_STATE_MATCH = re.compile(r"\s+-m\s+(state|conntrack)(?=\s|$)")
_NEW_ONLY = re.compile(r"\s+--(ct)?state\s+NEW(?=\s|$)")
_CHAIN_LINE = re.compile(r"^:(\S+)\s+(\S+)")
_TARGET = re.compile(r"(?:^|\s)-j\s+(\S+)")


def _tokens(rule):
    import shlex  # pylint: disable=import-outside-toplevel

    try:
        return shlex.split(rule)
    except ValueError:
        return rule.split()


def _new_only_stripped(rule):
    """The rule without its state match when its only conntrack condition is
    ``--state NEW``/``--ctstate NEW`` on an ACCEPT rule, else None."""
    tokens = _tokens(rule)
    if _target(rule) != "ACCEPT":
        return None
    state_mods = [i for i, t in enumerate(tokens[:-1]) if t == "-m" and tokens[i + 1] in ("state", "conntrack")]
    options = [t for t in tokens if t.startswith("--ct") or t == "--state"]
    if len(state_mods) != 1 or options not in (["--state"], ["--ctstate"]):
        return None
    i = tokens.index(options[0])
    if i + 1 >= len(tokens) or tokens[i + 1] != "NEW" or (i > 0 and tokens[i - 1] == "!"):
        return None
    if (tokens[state_mods[0] + 1] == "state") != (options[0] == "--state"):
        return None
    stripped = _NEW_ONLY.sub("", _STATE_MATCH.sub("", rule, count=1), count=1)
    expected = [t for j, t in enumerate(tokens) if j not in (state_mods[0], state_mods[0] + 1, i, i + 1)]
    if _tokens(stripped) != expected:
        return None
    return stripped


def _target(rule):
    match = _TARGET.search(rule)
    return match.group(1) if match else None


def stateless(path="/etc/sysconfig/iptables", mode="comment", force=False, test=False):
    """
    Rewrite a saved iptables rules file so no rule uses state or conntrack matches.

    An ACCEPT rule whose only conntrack condition is ``--state NEW`` (or
    ``--ctstate NEW``) keeps its place and loses just that match
    (``-A INPUT -m state --state NEW -m tcp -p tcp --dport 22 -j ACCEPT``
    becomes ``-A INPUT -m tcp -p tcp --dport 22 -j ACCEPT``), so the service
    stays reachable. Every other rule with ``-m state``, ``--state``,
    ``-m conntrack`` or ``--ctstate``/``--ctstatus`` is commented out
    (``mode=comment``, the line becomes ``# conntrack.stateless: <rule>``) or
    dropped (``mode=remove``): dropping only its match would change its meaning
    (``-m state --state ESTABLISHED -j ACCEPT`` would accept everything).

    Taking an ACCEPT rule out of a chain whose policy is DROP, or whose last
    rule drops or rejects, takes traffic away from the host (typically the
    replies to its own connections, or SSH): that is refused unless
    ``force=True``. Every other line stays byte for byte. Where
    ``iptables-restore --test`` exists (``ip6tables-restore`` for files whose
    name has a 6), a result it rejects is never written. ``test=True`` gives
    the same verdict and writes nothing.

    Returns ``path``, ``changes`` keyed by ``line N`` (``{old: rule, new:
    rewritten rule, commented line or None}``), ``checked_with`` and ``written``.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.stateless
        salt '*' conntrack_files.stateless /etc/sysconfig/ip6tables mode=remove test=True
        salt '*' conntrack_files.stateless force=True
    """
    if mode not in ("comment", "remove"):
        raise SaltInvocationError(f"mode must be comment or remove, got {mode!r}")
    force = _bool(force, "force")
    _allowed(path, "saved rules")
    text, exists = _read_text(path)
    if not exists:
        raise CommandExecutionError(f"no saved rules file at {_path(path)}")
    lines = _lines(text)
    # chain policies and last rules, per table
    table, policy, last = None, {}, {}
    for line in lines:
        bare = line.strip()
        if bare.startswith("*"):
            table = bare[1:]
        elif _CHAIN_LINE.match(bare):
            chain, pol = _CHAIN_LINE.match(bare).groups()
            policy[(table, chain)] = pol
        elif bare.startswith("-A "):
            last[(table, bare.split()[1])] = bare
    out, changes, dropped = [], {}, []
    table = None
    for number, line in enumerate(lines, 1):
        rule = line.rstrip("\n")
        bare = rule.strip()
        if bare.startswith("*"):
            table = bare[1:]
        if bare.startswith("-A ") and _STATEFUL.search(rule):
            stripped = _new_only_stripped(bare)
            if stripped is not None:
                changes[f"line {number}"] = {"old": bare, "new": stripped}
                out.append(stripped + ("\n" if line.endswith("\n") else ""))
                continue
            chain = bare.split()[1]
            closing = _target(last.get((table, chain), "")) in ("DROP", "REJECT")
            if _target(bare) == "ACCEPT" and (policy.get((table, chain)) == "DROP" or closing):
                dropped.append(f"line {number}: {bare}")
            new = None if mode == "remove" else STATELESS_MARK + bare
            changes[f"line {number}"] = {"old": bare, "new": new}
            if new is not None:
                out.append(new + ("\n" if line.endswith("\n") else ""))
            continue
        out.append(line)
    if dropped and not force:
        raise CommandExecutionError(
            f"{path}: taking out {'; '.join(dropped)} removes an ACCEPT from a chain that "
            "drops what it does not accept, so after the next restore the host would lose "
            "traffic those rules let in (e.g. replies to its own connections, or SSH). "
            "Add stateless rules for that traffic first, or pass force=True"
        )
    new_text = "".join(out)
    ret = {"path": path, "changes": changes, "written": False, "checked_with": None}
    if changes:
        ret["checked_with"] = _restore_test(path, new_text)
        if not test:
            _atomic_write(_path(path), new_text)
            ret["written"] = True
    return ret


# ---------------------------------------------------------------------------
# notrack rules: one renderer for the live rules and the persisted file

NOTRACK_TABLE = "conntrack_notrack"
NOTRACK_CHAIN = "CONNTRACK_NOTRACK"
_PROTOS = ("tcp", "udp", "sctp", "udplite")


def _valid_flows(flows):
    if isinstance(flows, dict):
        flows = [flows]
    if not isinstance(flows, (list, tuple)) or not flows:
        raise SaltInvocationError(f"flows must be a non-empty list of {{proto, port(s)}}, got {flows!r}")
    out = []
    for flow in flows:
        if not isinstance(flow, dict) or set(flow) - {"proto", "port", "ports"}:
            raise SaltInvocationError(f"a flow is a mapping with proto and port or ports, got {flow!r}")
        proto = flow.get("proto", "tcp")
        if proto not in _PROTOS:
            raise SaltInvocationError(f"proto must be one of {', '.join(_PROTOS)}, got {proto!r}")
        ports = flow.get("ports", [])
        ports = [ports] if not isinstance(ports, (list, tuple)) else list(ports)
        if "port" in flow:
            ports.insert(0, flow["port"])
        if not ports:
            raise SaltInvocationError(f"flow {flow!r} names no port")
        for port in ports:
            port = _valid_integer(port, "port", 1, 65535)
            if (proto, port) not in out:
                out.append((proto, port))
    return out


def notrack_rules(flows, backend="nft"):
    """
    The rules that exempt ``flows`` from connection tracking, both directions.

    ``flows`` is a list of ``{proto: tcp|udp|sctp|udplite, port: N}`` (or
    ``ports: [..]``). For each port, traffic to it and from it (the replies)
    is exempted in prerouting and output. ``backend=nft`` gives the body of a
    table ``inet conntrack_notrack`` with chains at priority -300;
    ``backend=iptables`` gives ``-A CONNTRACK_NOTRACK ... -j CT --notrack``
    rules for the raw table. Pure: reads and writes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.notrack_rules '[{proto: udp, port: 53}]'
        salt '*' conntrack_files.notrack_rules '[{proto: tcp, ports: [80, 443]}]' backend=iptables
    """
    pairs = _valid_flows(flows)
    if backend == "nft":
        return [f"{proto} {way} {port} notrack" for proto, port in pairs for way in ("dport", "sport")]
    if backend == "iptables":
        return [
            f"-A {NOTRACK_CHAIN} -p {proto} -m {proto} --{way} {port} -j CT --notrack"
            for proto, port in pairs
            for way in ("dport", "sport")
        ]
    raise SaltInvocationError(f"backend must be nft or iptables, got {backend!r}")


def notrack_script(flows, backend="nft"):
    """
    A complete, idempotent script loading the notrack rules for ``backend``:
    ``nft -f`` input or ``iptables-restore --noflush`` input.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.notrack_script '[{proto: udp, port: 53}]'
    """
    rules = notrack_rules(flows, backend)
    if backend == "nft":
        body = "".join(f"\t\t{rule}\n" for rule in rules)
        return (
            f"# Managed by Salt (saltext-conntrack): flows exempt from connection tracking\n"
            f"table inet {NOTRACK_TABLE}\n"
            f"delete table inet {NOTRACK_TABLE}\n"
            f"table inet {NOTRACK_TABLE} {{\n"
            f"\tchain prerouting {{\n\t\ttype filter hook prerouting priority -300; policy accept;\n{body}\t}}\n"
            f"\tchain output {{\n\t\ttype filter hook output priority -300; policy accept;\n{body}\t}}\n"
            f"}}\n"
        )
    return (
        "# Managed by Salt (saltext-conntrack): load with iptables-restore --noflush\n"
        f"*raw\n:{NOTRACK_CHAIN} - [0:0]\n-F {NOTRACK_CHAIN}\n"
        + "".join(f"{rule}\n" for rule in rules)
        + "COMMIT\n"
    )


def notrack_persist(flows, backend="nft", path=None, test=False):
    """
    Write the notrack script for ``flows`` to ``path``.

    Default path: ``/etc/nftables.d/conntrack-notrack.nft`` (nft) or
    ``/etc/iptables/conntrack-notrack.rules`` (iptables, for
    ``iptables-restore --noflush``). The file holds only that script.

    Writing the file does not make boot load it: for nft,
    :py:func:`nft_include` adds it to the nftables service's config
    (``conntrack.notrack`` does that); the iptables file is loaded by no
    service (netfilter-persistent loads ``/etc/iptables/rules.v4``/``v6``,
    RHEL's iptables service ``/etc/sysconfig/iptables``): load it at boot
    with ``iptables-restore --noflush < FILE`` and
    ``ip6tables-restore --noflush < FILE``, after the firewall service.

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.notrack_persist '[{proto: udp, port: 53}]'
    """
    script = notrack_script(flows, backend)
    if path is None:
        path = (
            "/etc/nftables.d/conntrack-notrack.nft"
            if backend == "nft"
            else "/etc/iptables/conntrack-notrack.rules"
        )
    _allowed(path, "notrack")
    text, exists = _read_text(path)
    changes = {} if text == script else {path: {"old": text or None, "new": script}}
    return _finish(path, text, script, changes, test, exists=exists)


NFTABLES_CONFIGS = ("/etc/nftables.conf", "/etc/sysconfig/nftables.conf")


def nft_include(include="/etc/nftables.d/conntrack-notrack.nft", path=None, test=False):
    """
    Make the nftables service load ``include`` at boot: ensure the line
    ``include "INCLUDE"`` is the last rule line of its config.

    ``path``: ``/etc/nftables.conf`` (Debian, ``nftables.service``) or
    ``/etc/sysconfig/nftables.conf`` (RHEL); default: each of them that exists.
    The line goes at the end, after the ``flush ruleset`` those files start
    with; an earlier copy of the same line is moved there. Every other line
    stays byte for byte; a missing config is not created (there is no
    service to load it). Returns ``changes`` keyed by config path,
    ``written`` (the configs written) and ``configs`` (those holding the
    include after the call, or that would with ``test=True``).

    CLI Example:

    .. code-block:: bash

        salt '*' conntrack_files.nft_include
        salt '*' conntrack_files.nft_include path=/etc/sysconfig/nftables.conf test=True
    """
    _allowed(include, "notrack")
    if not include.endswith(".nft"):
        raise SaltInvocationError(f"only an nft file can be included, got {include!r}")
    line = f'include "{include}"'
    configs = [_allowed(path, "nftables main")] if path else list(NFTABLES_CONFIGS)
    ret = {"changes": {}, "written": [], "configs": []}
    for conf in configs:
        text, exists = _read_text(conf)
        if not exists:
            continue
        ret["configs"].append(conf)
        lines = _lines(text)
        content = [i for i, held in enumerate(lines) if held.strip() and not held.lstrip().startswith("#")]
        if content and lines[content[-1]].strip() == line and sum(
            1 for i in content if lines[i].strip() == line
        ) == 1:
            continue
        keep = [held for held in lines if held.strip() != line]
        new_text = _joined(keep + [line + "\n"])
        ret["changes"][conf] = {"old": None if len(keep) == len(lines) else "not last", "new": line}
        if not test:
            _atomic_write(_path(conf), new_text)
            ret["written"].append(conf)
    return ret

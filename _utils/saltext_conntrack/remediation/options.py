"""The remediation's options: defaults, and every value checked and every path
resolved before anything is read or changed."""

from saltext_conntrack import common, persistence, runtime

DEFAULTS = {
    "threshold": 90,
    "interval": 600,
    "hash_ratio": 8,
    "cap": None,
    "target": None,
    "persist": True,
    "sysctl_file": "/etc/sysctl.d/90-conntrack.conf",
    "modprobe_file": "/etc/modprobe.d/conntrack.conf",
    "flush": False,
}


def pick(name, value, configured):
    """An argument, else its configured value (``configured(name)``, None when unset), else the default."""
    if value is not None:
        return value
    found = configured(name)
    return DEFAULTS[name] if found is None else found


def interval(value):
    return common.numbers.integer(value, "interval", 0, 10**9)


def check(given, configured, root, default_sysctl_file):
    """Every option in ``given`` (arguments, None where not given) or as configured,
    checked; ``default_sysctl_file`` returns where ``conntrack.tuned`` persists,
    asked only when no other file is given."""
    conf = {name: pick(name, value, configured) for name, value in given.items()}
    conf["threshold"] = float(common.numbers.number(conf["threshold"], "threshold", 1, 100))
    conf["interval"] = interval(conf["interval"])
    conf["hash_ratio"] = common.numbers.integer(conf["hash_ratio"], "hash_ratio", 1, 64)
    for name in ("cap", "target"):
        value = conf[name]
        conf[name] = (
            None if value in (None, "", "auto") else common.numbers.integer(value, name, 1, runtime.kernel.INT_MAX)
        )
    conf["persist"] = common.numbers.boolean(conf["persist"], "persist")
    conf["flush"] = common.numbers.boolean(conf.get("flush", DEFAULTS["flush"]), "flush")
    if conf["sysctl_file"] in (None, "default", DEFAULTS["sysctl_file"]):
        # Where conntrack.tuned persists: one file, one truth.
        conf["sysctl_file"] = default_sysctl_file()
    # A path that is not one the editor may write, or that leads out of
    # conntrack.root, refuses the call before the kernel is touched, whether
    # or not this call persists: a bad argument is an error, not ignored.
    persistence.plans.target(root, conf["sysctl_file"], "sysctl")
    persistence.plans.target(root, conf["modprobe_file"], "modprobe")
    return conf

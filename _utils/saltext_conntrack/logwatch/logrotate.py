"""Where logrotate moves the followed file's rotated copies (``olddir``), read from its config.

A generation logrotate moved into an ``olddir`` while the beacon was down is
out of sight beside the file: with the directory known, it is read like any
other copy. ``olddir_for`` reads ``/etc/logrotate.conf`` and
``/etc/logrotate.d/*`` (and what they ``include``) under ``conntrack.root``,
finds the first stanza whose pattern names the file, and takes its
``olddir`` (or the global one in force when the stanza began; ``noolddir``
clears it). Relative olddirs are relative to the file's directory, as
logrotate has them.

The files are read as logrotate's own input would be, but hostile ones cannot
hurt: regular files only (links resolved, staying under the root), at most
``FILE_MAX`` bytes each and ``FILES_MAX`` files, ``include`` ``DEPTH`` deep,
script blocks skipped, and an answer that is not an existing directory is
none.
"""

import fnmatch
import logging
import os
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltext_conntrack.common import paths

log = logging.getLogger(__name__)

CONFS = ("/etc/logrotate.conf", "/etc/logrotate.d")
FILE_MAX = 256 * 1024
FILES_MAX = 256
DEPTH = 3
SCRIPTS = ("postrotate", "prerotate", "firstaction", "lastaction", "preremove")
# logrotate's default tabooext: files in an included directory it skips.
TABOO = (",v", ".cfsaved", ".disabled", ".dpkg-bak", ".dpkg-del", ".dpkg-dist", ".dpkg-new", ".dpkg-old",
         ".rpmnew", ".rpmorig", ".rpmsave", ".swp", ".ucf-dist", ".ucf-new", ".ucf-old", "~")  # fmt: skip


def _read(root, host_path):
    """The text of a regular config file under ``root``, or None (missing, not regular, too big, outside)."""
    try:
        real = paths.contained(root, paths.join(root, host_path))
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except (OSError, CommandExecutionError, SaltInvocationError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > FILE_MAX:
            return None
        return os.read(fd, FILE_MAX + 1)[:FILE_MAX].decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _expand(root, host_path):
    """``host_path`` itself, or a directory's files in name order (taboo names skipped)."""
    try:
        real = paths.contained(root, paths.join(root, host_path))
        if not os.path.isdir(real):
            return [host_path]
        names = sorted(os.listdir(real))[:FILES_MAX]
    except (OSError, CommandExecutionError, SaltInvocationError):
        return []
    return [f"{host_path.rstrip('/')}/{n}" for n in names if not n.startswith(".") and not n.endswith(TABOO)]


def _words(line):
    """A config line's words, ``"quoted words"`` kept whole, a ``#`` comment dropped."""
    out, word, quote = [], "", None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
            else:
                word += ch
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and not word:
            break
        elif ch.isspace():
            if word:
                out.append(word)
            word = ""
        else:
            word += ch
    return out + ([word] if word else [])


def matches(pattern, path):
    """Whether a logrotate (glob) ``pattern`` names ``path``: ``*`` stays inside one directory."""
    want, have = pattern.rstrip("/").split("/"), path.split("/")
    return len(want) == len(have) and all(fnmatch.fnmatchcase(h, w) for w, h in zip(want, have, strict=True))


class _Parser:
    def __init__(self, root, target):
        self.root, self.target = root, target
        self.files = 0
        self.global_olddir = None

    def file(self, host_path, depth):
        """``(found, olddir)`` from one config file and what it includes."""
        self.files += 1
        text = _read(self.root, host_path) if self.files <= FILES_MAX else None
        if text is None:
            return False, None
        patterns, stanza, script = [], None, False
        for line in text.splitlines():
            words = _words(line)
            if not words:
                continue
            if script:
                script = words[0] != "endscript"
                continue
            if stanza is not None:
                if words[0] == "}":
                    if stanza["named"]:
                        return True, stanza["olddir"]
                    stanza = None
                elif words[0] in SCRIPTS:
                    script = True
                else:
                    stanza["olddir"] = _olddir(words, stanza["olddir"])
                continue
            if "{" in words:
                patterns += words[: words.index("{")]
                named = any(matches(p, self.target) for p in patterns)
                stanza, patterns = {"named": named, "olddir": self.global_olddir}, []
            elif words[0] == "include" and len(words) > 1 and depth < DEPTH:
                for inner in _expand(self.root, words[1]):
                    found, olddir = self.file(inner, depth + 1)
                    if found:
                        return True, olddir
            elif words[0].startswith("/"):
                patterns += words  # patterns on lines before the "{"
            else:
                self.global_olddir = _olddir(words, self.global_olddir)
        return False, None


def _olddir(words, current):
    if words[0] == "noolddir":
        return None
    if words[0] == "olddir" and len(words) > 1:
        return words[1]
    return current


def olddir_for(root, host_log, confs=None):
    """The directory (real, under ``root``) logrotate's config moves ``host_log``'s copies to, or None.

    ``confs``: the config files and directories read, in order (default ``CONFS``).
    """
    parser = _Parser(root, host_log)
    for conf in CONFS if confs is None else confs:
        for host_path in _expand(root, conf):
            found, olddir = parser.file(host_path, 0)
            if not found:
                continue
            if not olddir:
                return None
            where = olddir if olddir.startswith("/") else os.path.join(os.path.dirname(host_log), olddir)
            try:
                real = paths.contained(root, paths.join(root, os.path.normpath(where)))
            except (CommandExecutionError, SaltInvocationError):
                return None
            if not os.path.isdir(real):
                return None
            log.info("conntrack beacon: %s rotates into olddir %s (logrotate config %s)", host_log, where, host_path)
            return real
    return None

"""The one atomic writer: temp file beside the target, fsync, rename, fsync the directory."""

import os
import tempfile

from salt.exceptions import CommandExecutionError

from saltext_conntrack.common import paths


def read_text(real):
    """(text, exists) of a resolved path; a missing file is empty."""
    try:
        with open(real, encoding="utf-8", newline="") as fh:
            return fh.read(), True
    except FileNotFoundError:
        return "", False
    except (OSError, UnicodeDecodeError) as err:
        raise CommandExecutionError(f"cannot read {real}: {err}") from err


def atomic_write(root, joined, text, mode=0o644):
    """Write ``text`` to ``joined`` (a path under ``root``) atomically.

    A symlink stays a symlink: the write goes to its target, which must stay
    under ``root``. An existing file keeps its mode and owner; a new one gets
    ``mode``. Returns the real path written.
    """
    real = paths.contained(root, joined)
    directory = os.path.dirname(real) or "."
    try:
        os.makedirs(directory, exist_ok=True)
        owner = None
        try:
            st = os.stat(real)
            mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
        except FileNotFoundError:
            pass
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            if owner is not None and os.geteuid() == 0:
                os.chown(tmp, *owner)
            os.rename(tmp, real)
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
        raise CommandExecutionError(f"cannot write {real}: {err}") from err
    return real

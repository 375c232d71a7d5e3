"""What every domain needs: paths under the root, the number rule, the atomic writer, external commands."""

from saltext_conntrack.common import commands, files, numbers, paths

__all__ = ["commands", "files", "numbers", "paths"]

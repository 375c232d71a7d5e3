"""logrotate's olddir for the followed file, read from its config under the root (``logwatch.logrotate``)."""

import os

from saltext_conntrack.logwatch import logrotate


def tree(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


def test_stanza_olddir_global_olddir_and_noolddir(tmp_path):
    root = tree(
        tmp_path,
        {
            "/etc/logrotate.conf": "weekly\nolddir /var/log/old\ninclude /etc/logrotate.d\n/var/log/wtmp {\n monthly\n}\n",
            "/etc/logrotate.d/rsyslog": (
                '# kernel logs\n/var/log/syslog\n"/var/log/kern.log" /var/log/auth.log {\n'
                "    rotate 4\n    postrotate\n        echo } olddir /nowhere\n    endscript\n}\n"
                "/var/log/messages {\n    noolddir\n}\n"
            ),
            "/etc/logrotate.d/app": "/srv/app/*.log {\n    olddir archive\n}\n",
            "/etc/logrotate.d/app.rpmsave": "/srv/other.log {\n olddir /var/log/old\n}\n",
        },
    )
    for rel in ("var/log/old", "srv/app/archive"):
        os.makedirs(os.path.join(root, rel))
    assert logrotate.olddir_for(root, "/var/log/kern.log") == os.path.join(root, "var/log/old")  # the global one
    assert logrotate.olddir_for(root, "/var/log/syslog") == os.path.join(root, "var/log/old")  # pattern line above
    assert logrotate.olddir_for(root, "/var/log/messages") is None  # noolddir
    assert logrotate.olddir_for(root, "/srv/app/x.log") == os.path.join(root, "srv/app/archive")  # relative
    assert logrotate.olddir_for(root, "/srv/app/sub/x.log") is None  # * stays in one directory
    assert logrotate.olddir_for(root, "/srv/other.log") is None  # a taboo file is skipped
    assert logrotate.olddir_for(root, "/var/log/none.log") is None


def test_hostile_configs_are_bounded_and_contained(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "conf").write_text("/var/log/kern.log {\n olddir /var/log/old\n}\n")
    root = tree(tmp_path / "root", {"/etc/logrotate.d/big": "#" * (logrotate.FILE_MAX + 1)})
    os.makedirs(os.path.join(root, "var/log/old"))
    os.symlink(str(outside / "conf"), os.path.join(root, "etc/logrotate.d/link"))  # leaves the root
    os.mkfifo(os.path.join(root, "etc/logrotate.conf"))  # not a regular file: never opened for a read that blocks
    (tmp_path / "root/etc/logrotate.d/loop").write_text("include /etc/logrotate.d\n")  # includes itself
    assert logrotate.olddir_for(root, "/var/log/kern.log") is None
    (tmp_path / "root/etc/logrotate.d/ok").write_text("/var/log/kern.log {\n olddir ../../../../../..\n}\n")
    assert logrotate.olddir_for(root, "/var/log/kern.log") == os.path.realpath(root)  # .. stops at the root
    (tmp_path / "root/etc/logrotate.d/ok").write_text("/var/log/kern.log {\n olddir /var/log/missing\n}\n")
    assert logrotate.olddir_for(root, "/var/log/kern.log") is None  # not a directory


def test_words_and_matches():
    assert logrotate._words('  "/a b/c" /d { # x') == ["/a b/c", "/d", "{"]
    assert logrotate.matches("/var/log/*.log", "/var/log/kern.log")
    assert not logrotate.matches("/var/log/*", "/var/log/a/b")

"""What a file reader found destroyed (``logwatch.gaps``): lost when unread bytes were seen, else unverified."""

from saltext_conntrack.logwatch import gaps


def test_nothing_destroyed_is_none():
    assert gaps.Gaps("/var/log/kern.log").take() is None


def test_lost_and_unverified_are_counted_and_taken_once():
    g = gaps.Gaps("/var/log/kern.log")
    g.note(seen=150, offset=100, what="truncated")
    g.note(seen=100, offset=100, what="truncated")
    g.note(seen=30, offset=10, what="rotated away")
    assert g.take() == {"lost": 2, "lost_bytes": 70, "unverified": 1, "unverified_bytes": 0}
    assert g.take() is None
    assert gaps.empty() == {"lost": 0, "lost_bytes": 0, "unverified": 0, "unverified_bytes": 0}


def test_a_piece_that_cannot_be_read_is_unverified_with_its_bytes():
    g = gaps.Gaps("/var/log/kern.log")
    g.doubt(120, "in an olddir")
    g.doubt(-5, "deleted")
    assert g.take() == {"lost": 0, "lost_bytes": 0, "unverified": 2, "unverified_bytes": 120}

"""The reader protocol (``logwatch.protocol``): what every kernel log reader of the beacon is."""

import pytest

from saltext_conntrack.logwatch import follow, protocol, sources


@pytest.mark.parametrize("reader", [follow.FileSource, sources.KmsgSource, sources.JournalSource])
def test_every_reader_is_a_log_reader(reader):
    assert issubclass(reader, protocol.LogReader)
    assert not reader.__abstractmethods__

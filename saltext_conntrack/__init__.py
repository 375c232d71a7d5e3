"""saltext.conntrack: Salt loader entry point.

Salt's loader looks for ``modules``, ``states``, ``beacons`` and ``runners``
subdirectories of this package; setup.cfg maps them onto the repository's
``_modules``, ``_states``, ``_beacons`` and ``_runners`` directories.
"""

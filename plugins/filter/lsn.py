# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for PostgreSQL WAL positions (LSNs): lsn_to_int, lsn_diff, lsn_to_walfile.

The arithmetic lives in module_utils/pgha_pg.py, shared with the modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import (
    DEFAULT_WAL_SEGMENT_SIZE,
    LsnError,
    lsn_diff as _lsn_diff,
    lsn_to_int as _lsn_to_int,
    lsn_to_walfile as _lsn_to_walfile,
)


def lsn_to_int(lsn):
    """'16/B374D848' -> 97500059720."""
    try:
        return _lsn_to_int(lsn)
    except LsnError as e:
        raise AnsibleFilterError('lsn_to_int: %s' % e)


def lsn_diff(a, b):
    """Bytes of WAL from b to a (a - b), like pg_wal_lsn_diff()."""
    try:
        return _lsn_diff(a, b)
    except LsnError as e:
        raise AnsibleFilterError('lsn_diff: %s' % e)


def lsn_to_walfile(lsn, timeline, segment_size=DEFAULT_WAL_SEGMENT_SIZE):
    """'4/DF75D0E0' | lsn_to_walfile(1) -> '0000000100000004000000DF'."""
    try:
        return _lsn_to_walfile(lsn, timeline, segment_size)
    except LsnError as e:
        raise AnsibleFilterError('lsn_to_walfile: %s' % e)


class FilterModule(object):
    def filters(self):
        return {
            'lsn_to_int': lsn_to_int,
            'lsn_diff': lsn_diff,
            'lsn_to_walfile': lsn_to_walfile,
        }

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter: turn a host name into a valid PostgreSQL replication slot name."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

MAX_SLOT_NAME = 63
_INVALID = re.compile(r'[^a-z0-9_]')


def slot_name(hostname):
    """Lower-case the name and replace anything but [a-z0-9_] with '_'."""
    if not isinstance(hostname, str) or not hostname:
        raise AnsibleFilterError('slot_name expects a non-empty host name string, got %r' % (hostname,))
    return _INVALID.sub('_', hostname.lower())[:MAX_SLOT_NAME]


class FilterModule(object):
    def filters(self):
        return {'slot_name': slot_name}

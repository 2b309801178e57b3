# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by pgha.cluster's database modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host name or IP address of the server.
      - When empty the module connects through O(login_unix_socket).
    type: str
    default: ''
  login_port:
    description:
      - Port of the server (also the number in the name of the Unix socket).
    type: int
    default: 5432
  login_password:
    description:
      - Password of O(login_user). When empty none is sent, and libpq may still use C(~/.pgpass).
    type: str
    default: ''
  login_db:
    description:
      - Database to connect to.
    type: str
    default: postgres
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, used when O(login_host) is empty.
    type: str
    default: /var/run/postgresql
  connect_timeout:
    description:
      - Seconds to wait for the connection to be made (libpq C(connect_timeout)).
    type: int
    default: 10
'''

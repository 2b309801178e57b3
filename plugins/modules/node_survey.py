#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: node_survey
short_description: What a runbook needs to know of one cluster member, in one call
version_added: 0.1.0
description:
  - Reads in one call, so that a runbook's survey costs one round trip per host, everything the
    runbooks of pgha.cluster decide from.
  - The replication state of the local PostgreSQL server, the same report as M(pgha.cluster.pg_replication_info)
    returns (role, timeline and its history, WAL positions, standbys and slots on a primary, WAL receiver on a
    standby).
  - Whether the node's fence marker exists (left by C(promote.yml), the start guard or the fence watch).
  - The IPv4 addresses the host holds now (the VIPs among them), returned as the facts C(all_ipv4_addresses) and
    C(default_ipv4) that the setup module's network subset would gather, so that no fact gathering is needed.
  - It never fails because PostgreSQL does not answer; it then reports RV(running=false) and the error. It fails
    only when it cannot work at all (psycopg2 missing).
options:
  fence_marker:
    description:
      - Path of the node's fence marker. Omit it to skip the check (RV(fenced) is then false).
    type: path
  crashloop_marker:
    description:
      - Path of the start guard's crash-loop marker (left after too many abnormal ends). Omit it to skip the check.
    type: path
  sync_relaxed_marker:
    description:
      - Path of the marker C(sync_relax.yml) leaves while synchronous replication is relaxed. Omit it to skip.
    type: path
  service:
    description:
      - The PostgreSQL service's systemd unit (C(postgresql@17-main)); its state is returned in RV(service_state).
        Omit it to skip.
    type: str
  login_user:
    description: Role to connect as; reading the timeline history needs a superuser or C(pg_read_server_files).
    type: str
    default: postgres
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: No diff is produced.
requirements:
  - psycopg2 (Debian package C(python3-psycopg2)) on the managed host
  - C(ip) from iproute2 on the managed host
notes:
  - "The default connection (Unix socket, user C(postgres), peer authentication) works with
    C(become: true) and C(become_user: postgres) on the database host."
  - O(connect_timeout) bounds how long a PostgreSQL that hangs may delay the survey; the runbooks use 3 seconds.
seealso:
  - module: pgha.cluster.pg_replication_info
extends_documentation_fragment:
  - pgha.cluster.connection
author:
  - pgha.cluster developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Survey this node (a dead host is reported unreachable, not failed)
  pgha.cluster.node_survey:
    fence_marker: /var/lib/postgresql/17/.pgha-fenced-main
    connect_timeout: 3
  become: true
  become_user: postgres
  register: survey

- name: Say what it is
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: {{ survey.replication.role if survey.running else 'PostgreSQL down: ' ~ survey.error }}"
'''

RETURN = r'''
running:
  description: Whether PostgreSQL answered.
  returned: always
  type: bool
  sample: true
error:
  description: Why PostgreSQL did not answer (null when it did).
  returned: always
  type: str
  sample: "connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: No such file or directory"
fenced:
  description: Whether O(fence_marker) exists.
  returned: always
  type: bool
  sample: false
replication:
  description:
    - The report of M(pgha.cluster.pg_replication_info) without its gates (RV(replication.role),
      RV(replication.timeline), RV(replication.timeline_history), C(current_lsn) and C(standbys) on a primary,
      C(receive_lsn), C(replay_lsn) and C(wal_receiver) on a standby...). Empty when PostgreSQL did not answer.
  returned: always
  type: dict
  contains:
    role:
      description: C(primary) or C(standby).
      type: str
      sample: standby
    timeline:
      description: The server's current timeline.
      type: int
      sample: 2
    timeline_history:
      description: The history of the current timeline ([] on timeline 1; null when it cannot be read).
      type: list
      elements: dict
  sample: {role: standby, timeline: 2, receive_lsn: 0/5000148, replay_lsn: 0/5000148}
crash_loop:
  description: The crash-loop marker's content (when it was left, how many abnormal ends in which window), or null.
  returned: always
  type: dict
  sample: {at: "2026-12-06T21:04:47Z", crashes: 4, window: 300, last: killed KILL}
sync_relaxed:
  description: The content of the marker sync_relax.yml leaves (since when, on which primary), or null.
  returned: always
  type: dict
  sample: {since: "2026-12-06T21:10:02Z", primary: pg1, lsn: 0/5000148}
service_state:
  description:
    - The service's systemd state (C(active_state), C(sub_state), C(restarts) - the automatic restarts since its
      last manual start -, C(result)); {} without O(service).
  returned: always
  type: dict
  sample: {active_state: activating, sub_state: auto-restart, restarts: 1, result: signal}
ansible_facts:
  description: The host's IPv4 addresses, as the setup module's network facts name them.
  returned: always
  type: dict
  contains:
    all_ipv4_addresses:
      description: Every IPv4 address on the host except loopback (VIPs included).
      type: list
      elements: str
      sample: [10.89.60.12, 10.89.60.100]
    default_ipv4:
      description: The interface of the default route and its own (primary, not secondary) address; {} without one.
      type: dict
      sample: {interface: eth0, address: 10.89.60.12}
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import (
    DatabaseError,
    ensure_psycopg2,
    error_text,
    open_connection,
    pgha_argument_spec,
)
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_replication import gather


def parse_addresses(addr_lines, route_lines):
    """(all IPv4 addresses but loopback, {interface, address} of the default route) from the output of
    `ip -o -4 addr show` and `ip -o -4 route show default`. The default address is the route's src, else
    the interface's first address that is not secondary (a VIP is added as secondary)."""
    held, by_iface = [], {}
    for line in addr_lines.splitlines():
        fields = line.split()
        if 'inet' not in fields or len(fields) < 4:
            continue
        iface = fields[1].split('@')[0]
        address = fields[fields.index('inet') + 1].split('/')[0]
        if address.startswith('127.'):
            continue
        held.append(address)
        by_iface.setdefault(iface, []).append((address, 'secondary' in fields))
    default = {}
    for line in route_lines.splitlines():
        fields = line.split()
        if not fields or fields[0] != 'default' or 'dev' not in fields:
            continue
        iface = fields[fields.index('dev') + 1]
        address = fields[fields.index('src') + 1] if 'src' in fields else None
        if address is None:
            primary = [a for a, secondary in by_iface.get(iface, []) if not secondary]
            address = primary[0] if primary else None
        if address:
            default = {'interface': iface, 'address': address}
            break
    return held, default


def read_addresses(module):
    ip = module.get_bin_path('ip', required=True)
    rc, addr_out, err = module.run_command([ip, '-o', '-4', 'addr', 'show'])
    if rc != 0:
        module.fail_json(msg='ip -o -4 addr show failed: %s' % err.strip())
    rc, route_out, err = module.run_command([ip, '-o', '-4', 'route', 'show', 'default'])
    if rc != 0:
        route_out = ''
    return parse_addresses(addr_out, route_out)


def read_marker(path):
    """A marker's JSON content ({} when it is not JSON), or None when it does not exist."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (IOError, OSError, ValueError):
        return {}


def parse_service_state(text):
    """systemctl show's KEY=VALUE lines as {active_state, sub_state, restarts, result}."""
    values = dict(line.split('=', 1) for line in text.splitlines() if '=' in line)
    restarts = values.get('NRestarts', '')
    return {'active_state': values.get('ActiveState'), 'sub_state': values.get('SubState'),
            'restarts': int(restarts) if restarts.isdigit() else None, 'result': values.get('Result')}


def read_service_state(module, service):
    if not service:
        return {}
    systemctl = module.get_bin_path('systemctl')
    if not systemctl:
        return {}
    rc, out, _err = module.run_command([systemctl, 'show', '-p', 'ActiveState', '-p', 'SubState', '-p',
                                        'NRestarts', '-p', 'Result', service])
    return parse_service_state(out) if rc == 0 else {}


def survey(module):
    held, default = read_addresses(module)
    marker = module.params['fence_marker']
    result = dict(changed=False, running=False, error=None, replication={},
                  fenced=bool(marker) and os.path.exists(marker),
                  crash_loop=read_marker(module.params['crashloop_marker']),
                  sync_relaxed=read_marker(module.params['sync_relaxed_marker']),
                  service_state=read_service_state(module, module.params['service']),
                  ansible_facts=dict(all_ipv4_addresses=held, default_ipv4=default))
    try:
        conn, cursor = open_connection(module.params, application_name='pgha.cluster.node_survey')
    except Exception as e:  # psycopg2.Error, or a bad keyword: PostgreSQL does not answer
        result['error'] = ' '.join(str(e).split()) or e.__class__.__name__
        return result
    try:
        result['replication'] = gather(cursor, conn.server_version)
        result['running'] = True
    except DatabaseError as e:
        result['error'] = error_text(e)
    finally:
        conn.close()
    return result


def main():
    argument_spec = pgha_argument_spec()
    argument_spec.update(fence_marker=dict(type='path'), crashloop_marker=dict(type='path'),
                         sync_relaxed_marker=dict(type='path'), service=dict(type='str'))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    module.exit_json(**survey(module))


if __name__ == '__main__':
    main()

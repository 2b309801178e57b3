# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the monitoring role: who is scraped where, and its preflight.

monitoring_targets: the scrape targets of every job, each named by its inventory
name, from the inventory alone (one place: the prometheus.yml template and the
tests read it). monitoring_errors: the role's variables checked before any change.
Pure functions: unit-tested in tests/unit/plugins/filter/test_monitoring.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.validate import lookup as _get
from ansible_collections.pgha.cluster.plugins.filter.validate import _is_ip, member_address

_DURATION = re.compile(r'^([1-9][0-9]*)(ms|s|m|h|d)$')
_UNITS = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600, 'd': 86400}
_URL = re.compile(r'^https?://[A-Za-z0-9.:\[\]_-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/?&=+-]*)?$')
_ROLE = re.compile(r'^[a-z_][a-z0-9_]{0,62}$')


def duration_seconds(text):
    """A Prometheus duration of one unit ('15s', '2m') in seconds."""
    m = _DURATION.match(str(text))
    if not m:
        raise AnsibleFilterError('%r is not a duration such as 15s or 2m' % (text,))
    value = int(m.group(1)) * _UNITS[m.group(2)]
    return int(value) if value == int(value) else value


def host_port(address, port):
    """'address:port', with an IPv6 address in brackets."""
    address = str(address).strip()
    return ('[%s]:%d' if ':' in address else '%s:%d') % (address, int(port))


def _default_address(hv):
    facts = _get(hv, 'ansible_facts', {}) or {}
    return _get(_get(facts, 'default_ipv4', {}) or {}, 'address') or _get(hv, 'ansible_host')


def monitoring_address(hostvars_of_host, member=False):
    """Where this host's exporters listen and are scraped: a member's address on the
    replication network (filter member_address), another host's default IPv4 address."""
    return member_address(hostvars_of_host) if member else _default_address(hostvars_of_host)


def prom_duration(seconds):
    """Prometheus's humanizeDuration of a number of seconds (what an alert's summary shows)."""
    v = float(seconds)
    if v < 1:
        return '%.4gs' % v
    whole = int(v)
    days, hours, minutes = whole // 86400, whole // 3600 % 24, whole // 60 % 60
    secs = int(v % 60)
    if days:
        return '%dd %dh %dm %ds' % (days, hours, minutes, secs)
    if hours:
        return '%dh %dm %ds' % (hours, minutes, secs)
    if minutes:
        return '%dm %ds' % (minutes, secs)
    return '%.4gs' % v


def prom_bytes(value):
    """Prometheus's humanize1024 of a number (what an alert's summary shows)."""
    v = float(value)
    if abs(v) <= 1:
        return '%.4g' % v
    prefix = ''
    for p in ('Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei', 'Zi', 'Yi'):
        if abs(v) < 1024:
            break
        prefix = p
        v /= 1024
    return '%.4g%s' % (v, prefix)


def monitoring_targets(groups, hostvars, members, ports, backup_group='backup', monitoring_group='monitoring',
                       pgbackrest=True):
    """{job: [{'instance': inventory name, 'target': 'address:port'}]} for the jobs postgres
    (the members, on their replication address), node (the members, the backup host, the
    monitoring hosts), pgbackrest (the backup host, when its engine is pgBackRest).
    members: the members' names; ports: {postgres, node, pgbackrest}."""
    backup = list(_get(groups, backup_group, []) or [])
    monitors = list(_get(groups, monitoring_group, []) or [])

    def address(name):
        hv = _get(hostvars, name, {}) or {}
        return monitoring_address(hv, name in members)

    def job(names, port):
        out = []
        for name in names:
            addr = address(name)
            if not addr:
                raise AnsibleFilterError('monitoring: no address is known for %s (its facts were not gathered)'
                                         % name)
            out.append({'instance': name, 'target': host_port(addr, port)})
        return out

    node_hosts = []
    for name in list(members) + backup + monitors:
        if name not in node_hosts:
            node_hosts.append(name)
    return {
        'postgres': job(members, ports['postgres']),
        'node': job(node_hosts, ports['node']),
        'pgbackrest': job(backup, ports['pgbackrest']) if pgbackrest else [],
    }


def monitoring_errors(variables, members, backup_hosts=(), monitoring_hosts=()):
    """Every problem with the monitoring role's variables, as messages naming the variable
    and the fix ([] when there is none). variables: {name: value} of the monitoring_* ones."""
    v = variables
    errors = []
    for name in ('monitoring_scrape_interval', 'monitoring_evaluation_interval', 'monitoring_group_wait',
                 'monitoring_group_interval', 'monitoring_repeat_interval', 'monitoring_primary_down_for', 'monitoring_not_streaming_for',
                 'monitoring_writes_blocked_for', 'monitoring_retention'):
        if not _DURATION.match(str(v.get(name, ''))):
            errors.append('%s=%r is not a duration. Fix: a whole number with one unit (s, m, h or d), e.g. 30s.'
                          % (name, v.get(name)))
    ports = {}
    for name in ('monitoring_prometheus_port', 'monitoring_alertmanager_port', 'monitoring_postgres_exporter_port',
                 'monitoring_node_exporter_port', 'monitoring_pgbackrest_exporter_port'):
        try:
            port = int(v.get(name))
        except (TypeError, ValueError):
            port = 0
        if not 1024 <= port <= 65535 or str(v.get(name)) != str(port) or isinstance(v.get(name), bool):
            errors.append('%s=%r is not a port. Fix: a number from 1024 to 65535.' % (name, v.get(name)))
        elif port in ports.values():
            errors.append('%s=%d is already %s. Fix: a port of its own.'
                          % (name, port, [k for k, p in ports.items() if p == port][0]))
        ports[name] = port
    listen = str(v.get('monitoring_listen_address') or '')
    if listen and not _is_ip(listen):
        errors.append('monitoring_listen_address=%r is not an IP address. Fix: an address of the monitoring host, or '
                      '"" for its default IPv4 address.' % listen)
    url = str(v.get('monitoring_webhook_url') or '')
    if url and not _URL.match(url):
        errors.append('monitoring_webhook_url=%r is not an http(s) URL without spaces or quotes. Fix: e.g. '
                      'https://chat.example.com/hooks/pgha, or "" for none.' % url)
    if not _ROLE.match(str(v.get('monitoring_exporter_role', ''))):
        errors.append('monitoring_exporter_role=%r is not a lower-case PostgreSQL role name. Fix: the OS user the '
                      'exporter runs as (Debian: prometheus).' % v.get('monitoring_exporter_role'))
    for name in ('monitoring_lag_bytes', 'monitoring_lag_seconds', 'monitoring_archive_ready_files',
                 'monitoring_cert_days'):
        try:
            ok = int(v.get(name)) > 0 and not isinstance(v.get(name), bool)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            errors.append('%s=%r must be a whole number above 0.' % (name, v.get(name)))
    for name in ('monitoring_slot_retained_ratio', 'monitoring_disk_free_ratio'):
        try:
            ok = 0 < float(v.get(name)) < 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            errors.append('%s=%r must be a fraction between 0 and 1, e.g. 0.8.' % (name, v.get(name)))
    ages = v.get('monitoring_backup_max_age_hours')
    if not isinstance(ages, dict) or set(ages) - set(['full', 'diff', 'incr']):
        errors.append('monitoring_backup_max_age_hours=%r must be a dict with keys full, diff, incr (hours, 0 for '
                      'no alert).' % (ages,))
    else:
        for kind, hours in sorted(ages.items()):
            try:
                ok = int(hours) >= 0 and not isinstance(hours, bool)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                errors.append('monitoring_backup_max_age_hours.%s=%r must be a whole number of hours (0: no alert).'
                              % (kind, hours))
    overlap = sorted(set(monitoring_hosts) & (set(members) | set(backup_hosts)))
    if overlap:
        errors.append('%s is in the monitoring group and is a cluster member or the backup host: the monitoring host '
                      'must not be one of the hosts whose loss it reports. Fix: a host of its own in the group.'
                      % ', '.join(overlap))
    if not monitoring_hosts:
        errors.append('the monitoring group has no host. Fix: put the Prometheus host in it, or remove the group.')
    return errors


class FilterModule(object):
    def filters(self):
        return {
            'duration_seconds': duration_seconds,
            'host_port': host_port,
            'monitoring_targets': monitoring_targets,
            'monitoring_address': monitoring_address,
            'monitoring_errors': monitoring_errors,
            'prom_bytes': prom_bytes,
            'prom_duration': prom_duration,
        }

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the pgpool role (pgpool-II in front of the cluster, never deciding a
failover), as pure functions unit-tested in tests/unit/plugins/filter/test_pgpool.py.

Every *_errors filter returns a list of messages (empty when the input is good); each
names the variable and the fix, none repeats a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.validate import (
    _pg_int,
    host_cidr,
    service_address,
    service_network_errors,
)

try:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - ansible-core depends on it
    HAS_CRYPTOGRAPHY = False

#: pgpool.conf settings that run a command or hand decisions to pgpool: with any of
#: them pgpool could promote a standby, rewrite a node or move an address on its own.
PROMOTING_SETTINGS = ('failover_command', 'follow_primary_command', 'failback_command',
                      'recovery_1st_stage_command', 'recovery_2nd_stage_command',
                      'use_watchdog', 'wd_escalation_command', 'wd_de_escalation_command',
                      'if_up_cmd', 'if_down_cmd', 'arping_cmd', 'delegate_ip')
#: Settings the role writes itself (addresses, ports, authentication, TLS, the backends,
#: the routing and the health checks it derives from its own variables).
RESERVED_SETTINGS = ('backend_clustering_mode', 'listen_addresses', 'port', 'pcp_listen_addresses', 'pcp_port',
                     'unix_socket_directories', 'socket_dir', 'pcp_socket_dir', 'enable_pool_hba', 'pool_passwd',
                     'allow_clear_text_frontend_auth', 'ssl', 'ssl_cert', 'ssl_key', 'num_init_children',
                     'max_pool', 'load_balance_mode', 'database_redirect_preference_list',
                     'disable_load_balance_on_write', 'delay_threshold', 'prefer_lower_delay_standby',
                     'sr_check_user', 'sr_check_password', 'sr_check_period', 'health_check_user', 'health_check_password', 'health_check_period',
                     'search_primary_node_timeout', 'logdir', 'pid_file_name',
                     'failover_on_backend_error', 'failover_on_backend_shutdown', 'detach_false_primary')
#: Accepted values of disable_load_balance_on_write.
WRITE_MODES = ('transaction', 'trans_transaction', 'always', 'dml_adaptive', 'off')
#: Connections each server keeps for the cluster itself (the VIP daemon, the runbooks,
#: backups, monitoring), on top of superuser_reserved_connections.
OWN_CONNECTIONS = 10

_SIZE_RE = re.compile(r'^([0-9]+)\s*(B|kB|MB|GB|TB)?$')
_SIZE_UNITS = {'B': 1, 'kB': 1024, 'MB': 1024 ** 2, 'GB': 1024 ** 3, 'TB': 1024 ** 4}
_USER_RE = re.compile(r'^[a-z_][a-z0-9_]{0,62}$')
# no separator of the files the secrets go into (pcp.conf and the PCP password file are
# colon separated lines; pool_hba and keepalived never see them)
_SECRET_UNSAFE_RE = re.compile(r'[:\\\n\r]')


def pgpool_size(value, variable='pgpool_delay_threshold'):
    """'16MB', '512kB', 1048576 -> bytes (powers of 1024, as PostgreSQL reads sizes)."""
    m = None if isinstance(value, bool) else _SIZE_RE.match(str(value).strip())
    if not m:
        raise AnsibleFilterError('%s=%r is not a size. Fix: bytes, or a number with kB, MB or GB, for example 16MB.'
                                 % (variable, value))
    return int(m.group(1)) * _SIZE_UNITS[m.group(2) or 'B']


def pgpool_aes(password, key):
    """The AES form pgpool-II's pg_enc writes into pool_passwd (and takes in
    sr_check_password / health_check_password): 'AES' + base64 of AES-256-CBC(password),
    key and IV from OpenSSL's EVP_BytesToKey(SHA-1, no salt, 1 round) of the key string.
    Deterministic, so the files stay the same from run to run."""
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError('pgpool_aes needs the Python package cryptography on the controller')
    if password in (None, '') or key in (None, ''):
        raise AnsibleFilterError('pgpool_aes: the password and the key must not be empty')
    key_bytes = str(key).encode('utf-8')
    derived, prev = b'', b''
    while len(derived) < 48:
        prev = hashlib.sha1(prev + key_bytes).digest()
        derived += prev
    padder = padding.PKCS7(128).padder()
    data = padder.update(str(password).encode('utf-8')) + padder.finalize()
    encryptor = Cipher(algorithms.AES(derived[:32]), modes.CBC(derived[32:48])).encryptor()
    return 'AES' + base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode('ascii')


def pgpool_backends(members, port=5432, data_directory=''):
    """pgpool's backends from the cluster's members (filter cluster_members, sorted by name):
    [{id, name, address, port, app_name, data_directory}], each at its service address (pgpool
    is a client). The id is the member's place in that order, so it does not move when the
    roles change after a failover."""
    return [{'id': i, 'name': m['name'], 'address': m.get('service_address') or m['address'], 'port': int(port),
             'app_name': m['slot'], 'data_directory': data_directory} for i, m in enumerate(members)]


def pgpool_desired(backends, nodes):
    """What pgpool should see, from the runbooks' survey (filter survey_nodes):
    [{id, name, role}] with role primary (a reachable, running, unfenced primary), standby
    (a reachable replica in recovery) or down (anything else). Two primaries make no
    decision: AnsibleFilterError names them (rejoin.yml ends a split brain)."""
    by_name = dict((n['name'], n) for n in nodes or [])
    desired = []
    for b in backends:
        n = by_name.get(b['name']) or {}
        role = n.get('role')
        if not n.get('reachable') or n.get('fenced') or role not in ('primary', 'standby'):
            role = 'down'
        desired.append({'id': b['id'], 'name': b['name'], 'role': role})
    primaries = [d['name'] for d in desired if d['role'] == 'primary']
    if len(primaries) > 1:
        raise AnsibleFilterError('pgpool left as it is: %s all run as primaries (a split brain). Fix: end it with '
                                 'rejoin.yml, then run site.yml.' % ' and '.join(primaries))
    return desired


def _int_in(value, low, high):
    number = _pg_int(value)
    return number if number is not None and low <= number <= high else None


def _truthy(value):
    return str(value).strip().lower() in ('on', 'true', 'yes', '1')


def pgpool_errors(conf):
    """The pgpool role's variables, before any host changes. conf: a dict of the role's
    variables plus hosts (the pgpool group), member_names, max_connections,
    superuser_reserved_connections, keepalived_router_ids ({writer, reader}) and
    keepalived_vips (the cluster's own VIPs)."""
    errors = []
    hosts = list(conf.get('hosts') or [])
    group = conf.get('pgpool_group', 'pgpool')
    vip = str(conf.get('pgpool_vip') or '').strip()
    if vip:
        try:
            iface = ipaddress.ip_interface(vip)
            if '/' not in vip:
                raise ValueError
        except ValueError:
            errors.append('pgpool_vip=%r is not an address with its prefix length. Fix: for example 10.0.0.50/24.'
                          % vip)
            iface = None
        if iface is not None:
            errors.extend(service_network_errors('pgpool_vip', vip, conf.get('service_network')))
        if len(hosts) < 2:
            errors.append('pgpool_vip is set but the group %r has %d host%s: the VIP would have no pgpool to move '
                          'to when that one dies. Fix: add a second host to the group %r (the reserve pgpool), or '
                          'remove pgpool_vip and connect to the pgpool host itself.'
                          % (group, len(hosts), '' if len(hosts) == 1 else 's', group))
        router = _int_in(conf.get('pgpool_vip_router_id'), 1, 255)
        if router is None:
            errors.append('pgpool_vip_router_id=%r is not a VRRP router id. Fix: a number from 1 to 255.'
                          % (conf.get('pgpool_vip_router_id'),))
        for which, other in sorted((conf.get('keepalived_router_ids') or {}).items()):
            if other not in (None, '') and router is not None and _int_in(other, 1, 255) == router:
                errors.append('pgpool_vip_router_id=%s is also keepalived_%s_router_id: two VRRP instances with one '
                              'router id on one network take each other\'s adverts. Fix: another number.'
                              % (router, which))
        for which, other in sorted((conf.get('keepalived_vips') or {}).items()):
            if iface is not None and other and str(other).split('/', maxsplit=1)[0] == str(iface.ip):
                errors.append('pgpool_vip %s is also keepalived_%s_vip. Fix: an address of its own.' % (iface.ip, which))
        if conf.get('pgpool_vip_advert_int') is not None:
            try:
                advert = float(conf.get('pgpool_vip_advert_int'))
            except (TypeError, ValueError):
                advert = -1
            if not 0.01 <= advert <= 40:
                errors.append('pgpool_vip_advert_int=%r is not a VRRP advert interval. Fix: seconds from 0.01 to 40.'
                              % (conf.get('pgpool_vip_advert_int'),))
    elif not hosts:
        errors.append('the group %r has no host. Fix: list the pgpool hosts in it.' % group)
    try:
        pgpool_size(conf.get('pgpool_delay_threshold'))
    except AnsibleFilterError as exc:
        errors.append(str(exc))
    for name, low, high in (('pgpool_port', 1, 65535), ('pgpool_pcp_port', 1, 65535),
                            ('pgpool_num_init_children', 1, 10000), ('pgpool_max_pool', 1, 100),
                            ('pgpool_health_check_period', 1, 3600), ('pgpool_sr_check_period', 1, 3600),
                            ('pgpool_search_primary_node_timeout', 1, 86400)):
        if _int_in(conf.get(name), low, high) is None:
            errors.append('%s=%r is not a number from %d to %d.%s'
                          % (name, conf.get(name), low, high,
                             ' 0 would let pgpool wait forever for a primary and serve nothing meanwhile.'
                             if name == 'pgpool_search_primary_node_timeout' else
                             ' Without it pgpool never notices a dead server.' if name == 'pgpool_health_check_period'
                             else ''))
    if conf.get('pgpool_port') is not None and str(conf.get('pgpool_port')) == str(conf.get('pgpool_pcp_port')):
        errors.append('pgpool_port and pgpool_pcp_port are both %s. Fix: two ports.' % conf.get('pgpool_port'))
    if conf.get('pgpool_disable_load_balance_on_write') not in WRITE_MODES:
        errors.append('pgpool_disable_load_balance_on_write=%r is not one of %s.'
                      % (conf.get('pgpool_disable_load_balance_on_write'), ', '.join(WRITE_MODES)))
    for name in ('pgpool_user', 'pgpool_pcp_user'):
        if not _USER_RE.match(str(conf.get(name) or '')):
            errors.append('%s=%r is not a plain lower-case name. Fix: letters, digits and _.' % (name, conf.get(name)))
    for name, what in (('pgpool_password', 'the password of pgpool_user (health and replication checks)'),
                       ('pgpool_pcp_password', 'the password of PCP, with which the runbooks attach and detach'),
                       ('pgpool_key', 'the key pgpool decrypts pool_passwd with')):
        value = conf.get(name)
        if value in (None, ''):
            errors.append('%s is empty: it is %s. Fix: set it (from a vault).' % (name, what))
        elif _SECRET_UNSAFE_RE.search(str(value)):
            errors.append('%s holds a colon, a backslash or a line break, which the files it goes into cannot '
                          'hold. Fix: another secret.' % name)
    users = conf.get('pgpool_users')
    if not isinstance(users, list):
        errors.append('pgpool_users must be a list of {name, password}.')
        users = []
    seen = set()
    for i, user in enumerate(users):
        if not isinstance(user, dict) or not _USER_RE.match(str(user.get('name') or '')):
            errors.append('pgpool_users[%d] needs a name that is a plain lower-case name.' % i)
            continue
        if user['name'] in seen or user['name'] == conf.get('pgpool_user'):
            errors.append('pgpool_users lists %s twice (pgpool_user is added by the role).' % user['name'])
        seen.add(user['name'])
        if user.get('password') in (None, ''):
            errors.append('pgpool_users: %s has no password: pgpool needs it to log in to the servers with '
                          'SCRAM. Fix: give it the same password as the database role.' % user['name'])
    settings = conf.get('pgpool_settings') or {}
    if not isinstance(settings, dict):
        errors.append('pgpool_settings must be a dict of pgpool.conf settings.')
        settings = {}
    for key in sorted(settings):
        low = str(key).strip().lower()
        value = settings[key]
        if low in PROMOTING_SETTINGS or low.startswith('backend_'):
            if low == 'use_watchdog' and not _truthy(value):
                continue
            if low in PROMOTING_SETTINGS and low != 'use_watchdog' and str(value).strip() in ('', "''"):
                continue
            errors.append('pgpool_settings.%s is refused: %s. pgpool never decides a failover here: promote.yml, '
                          'switchover.yml, rejoin.yml and restore.yml change roles and bring every pgpool in line. '
                          'Fix: remove it.'
                          % (key, 'the role writes the backends from the cluster\'s members'
                             if low.startswith('backend_') else
                             'with it pgpool would run commands or move addresses when it loses a server'))
        elif low in RESERVED_SETTINGS:
            errors.append('pgpool_settings.%s is refused: the role sets it from its own variables. Fix: remove it '
                          '(see the pgpool role\'s variables).' % key)
        elif re.search(r"[\n\r']", str(value)):
            errors.append('pgpool_settings.%s holds a quote or a line break. Fix: remove them.' % key)
    conns = _int_in(conf.get('max_connections', 100), 1, 262143)
    reserved = _int_in(conf.get('superuser_reserved_connections', 3), 0, 262143) or 0
    nic = _int_in(conf.get('pgpool_num_init_children'), 1, 10000)
    pool = _int_in(conf.get('pgpool_max_pool'), 1, 100)
    if conns and nic and pool and hosts:
        need = len(hosts) * nic * pool
        room = conns - reserved - OWN_CONNECTIONS
        if need > room:
            errors.append('%s pgpool hosts x pgpool_num_init_children=%s x pgpool_max_pool=%s = %s connections to '
                          'each server, more than max_connections=%s leaves (%s, after %s reserved for superusers '
                          'and %d for the cluster itself): clients would be refused when pgpool is busy. Fix: lower '
                          'pgpool_num_init_children or pgpool_max_pool, or raise max_connections in '
                          'postgresql_settings to %d.'
                          % (len(hosts), nic, pool, need, conns, room, reserved, OWN_CONNECTIONS,
                             need + reserved + OWN_CONNECTIONS))
    return errors


def pgpool_host_addresses(hosts, hostvars):
    """Every pgpool host's address, in the group's order: its pgpool_host_address, else the
    address filter service_address finds for it (its address in postgresql_service_network, its
    default IPv4 address, its ansible_host), '' when none is known."""
    out = []
    for host in hosts or []:
        hv = hostvars.get(host, {}) if hasattr(hostvars, 'get') else {}
        addr = hv.get('pgpool_host_address')
        if addr in (None, '') or '{{' in str(addr):
            addr = service_address(hv)
        out.append(str(addr or ''))
    return out


def pgpool_hba_entries(addresses):
    """The cluster's pg_hba rules for the pgpool hosts: every database and user over TLS with
    SCRAM (pgpool logs in as the client's user), one /32 (or /128) per host."""
    return [{'contype': 'hostssl', 'databases': 'all', 'users': 'all', 'source': host_cidr(addr),
             'method': 'scram-sha-256'} for addr in sorted(set(a for a in addresses if a))]


class FilterModule(object):
    def filters(self):
        return {
            'pgpool_aes': pgpool_aes,
            'pgpool_size': pgpool_size,
            'pgpool_backends': pgpool_backends,
            'pgpool_desired': pgpool_desired,
            'pgpool_errors': pgpool_errors,
            'pgpool_hba_entries': pgpool_hba_entries,
            'pgpool_host_addresses': pgpool_host_addresses,
        }

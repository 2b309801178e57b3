# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inputs that would silently break the collection's own promises, refused before any host
changes: open access through pg_hba, settings that lose durability, a replication connection
pg_hba refuses, a superuser as the replication role, a VIP another host answers for.

Each *_errors function returns a list of messages (empty when the input is good); each message
names the variable, says what it would break and how to fix it, and never repeats a secret.
Where a refusal can be lifted on purpose, the message names the risk to list in
postgresql_accepted_risks - one variable, each risk named for what it costs.

Pure Python; unit-tested in tests/unit/plugins/plugin_utils/test_safety.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

#: The risks postgresql_accepted_risks may list, and what each one costs.
RISKS = {
    'network_logins_without_password':
        'anyone who reaches the server from that source logs in as the role the entry names, without a password',
    'weak_password_methods':
        'the password travels in clear (password) or as an MD5 challenge (md5) that a copy of the traffic cracks',
    'passwords_without_tls':
        'the login and the session travel unencrypted: anyone on the path reads them',
    'local_logins_as_anyone':
        'every account on the host logs in as any role, the superuser included',
    'data_corruption':
        'a crash of the host can corrupt the data directory, or damage goes unnoticed',
    'acknowledged_commit_loss':
        'commits the clients saw acknowledged can be lost on a crash or a failover',
    'unbounded_wal_retention':
        'a replica that stays down keeps its slot holding WAL until the primary\'s disk is full',
    'passwords_in_server_log':
        'statements that set passwords (the roles\' own ALTER ROLE ... PASSWORD) are written to the server log',
}

ACCEPT_VAR = 'postgresql_accepted_risks'

_HBA_KEYS = ('contype', 'databases', 'users', 'address', 'source', 'src', 'netmask', 'method', 'options',
             'comment', 'state')
_HBA_CONTYPES = ('local', 'host', 'hostssl', 'hostnossl', 'hostgssenc', 'hostnogssenc')
#: Methods that carry a password (or its proof) over the connection.
_PASSWORD_METHODS = ('password', 'md5', 'scram-sha-256', 'ldap', 'pam', 'radius')
#: Connection types a plain, unencrypted TCP connection can match.
_PLAIN_CONTYPES = ('host', 'hostnossl', 'hostnogssenc')
_WORD_RE = re.compile(r'^[^\s\x00-\x1f\x7f]+$')
_CONTROL_RE = re.compile(r'[\x00-\x1f\x7f]')
_LOOPBACK = (ipaddress.ip_network('127.0.0.0/8'), ipaddress.ip_network('::1/128'))


def _refusal(var, what, risk, fix):
    return ('%s %s: %s. Fix: %s; or, if you mean it, add %s to %s.'
            % (var, what, RISKS[risk], fix, risk, ACCEPT_VAR))


def _accepted(accepted):
    return set(str(a) for a in (accepted or []))


def source_is_local(source, netmask=None):
    """Whether a pg_hba source only ever matches this host itself (samehost, or loopback networks)."""
    text = str(source).strip()
    if text == 'samehost':
        return True
    try:
        if netmask not in (None, ''):
            net = ipaddress.ip_network('%s/%s' % (text, str(netmask).strip()), strict=False)
        else:
            net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False  # all, samenet, a host name or a domain: other hosts
    return any(net.version == lo.version and net.subnet_of(lo) for lo in _LOOPBACK)


def hba_errors(entries, varname='postgresql_hba_entries', accepted=()):
    """What in pg_hba entries (community.postgresql.postgresql_pg_hba's rules) would open the server,
    carry passwords without TLS, or break pg_hba.conf. accepted: postgresql_accepted_risks."""
    if entries in (None, ''):
        return []
    if not isinstance(entries, list):
        return ['%s must be a list of pg_hba rules ({contype, databases, users, source, method}).' % varname]
    accepted = _accepted(accepted)
    errors = []
    for i, entry in enumerate(entries):
        var = '%s[%d]' % (varname, i)
        if not isinstance(entry, dict):
            errors.append('%s must be a dict ({contype, databases, users, source, method}).' % var)
            continue
        unknown = sorted(set(str(k) for k in entry) - set(_HBA_KEYS))
        if unknown:
            errors.append('%s has unknown keys %s. Fix: use %s.' % (var, ', '.join(unknown), ', '.join(_HBA_KEYS)))
            continue
        bad = [k for k in ('contype', 'databases', 'users', 'address', 'source', 'src', 'netmask', 'method')
               if entry.get(k) is not None and not _WORD_RE.match(str(entry[k]))]
        bad += [k for k in ('options', 'comment') if entry.get(k) is not None and _CONTROL_RE.search(str(entry[k]))]
        if bad:
            errors.append('%s: %s hold%s a space, a newline or another control character, which would end the line '
                          'in pg_hba.conf and start another. Fix: one word each (lists comma-separated, no spaces).'
                          % (var, ', '.join(bad), 's' if len(bad) == 1 else ''))
            continue
        if str(entry.get('state', 'present')) == 'absent':
            continue
        contype = str(entry.get('contype', '')).strip()
        if contype not in _HBA_CONTYPES:
            errors.append('%s contype %r is not a pg_hba connection type. Fix: one of %s (hostssl for TCP).'
                          % (var, entry.get('contype'), ', '.join(_HBA_CONTYPES)))
            continue
        # the module's own default method is md5
        method = str(entry.get('method', 'md5')).strip()
        users = str(entry.get('users', 'all'))
        if contype == 'local':
            if method == 'trust' and 'local_logins_as_anyone' not in accepted:
                errors.append(_refusal(var, '(local, users %s, method trust) is refused' % users,
                                       'local_logins_as_anyone', 'use peer (the OS account must match the role) or '
                                       'scram-sha-256'))
            continue
        source = entry.get('address', entry.get('source', entry.get('src', 'samehost')))
        local = source_is_local(source, entry.get('netmask'))
        what = '(%s from %s, users %s, method %s)' % (contype, source, users, method)
        if method in ('peer',):
            errors.append('%s %s is refused: peer works on local connections only, PostgreSQL would reject '
                          'pg_hba.conf. Fix: contype local, or scram-sha-256 over hostssl.' % (var, what))
            continue
        if method == 'cert' and contype != 'hostssl':
            errors.append('%s %s is refused: cert needs a TLS connection, PostgreSQL would reject pg_hba.conf. '
                          'Fix: contype hostssl.' % (var, what))
            continue
        if method == 'trust':
            risk = 'local_logins_as_anyone' if local else 'network_logins_without_password'
            if risk not in accepted:
                errors.append(_refusal(var, what + ' is refused', risk,
                                       'scram-sha-256 over hostssl' if not local else 'scram-sha-256, or peer '
                                       'on a local entry'))
            continue
        if local:
            continue
        if method == 'ident' and 'network_logins_without_password' not in accepted:
            errors.append(_refusal(var, what + ' is refused (ident over the network believes what the client\'s '
                                   'host says)', 'network_logins_without_password', 'scram-sha-256 over hostssl'))
        if method in ('password', 'md5') and 'weak_password_methods' not in accepted:
            errors.append(_refusal(var, what + ' is refused', 'weak_password_methods', 'method scram-sha-256'))
        if contype in _PLAIN_CONTYPES and method in _PASSWORD_METHODS and 'passwords_without_tls' not in accepted:
            errors.append(_refusal(var, what + ' is refused: a plain %s entry also matches connections without '
                                   'TLS' % contype, 'passwords_without_tls', 'contype hostssl (the server has TLS on)'))
    return errors


#: Settings another role hands over (postgresql_addon_settings) that it needs exactly as it set them:
#: the backup role checks its own (archive_*, pg_cron) in its preflight.
ADDON_OWNERS = {'wal_level': 'logical', 'sync_replication_slots': 'logical'}


def _lower(d):
    return dict((str(k).lower(), v) for k, v in d.items()) if isinstance(d, dict) else {}


def _bool(value):
    """A postgresql.conf boolean: True, False, or None when it is none."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('on', 'true', 'yes', '1', 't', 'y'):
        return True
    if text in ('off', 'false', 'no', '0', 'f', 'n', 'of'):
        return False
    return None


def settings_risk_errors(shared, host, addon=None, synchronous_mode='off', data_checksums=True, accepted=(),
                         owners=None):
    """What in postgresql_settings / postgresql_host_settings would lose durability or leak secrets
    (refused unless the risk is accepted), or break what another role of the collection needs.
    addon: the settings other roles hand over (postgresql_addon_settings); owners: {parameter: role}
    for the addon settings that role needs as they are."""
    accepted = _accepted(accepted)
    shared_l, host_l = _lower(shared), _lower(host)
    eff = _lower(addon)
    eff.update(shared_l)
    eff.update(host_l)
    errors = []

    def where(name):
        return 'postgresql_host_settings' if name in host_l else 'postgresql_settings'

    def user_set(name):
        return name in shared_l or name in host_l

    for name, bad_when, what in (
            ('fsync', False, 'off'), ('full_page_writes', False, 'off'), ('zero_damaged_pages', True, 'on'),
            ('ignore_checksum_failure', True, 'on'), ('data_sync_retry', True, 'on')):
        if user_set(name) and _bool(eff[name]) is bad_when and 'data_corruption' not in accepted:
            errors.append(_refusal('%s.%s=%s' % (where(name), name, what), 'is refused', 'data_corruption',
                                   'remove it (PostgreSQL\'s default is safe)'))
    sync = str(synchronous_mode or 'off') != 'off'
    if user_set('synchronous_commit') and 'acknowledged_commit_loss' not in accepted:
        value = str(eff['synchronous_commit']).strip().lower()
        off = _bool(value) is False
        if off or (sync and value == 'local'):
            errors.append(_refusal(
                '%s.synchronous_commit=%s' % (where('synchronous_commit'), value),
                'is refused%s' % (' with postgresql_synchronous_mode=%s (a commit would not wait for a standby, so '
                                  'a failover loses it)' % synchronous_mode if sync else ''),
                'acknowledged_commit_loss',
                'on, remote_apply or remote_write (or remove it: on)' if sync else 'remove it (on)'))
    if user_set('max_slot_wal_keep_size') and 'unbounded_wal_retention' not in accepted:
        if str(eff['max_slot_wal_keep_size']).strip() == '-1':
            errors.append(_refusal('%s.max_slot_wal_keep_size=-1' % where('max_slot_wal_keep_size'), 'is refused',
                                   'unbounded_wal_retention', 'a size such as 10GB (the baseline), or remove it'))
    if 'passwords_in_server_log' not in accepted:
        if user_set('log_statement') and str(eff['log_statement']).strip().lower() in ('ddl', 'mod', 'all'):
            errors.append(_refusal('%s.log_statement=%s' % (where('log_statement'), eff['log_statement']),
                                   'is refused', 'passwords_in_server_log', 'none, or log DDL with pgaudit, which '
                                   'leaves passwords out'))
        if user_set('log_min_duration_statement') and str(eff['log_min_duration_statement']).strip() in ('0', '0ms'):
            errors.append(_refusal('%s.log_min_duration_statement=0' % where('log_min_duration_statement'),
                                   'is refused (it logs every statement)', 'passwords_in_server_log',
                                   'a threshold such as 250ms'))
    if user_set('wal_log_hints') and _bool(eff['wal_log_hints']) is False and not data_checksums:
        errors.append('%s.wal_log_hints=off is refused with postgresql_data_checksums=false: pg_rewind needs one '
                      'of them, and rejoin.yml could then only re-clone a former primary. Fix: remove it (on).'
                      % where('wal_log_hints'))
    if user_set('default_transaction_read_only') and _bool(eff['default_transaction_read_only']) is True:
        errors.append('%s.default_transaction_read_only=on is refused: the roles\' own changes and the runbooks\' '
                      'write through the VIP would fail on the primary. Fix: make the application\'s role read-only '
                      'instead (ALTER ROLE ... SET default_transaction_read_only = on).'
                      % where('default_transaction_read_only'))
    addon_l = _lower(addon)
    for name, role in sorted((ADDON_OWNERS if owners is None else owners).items()):
        if name in addon_l and user_set(name) and str(eff[name]).strip().lower() != str(addon_l[name]).strip().lower():
            errors.append('%s.%s=%s is refused: the %s role needs %s=%s. Fix: remove it.'
                          % (where(name), name, eff[name], role, name, addon_l[name]))
    return errors


_USER_RE = re.compile(r'^[a-z_][a-z0-9_]{0,62}$')


def replication_role_errors(user, password, superuser_in_cluster=False):
    """postgresql_replication_user: a plain login role (it reaches pg_hba, .pgpass and primary_conninfo
    unquoted), never a superuser; the password on one line (it reaches .pgpass). The password is never
    repeated."""
    errors = []
    name = str(user or '')
    if not _USER_RE.match(name):
        errors.append('postgresql_replication_user %r is refused: use 1-63 lower-case letters, digits or "_" '
                      '(starting with a letter or "_"); it is written unquoted into pg_hba.conf, .pgpass and '
                      'primary_conninfo. Fix: e.g. replicator.' % (name,))
    elif name == 'postgres' or superuser_in_cluster:
        errors.append('postgresql_replication_user=%s is refused: it is a superuser, which would make the '
                      'replication login (whose password is in every member\'s ~postgres/.pgpass) able to do '
                      'anything. Fix: a role of its own, e.g. replicator (the collection creates it with LOGIN '
                      'REPLICATION only).' % name)
    elif name.startswith('pg_') or name == 'public':
        errors.append('postgresql_replication_user=%s is refused: PUBLIC and names starting with pg_ are '
                      'PostgreSQL\'s own. Fix: e.g. replicator.' % name)
    if isinstance(password, str) and _CONTROL_RE.search(password):
        errors.append('postgresql_replication_password holds a newline or another control character, which would '
                      'break ~postgres/.pgpass. Fix: a password on one line.')
    return errors


_CLUSTER_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$')
_LOCALE_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,62}$')
# a Debian package name (policy 5.6.1), optionally =version
_PACKAGE_RE = re.compile(r'^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$')


def identity_errors(cluster_name, locale, packages):
    """postgresql_cluster_name (paths, the service's name, pgBackRest's configuration), postgresql_locale
    (initdb) and postgresql_extra_packages (apt): words that cannot end a line, add an option or a path."""
    errors = []
    if not _CLUSTER_RE.match(str(cluster_name)):
        errors.append('postgresql_cluster_name %r is refused: use letters, digits, "_", "." or "-" (it names '
                      'directories, the systemd service and pgBackRest\'s stanza paths). Fix: e.g. main.'
                      % (cluster_name,))
    if not _LOCALE_RE.match(str(locale)):
        errors.append('postgresql_locale %r is not a locale name. Fix: e.g. C.UTF-8 or en_US.UTF-8.' % (locale,))
    bad = [p for p in packages or [] if not isinstance(p, str) or not _PACKAGE_RE.match(p)]
    if bad:
        errors.append('postgresql_extra_packages holds %s, which %s not a Debian package name (lower-case letters, '
                      'digits, "+", "-", ".", optionally =version); a leading "-" would reach apt as an option. '
                      'Fix the names.' % (', '.join(repr(b) for b in bad), 'is' if len(bad) == 1 else 'are'))
    return errors


#: libpq sslmodes pg_hba's hostssl replication rules accept, and why the others are refused.
_SSLMODE_WHY = {
    'disable': 'the role\'s pg_hba accepts replication only over TLS (hostssl), so the connection would be refused',
    'allow': 'it tries without TLS first, and a man in the middle keeps it there',
    'prefer': 'a man in the middle can strip TLS and the connection goes on without it',
    'verify-ca': 'the members\' server certificates are Debian\'s self-signed ssl-cert-snakeoil, which no CA signs, '
                 'so libpq would refuse every one of them',
    'verify-full': 'the members\' server certificates are Debian\'s self-signed ssl-cert-snakeoil, which no CA '
                   'signs, so libpq would refuse every one of them',
}


def sslmode_errors(varname, value):
    """An sslmode the cluster accepts: require (TLS, as pg_hba's hostssl rules want)."""
    mode = str(value or '').strip()
    if mode == 'require':
        return []
    why = _SSLMODE_WHY.get(mode, 'it is not a libpq sslmode')
    return ['%s=%s is refused: %s. Fix: require (the default).' % (varname, mode, why)]


def host_macs(hostvars_of_host):
    """Every MAC address of a host's interfaces, from its gathered facts (lower case)."""
    facts = (hostvars_of_host or {}).get('ansible_facts') or {}
    macs = []
    for iface in facts.get('interfaces') or []:
        info = facts.get(str(iface).replace('-', '_')) or {}
        mac = str(info.get('macaddress') or '').lower()
        if mac and mac != '00:00:00:00:00:00' and mac not in macs:
            macs.append(mac)
    return macs


def vip_conflict_errors(varname, vip, probes, expected_holders):
    """[message] when another host than expected_holders answers for vip (its address without the prefix
    length), from address_probe's probes (every host that probed): keepalived would add an address that
    already lives elsewhere, and clients would reach whichever host answered their ARP last."""
    address = str(vip or '').split('/', maxsplit=1)[0].strip()
    foreign, holders = set(), []
    for probe in probes or []:
        for p in (probe or {}).get('probes') or []:
            if p.get('address') != address:
                continue
            foreign.update(p.get('foreign') or [])
            holders += [h for h in p.get('holders') or [] if h not in holders]
    if not foreign:
        return []
    who = ', '.join(holders) if holders else 'a host outside the inventory'
    return ['%s=%s already answers on the network, from %s (MAC %s), which is not %s: keepalived would put a '
            'second copy of the address on the cluster, and clients would reach whichever host answered them '
            'last. Fix: choose a free address for %s, or take %s off that host.'
            % (varname, vip, who, ', '.join(sorted(foreign)), expected_holders, varname, address)]

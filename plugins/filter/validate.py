# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the preflight checks use: the cluster's members as the inventory
describes them, and the input that must be refused before any host changes.

Every *_errors filter returns a list of messages (empty when the input is
good). Each message names the variable and says how to fix it; none repeats a
secret. Pure functions: unit-tested in tests/unit/plugins/filter/test_validate.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.slot_name import slot_name as _slot_name

# A parameter name as PostgreSQL accepts it in postgresql.conf: an identifier,
# or a custom one with one dot (extension.name, e.g. cron.database_name).
_PARAM_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$')
_CONTROL_RE = re.compile(r'[\x00-\x08\x0a-\x1f\x7f]')
_SLOT_RE = re.compile(r'^[a-z0-9_]{1,63}$')
# Role and database names this collection creates or grants to. A comma would
# split a grant's role list (reaching PUBLIC), a quote would end an identifier.
_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]{0,62}$')
_WORD_RE = re.compile(r'^[A-Za-z0-9_.@-]{1,63}$')

#: Parameters whose value on a standby must be at least the primary's (PostgreSQL
#: refuses hot standby otherwise); any member may become the primary, so they
#: must be the same everywhere.
SAME_ON_EVERY_MEMBER = ('max_connections', 'max_worker_processes', 'max_wal_senders',
                        'max_prepared_transactions', 'max_locks_per_transaction')

#: Where each role-owned parameter is set instead.
OWNER_HINTS = {
    'port': 'use postgresql_port',
    'cluster_name': 'use postgresql_cluster_name',
    'synchronous_standby_names': 'use postgresql_synchronous_mode, _count and _names',
    'primary_conninfo': 'pg_replica sets it in postgresql.auto.conf',
    'primary_slot_name': 'pg_replica sets it in postgresql.auto.conf (postgresql_slot_name)',
    'synchronized_standby_slots': 'the logical role sets it in postgresql.auto.conf (the other members\' slots)',
}

_BOOL_WORDS = {'true': True, 'false': False, 'yes': True, 'no': False}

_FLAGS = ('SUPERUSER', 'CREATEROLE', 'CREATEDB', 'INHERIT', 'LOGIN', 'REPLICATION', 'BYPASSRLS')
#: Flags that hand out power over the whole server.
PRIVILEGED_FLAGS = ('SUPERUSER', 'CREATEROLE', 'REPLICATION', 'BYPASSRLS')
_DB_PRIVS = ('ALL', 'CREATE', 'CONNECT', 'TEMPORARY', 'TEMP')


def lookup(mapping, key, default=None):
    """mapping[key], or default when it is missing, None, or mapping is not a mapping (hostvars,
    registered results and facts are all read this way)."""
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def pg_bool(value):
    """A postgresql.conf boolean as PostgreSQL reads it: True, False, or None if it is none."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {1: True, 0: False}.get(value)
    text = str(value).strip().lower()
    if text in ('1', '0'):
        return text == '1'
    if text in ('on', 'off', 'of'):
        return text == 'on'
    if text:
        matches = [v for w, v in _BOOL_WORDS.items() if w.startswith(text)]
        if len(matches) == 1:
            return matches[0]
    return None


def _pg_int(value):
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


# --------------------------------------------------------------------------
# Members
# --------------------------------------------------------------------------

def _network(text):
    try:
        return ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        return None


def _candidates(hv):
    """The addresses a host is known by: its default IPv4 address first, then every IPv4
    address it holds (gathered facts, or what node_survey returned), then its ansible_host."""
    facts = lookup(hv, 'ansible_facts', {})
    found = []
    default = lookup(lookup(facts, 'default_ipv4', {}), 'address')
    for addr in ([default] if default else []) + list(lookup(facts, 'all_ipv4_addresses', []) or []) + \
            [lookup(hv, 'ansible_host')]:
        if addr and _is_ip(str(addr)) and str(addr) not in found:
            found.append(str(addr))
    return found


def _address_in(hv, network):
    net = _network(network)
    if net is None:
        return None
    for addr in _candidates(hv):
        if ipaddress.ip_address(addr) in net:
            return addr
    return None


def member_address(hostvars_of_host):
    """The address other members reach a host at (replication, the split-brain guard, pg_rewind,
    backups): postgresql_host_address from the inventory; else, when postgresql_replication_network
    is set, the host's address in that network; else its gathered default IPv4 address, else its
    ansible_host when that is an IP address; None when nothing is known."""
    hv = hostvars_of_host or {}
    explicit = lookup(hv, 'postgresql_host_address')
    if explicit not in (None, ''):
        return str(explicit).strip()
    network = lookup(hv, 'postgresql_replication_network')
    if network not in (None, ''):
        return _address_in(hv, network)
    facts = lookup(hv, 'ansible_facts', {})
    gathered = lookup(lookup(facts, 'default_ipv4', {}), 'address')
    if gathered:
        return str(gathered)
    host = lookup(hv, 'ansible_host')
    if host and _is_ip(str(host)):
        return str(host)
    return None


def service_address(hostvars_of_host):
    """The address clients reach a host at, where the VIPs live (keepalived's VRRP, pgpool's
    backends): postgresql_service_address from the inventory; else, when
    postgresql_service_network is set, the host's address in that network; else the member
    address (one network for everything)."""
    hv = hostvars_of_host or {}
    explicit = lookup(hv, 'postgresql_service_address')
    if explicit not in (None, ''):
        return str(explicit).strip()
    network = lookup(hv, 'postgresql_service_network')
    if network not in (None, ''):
        return _address_in(hv, network)
    return member_address(hv)


def network_errors(hostvars_of_host, name):
    """A host's service and replication addresses lie in their networks (when the networks are
    set): each network a valid CIDR, an address given in the inventory inside it, and the host
    holding an address there. [] when they do."""
    hv = hostvars_of_host or {}
    errors = []
    for kind, net_var, addr_var in (('replication', 'postgresql_replication_network', 'postgresql_host_address'),
                                    ('service', 'postgresql_service_network', 'postgresql_service_address')):
        network = lookup(hv, net_var)
        if network in (None, ''):
            continue
        net = _network(network)
        if net is None or '/' not in str(network):
            errors.append('%s=%r is not a network in CIDR form. Fix: for example 10.0.2.0/24.' % (net_var, network))
            continue
        explicit = lookup(hv, addr_var)
        if explicit not in (None, ''):
            if not _is_ip(str(explicit).strip()) or ipaddress.ip_address(str(explicit).strip()) not in net:
                errors.append('%s %s of %s is outside %s=%s: its %s traffic would leave the %s network. Fix: '
                              'set it to %s\'s address in %s, or remove it (the role finds it).'
                              % (addr_var, explicit, name, net_var, net, kind, kind, name, net))
        elif _address_in(hv, net) is None:
            known = _candidates(hv)
            errors.append('%s has no address in %s=%s (it has %s). Fix: connect it to the %s network, or set %s '
                          'for it.' % (name, net_var, net, ', '.join(known) or 'no known address', kind, addr_var))
    return errors


def service_network_errors(varname, vip, network):
    """[the message] when vip (CIDR form) lies outside network (postgresql_service_network), []
    when it lies inside, or when the network is unset or unreadable (network_errors names that)."""
    service = _network(network) if network not in (None, '') else None
    try:
        ip = ipaddress.ip_interface(str(vip).strip()).ip
    except ValueError:
        return []
    if service is None or ip in service:
        return []
    return ['%s=%s is outside postgresql_service_network=%s: clients on the service network could not reach it. '
            'Fix: a free address of %s, with its prefix length.' % (varname, vip, service, service)]


def interface_of(facts, address):
    """The network interface that holds address, from gathered facts (None when none does)."""
    facts = facts or {}
    for iface in lookup(facts, 'interfaces', []) or []:
        info = lookup(facts, str(iface).replace('-', '_'), {}) or {}
        ipv4 = lookup(info, 'ipv4', {}) or {}
        held = [lookup(ipv4, 'address')] + [lookup(x, 'address') for x in (lookup(info, 'ipv4_secondaries', []) or [])]
        if address and str(address) in held:
            return str(iface)
    return None


def host_cidr(address):
    """The one-host network of an address, as pg_hba.conf wants it: 10.0.0.1/32, fd00::1/128."""
    ip = ipaddress.ip_address(str(address).strip())
    return '%s/%d' % (ip, ip.max_prefixlen)


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def cluster_members(groups, hostvars, primary_group='primary', replica_group='replicas'):
    """Every member of the cluster, sorted by name (the order does not move when the
    inventory's groups change after a failover): [{name, primary, address, service_address,
    slot}] (address: on the replication network; service_address: where clients and VIPs are)."""
    primaries = list(lookup(groups, primary_group, []) or [])
    names = sorted(set(primaries) | set(lookup(groups, replica_group, []) or []))
    members = []
    for name in names:
        hv = lookup(hostvars, name, {})
        slot = lookup(hv, 'postgresql_slot_name')
        members.append({'name': name, 'primary': name in primaries, 'address': member_address(hv),
                        'service_address': service_address(hv),
                        'slot': str(slot) if slot not in (None, '') else _slot_name(name),
                        'facts': bool(lookup(lookup(hv, 'ansible_facts', {}), 'default_ipv4', None) is not None)})
    return members


def peers(members, name, port):
    """The other members with a known address, as the split-brain guard asks them:
    [{name, host, port}], sorted by name."""
    return [{'name': m['name'], 'host': m['address'], 'port': int(port)}
            for m in members if m['name'] != name and m.get('address')]


def members_errors(members):
    """Addresses and slot names of every member: known, valid, unique."""
    errors = []
    seen_addr, seen_slot = {}, {}
    for m in members:
        name, addr, slot = m['name'], m['address'], m['slot']
        if not addr and not m.get('facts', True):
            errors.append('%s has no known address: its facts were not gathered in this run (a --limit that leaves '
                          'it out?). Fix: run without --limit, or set postgresql_host_address for %s in host_vars.'
                          % (name, name))
        elif not addr:
            errors.append('%s has no address: it has no default route, so its default IPv4 address is unknown. '
                          'Fix: set postgresql_host_address for %s in host_vars (the address the other members '
                          'reach it at).' % (name, name))
        elif not _is_ip(addr):
            errors.append('postgresql_host_address %r of %s is not an IP address. Fix: set it to the IPv4 or IPv6 '
                          'address the other members reach %s at (no name, no prefix length).' % (addr, name, name))
        elif addr in seen_addr:
            errors.append('%s and %s have the same address %s. Fix: set postgresql_host_address to each host\'s own '
                          'address.' % (seen_addr[addr], name, addr))
        else:
            seen_addr[addr] = name
        if not _SLOT_RE.match(slot):
            errors.append('postgresql_slot_name %r on %s is not a valid replication slot name. Fix: use 1-63 '
                          'lower-case letters, digits or underscores, for example %r.' % (slot, name, _slot_name(name)))
        elif slot in seen_slot:
            errors.append('%s and %s would use the same replication slot %r (slot names are lower-cased and every '
                          'character but [a-z0-9_] becomes "_"). Fix: set a distinct postgresql_slot_name in '
                          'host_vars for one of them.' % (seen_slot[slot], name, slot))
        else:
            seen_slot[slot] = name
    return errors


# --------------------------------------------------------------------------
# postgresql.conf
# --------------------------------------------------------------------------

def needed_wal_senders(member_count, extra=0):
    """WAL senders a primary needs: every other member cloning at once (pg_basebackup
    takes two: the copy and the WAL stream), plus two for the split-brain guard's
    short IDENTIFY_SYSTEM connections, plus what other replication clients take
    (extra: the native engine's backups, two)."""
    return 2 * max(int(member_count) - 1, 0) + 2 + int(extra or 0)


def needed_replication_slots(member_count, extra=0):
    """One physical slot per other member, on whichever node is the primary, plus what
    other replication clients take (extra: a backup's temporary slot)."""
    return max(int(member_count) - 1, 0) + int(extra or 0)


def settings_baseline_limits(member_count, floor=10, extra_senders=0, extra_slots=0):
    """max_wal_senders and max_replication_slots for the baseline: the role's floor, or
    what the cluster needs when that is more."""
    return {'max_wal_senders': max(int(floor), needed_wal_senders(member_count, extra_senders)),
            'max_replication_slots': max(int(floor), needed_replication_slots(member_count, extra_slots))}


def _dict_errors(varname, settings, reserved):
    errors = []
    if not isinstance(settings, dict):
        return ['%s must be a dict of parameter: value, not %s.' % (varname, type(settings).__name__)]
    lowered = {}
    for key, value in settings.items():
        if not isinstance(key, str) or not _PARAM_RE.match(key):
            errors.append('%s has the key %r, which is not a parameter name. Fix: use the parameter\'s name as '
                          'PostgreSQL spells it (letters, digits, "_", one "." for an extension\'s parameter).'
                          % (varname, key))
            continue
        low = key.lower()
        if low in lowered:
            errors.append('%s sets %s twice (%r and %r; parameter names ignore case). Fix: keep one.'
                          % (varname, low, lowered[low], key))
        lowered[low] = key
        if low in reserved or low.startswith('recovery_target') or low == 'restore_command':
            hint = OWNER_HINTS.get(low, 'the role or a runbook owns it (restore.yml owns recovery settings)')
            errors.append('%s.%s cannot be set: %s. Fix: remove it from %s.' % (varname, key, hint, varname))
        if isinstance(value, (dict, list)) or value is None:
            errors.append('%s.%s must be a string, a number or a boolean, not %s. Fix: write the value as '
                          'postgresql.conf expects it (a list as one comma-separated string).'
                          % (varname, key, 'null' if value is None else type(value).__name__))
        elif isinstance(value, str) and _CONTROL_RE.search(value):
            errors.append('%s.%s holds a newline or another control character, which would break '
                          'postgresql.conf. Fix: write the value on one line.' % (varname, key))
    return errors


def _lower_keys(settings):
    return dict((str(k).lower(), v) for k, v in (settings or {}).items()) if isinstance(settings, dict) else {}


def pg_settings_merge(*dicts):
    """Merge settings dicts, later ones winning, with parameter names lower-cased
    (PostgreSQL ignores their case: 'Work_Mem' and 'work_mem' are one parameter)."""
    merged = {}
    for d in dicts:
        merged.update(_lower_keys(d))
    return merged


def pg_settings_errors(shared, host, baseline, addon, reserved, member_count, address=None, extra_senders=0,
                       extra_slots=0):
    """What in postgresql_settings / postgresql_host_settings would stop the server or
    replication, or break postgresql.conf. baseline and addon are the role's own;
    extra_senders/extra_slots: what other replication clients need (the native backups)."""
    reserved = [str(r).lower() for r in (reserved or [])]
    errors = _dict_errors('postgresql_settings', shared, reserved)
    errors += _dict_errors('postgresql_host_settings', host, reserved)
    if errors:
        return errors
    shared_l, host_l = _lower_keys(shared), _lower_keys(host)
    eff = _lower_keys(baseline)
    eff.update(_lower_keys(addon))
    eff.update(shared_l)
    eff.update(host_l)

    def where(name):
        return 'postgresql_host_settings' if name in host_l else 'postgresql_settings'

    for name in SAME_ON_EVERY_MEMBER:
        if name in host_l:
            errors.append('postgresql_host_settings.%s is refused: a standby whose %s is lower than the primary\'s '
                          'stops replaying, and any member may become the primary. Fix: set it once in '
                          'postgresql_settings, the same on every member.' % (name, name))
    wal_level = str(eff.get('wal_level', 'replica')).strip().lower()
    if wal_level not in ('replica', 'logical'):
        errors.append('%s.wal_level=%s would stop the server (streaming replication needs replica or logical). '
                      'Fix: set it to replica (or logical), or remove it.' % (where('wal_level'), wal_level))
    for name, want in (('hot_standby', True), ('ssl', True)):
        got = pg_bool(eff.get(name, want))
        if got is None:
            errors.append('%s.%s=%r is not a boolean. Fix: on or off.' % (where(name), name, eff.get(name)))
        elif got != want:
            why = ('replicas would refuse every connection, and the roles wait for them to answer'
                   if name == 'hot_standby' else 'replication between members is only accepted over SSL (hostssl)')
            errors.append('%s.%s=off is refused: %s. Fix: remove it (the baseline is on).' % (where(name), name, why))
    enc = str(eff.get('password_encryption', 'scram-sha-256')).strip().lower()
    if enc != 'scram-sha-256':
        errors.append('%s.password_encryption=%s is refused: pg_hba accepts only scram-sha-256 passwords, so '
                      'roles given new passwords could not log in. Fix: remove it.'
                      % (where('password_encryption'), enc))
    listen = [t.strip() for t in str(eff.get('listen_addresses', '*')).split(',') if t.strip()]
    if not any(t in ('*', '0.0.0.0', '::') or (address and t == address) for t in listen):
        errors.append('%s.listen_addresses=%r does not include this member\'s address%s: the other members could '
                      'not replicate from it. Fix: "*" (pg_hba still limits who gets in), or a list that includes '
                      'the address.' % (where('listen_addresses'), ','.join(listen),
                                        ' ' + address if address else ''))
    limits = {'max_wal_senders': needed_wal_senders(member_count, extra_senders),
              'max_replication_slots': needed_replication_slots(member_count, extra_slots)}
    extra = {'max_wal_senders': int(extra_senders or 0), 'max_replication_slots': int(extra_slots or 0)}
    for name, need in sorted(limits.items()):
        value = _pg_int(eff.get(name, need))
        if value is None:
            errors.append('%s.%s=%r is not a number.' % (where(name), name, eff.get(name)))
        elif value < need:
            errors.append('%s.%s=%d is too low for %d members: they need at least %d (%s). Fix: raise it to %d or '
                          'more, or remove it (the role derives it from the members).'
                          % (where(name), name, value, int(member_count), need,
                             ('every other member cloning at once takes two, plus two for the split-brain guard'
                              if name == 'max_wal_senders' else 'one slot per other member')
                             + (', plus %d for the backups (postgresql_addon_replication_clients)' % extra[name]
                                if extra[name] else ''), need))
    max_conn = _pg_int(eff.get('max_connections', 100))
    senders = _pg_int(eff.get('max_wal_senders', 10))
    reserved_conn = _pg_int(eff.get('superuser_reserved_connections', 3))
    if max_conn is not None and senders is not None and senders >= max_conn:
        errors.append('max_wal_senders=%d must be less than max_connections=%d or the server does not start. '
                      'Fix: raise max_connections in postgresql_settings.' % (senders, max_conn))
    if max_conn is not None and reserved_conn is not None and reserved_conn >= max_conn:
        errors.append('superuser_reserved_connections=%d must be less than max_connections=%d or the server does not '
                      'start. Fix: lower it or raise max_connections.' % (reserved_conn, max_conn))
    return errors


def synchronous_errors(mode, count, names, members):
    """synchronous_standby_names must stay satisfiable whichever member is the primary."""
    if str(mode) == 'off':
        return []
    errors = []
    try:
        count = int(count)
    except (TypeError, ValueError):
        return ['postgresql_synchronous_count=%r is not a number.' % (count,)]
    bad = [n for n in (names or []) if not isinstance(n, str) or not _SLOT_RE.match(n)]
    if bad:
        errors.append('postgresql_synchronous_names holds %s, which %s not a standby\'s application_name (its '
                      'replication slot name: 1-63 lower-case letters, digits or underscores). Fix the names.'
                      % (', '.join(repr(b) for b in bad), 'is' if len(bad) == 1 else 'are'))
        return errors
    slots = [m['slot'] for m in members]
    candidates = list(names) if names else slots
    if count < 1:
        errors.append('postgresql_synchronous_count=%d: it must be at least 1 (or set postgresql_synchronous_mode: '
                      'off).' % count)
    # whichever member is the primary, count standbys of the list must be able to confirm
    worst = min([len([c for c in candidates if c != s]) for s in slots] or [len(candidates)])
    if count > worst:
        errors.append('postgresql_synchronous_count=%d is more than the %d standby(s) that could confirm a commit '
                      '(%s, minus the primary itself): every commit would wait for ever. Fix: lower '
                      'postgresql_synchronous_count to %d or fewer, or add standbys.'
                      % (count, worst, ', '.join(candidates) or 'none', worst))
    return errors


# --------------------------------------------------------------------------
# Databases and users (pg_primary)
# --------------------------------------------------------------------------

def _name_error(var, value, what='name'):
    if not isinstance(value, str) or not _NAME_RE.match(value):
        return ('%s %s %r is refused: use letters, digits, "_", "." or "-" (starting with a letter or "_", at most '
                '63); a comma or a quote would reach the SQL the role runs.' % (var, what, value))
    if value.lower() == 'public' or value.lower().startswith('pg_'):
        return '%s %s %r is refused: PUBLIC and names starting with pg_ are PostgreSQL\'s own.' % (var, what, value)
    return None


def databases_errors(databases):
    errors = []
    if not isinstance(databases, list):
        return ['pg_primary_databases must be a list of {name: ...} items.']
    for i, db in enumerate(databases):
        var = 'pg_primary_databases[%d]' % i
        if not isinstance(db, dict) or 'name' not in db:
            errors.append('%s needs a \'name\' key. Fix the item.' % var)
            continue
        for key in ('name', 'owner', 'template'):
            if key in db and db[key] is not None:
                err = _name_error(var, db[key], key)
                if err and not (key == 'template' and db[key] in ('template0', 'template1')):
                    errors.append(err)
        for key in ('encoding', 'lc_collate', 'lc_ctype'):
            if key in db and db[key] is not None and not _WORD_RE.match(str(db[key])):
                errors.append('%s %s %r is not a valid value. Fix: e.g. UTF8 / C.UTF-8.' % (var, key, db[key]))
        unknown = sorted(set(db) - {'name', 'owner', 'encoding', 'lc_collate', 'lc_ctype', 'template'})
        if unknown:
            errors.append('%s has unknown keys %s. Fix: use name, owner, encoding, lc_collate, lc_ctype, template.'
                          % (var, ', '.join(unknown)))
    return errors


def users_errors(users, reserved_names=(), privileged_allowed=False):
    """pg_primary_users: safe names, known flags and privileges; no privileged flag
    unless pg_primary_privileged_users_allowed. Passwords are never repeated."""
    errors = []
    if not isinstance(users, list):
        return ['pg_primary_users must be a list of {name, password, db, priv, role_attr_flags} items.']
    reserved = set(str(r).lower() for r in reserved_names if r)
    seen = set()
    for i, user in enumerate(users):
        var = 'pg_primary_users[%d]' % i
        if not isinstance(user, dict) or 'name' not in user:
            errors.append('%s needs a \'name\' key. Fix the item.' % var)
            continue
        name = user['name']
        err = _name_error(var, name)
        if err:
            errors.append(err)
            continue
        var = 'pg_primary_users[%d] (%s)' % (i, name)
        if name.lower() in reserved:
            errors.append('%s is refused: the collection manages that role itself. Fix: choose another name.' % var)
        if name.lower() in seen:
            errors.append('%s is listed twice. Fix: keep one item per user.' % var)
        seen.add(name.lower())
        if 'db' in user:
            err = _name_error(var, user['db'], 'db')
            if err:
                errors.append(err)
        if 'password' in user and user['password'] is not None and not isinstance(user['password'], str):
            errors.append('%s password must be a string (quote it in YAML).' % var)
        priv = user.get('priv')
        if priv is not None:
            tokens = [t.strip().upper() for t in str(priv).split(',')]
            if not all(t in _DB_PRIVS for t in tokens):
                errors.append('%s priv %r is refused: database privileges are %s, separated by commas.'
                              % (var, priv, ', '.join(_DB_PRIVS)))
        flags = user.get('role_attr_flags')
        if flags is not None:
            tokens = [t.strip().upper() for t in str(flags).split(',') if t.strip()]
            unknown = [t for t in tokens if (t[2:] if t.startswith('NO') else t) not in _FLAGS]
            if unknown:
                errors.append('%s role_attr_flags %r: unknown %s. Fix: use [NO]%s, separated by commas.'
                              % (var, flags, ', '.join(unknown), ', [NO]'.join(_FLAGS)))
            privileged = [t for t in tokens if t in PRIVILEGED_FLAGS]
            if privileged and not privileged_allowed:
                errors.append('%s role_attr_flags %s give power over the whole server. Refused unless '
                              'pg_primary_privileged_users_allowed=true (create such roles by hand, on purpose).'
                              % (var, ','.join(privileged)))
        unknown = sorted(set(user) - {'name', 'password', 'db', 'priv', 'role_attr_flags'})
        if unknown:
            errors.append('%s has unknown keys %s. Fix: use name, password, db, priv, role_attr_flags.'
                          % (var, ', '.join(unknown)))
    return errors


def without_keys(items, keys=('password',)):
    """The same list of dicts without the given keys (loops that must not carry secrets)."""
    if not isinstance(items, list):
        raise AnsibleFilterError('without_keys expects a list of dicts')
    return [dict((k, v) for k, v in item.items() if k not in keys) for item in items]


# --------------------------------------------------------------------------
# keepalived
# --------------------------------------------------------------------------

def vip_errors(varname, vip, members, network=None, key='address'):
    """A VIP in CIDR form, inside every member's subnet (m[key]: their service addresses when the
    networks are split), on none of their addresses, inside network (postgresql_service_network)
    when that is set."""
    if not isinstance(vip, str) or '/' not in vip:
        return ['%s=%r must be an IPv4 address with its prefix length, e.g. 10.0.0.100/24.' % (varname, vip)]
    try:
        iface = ipaddress.IPv4Interface(vip.strip())
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        return ['%s=%r is not an IPv4 address with its prefix length, e.g. 10.0.0.100/24.' % (varname, vip)]
    errors = []
    net = iface.network
    outside = service_network_errors(varname, vip, network)
    if outside:
        return outside
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        errors.append('%s=%s is the network or broadcast address of %s. Fix: use a free host address.'
                      % (varname, vip, net))
    for m in members:
        addr = m.get(key)
        if not addr or not _is_ip(addr):
            continue
        ip = ipaddress.ip_address(addr)
        if ip == iface.ip:
            errors.append('%s=%s is the address of %s itself. Fix: use a free address of the members\' subnet.'
                          % (varname, vip, m['name']))
        elif ip not in net:
            errors.append('%s=%s is not in the subnet of %s (%s): keepalived would put an address the clients '
                          'cannot reach on it. Fix: a free address of %s\'s network, with its prefix length.'
                          % (varname, vip, m['name'], addr, m['name']))
    return errors


def describe_conf_error(row):
    """One row of pg_file_settings / pg_hba_file_rules with an error, in words."""
    if not isinstance(row, dict):
        return str(row)
    if row.get('kind') == 'pg_hba.conf':
        return 'pg_hba.conf line %s: %s' % (row.get('line'), row.get('error'))
    where = '%s:%s' % (row.get('file'), row.get('line')) if row.get('file') else 'postgresql.conf'
    return '%s (%s): %s' % (row.get('name') or 'syntax error', where, row.get('error'))


RESTART_ONLY = 'postmaster'
NOT_APPLIED = ('setting could not be applied', 'cannot be changed without restarting the server')


def _postgresql_conf_rows(rows):
    return [r for r in rows or [] if isinstance(r, dict) and r.get('kind') == 'postgresql.conf']


def conf_errors_restart(rows):
    """From pg_file_settings rows with an error (joined to pg_settings.context): the names of the
    restart-only settings that changed - they need a restart, they are not wrong."""
    names = []
    for r in _postgresql_conf_rows(rows):
        if r.get('context') == RESTART_ONLY and r.get('name') and r['name'] not in names:
            names.append(r['name'])
    return names


def conf_errors_rejected(rows):
    """The rows PostgreSQL rejects: a pg_hba.conf line it cannot parse, an unknown name or a
    syntax error, and a value it cannot apply to a setting that is not restart-only
    ("setting could not be applied" is also what a changed restart-only setting says)."""
    rejected = []
    for r in rows or []:
        if not isinstance(r, dict):
            rejected.append(r)
        elif r.get('kind') != 'postgresql.conf':
            rejected.append(r)
        elif r.get('context') == RESTART_ONLY and any(m in (r.get('error') or '') for m in NOT_APPLIED):
            continue
        else:
            rejected.append(r)
    return rejected


class FilterModule(object):
    def filters(self):
        return {
            'cluster_members': cluster_members,
            'host_cidr': host_cidr,
            'member_address': member_address,
            'service_address': service_address,
            'network_errors': network_errors,
            'interface_of': interface_of,
            'members_errors': members_errors,
            'peers': peers,
            'pg_settings_errors': pg_settings_errors,
            'pg_settings_merge': pg_settings_merge,
            'settings_baseline_limits': settings_baseline_limits,
            'synchronous_errors': synchronous_errors,
            'databases_errors': databases_errors,
            'describe_conf_error': describe_conf_error,
            'conf_errors_rejected': conf_errors_rejected,
            'conf_errors_restart': conf_errors_restart,
            'users_errors': users_errors,
            'without_keys': without_keys,
            'vip_errors': vip_errors,
        }

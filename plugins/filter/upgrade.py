# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the blue-green major upgrade (playbooks/upgrade.yml: an old cluster,
upgrade_source, copied to a new one by logical replication, then a cutover), as pure
functions unit-tested in tests/unit/plugins/filter/test_upgrade.py.

Every *_errors filter returns a list of messages (empty when the input is good); each
names the variable or the object and the fix, none repeats a secret. Malformed input
(a programming error of the playbook, not a state of the clusters) raises
AnsibleFilterError naming the filter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

#: Table-sync workers one subscription runs during its initial copy
#: (max_sync_workers_per_subscription, 2 by default); each takes a WAL sender and a
#: slot on the publisher, next to the subscription's own (its apply worker).
SYNC_WORKERS_PER_SUBSCRIPTION = 2
SLOTS_PER_DATABASE = 1 + SYNC_WORKERS_PER_SUBSCRIPTION

#: The runbook marks that bound the write downtime (roles/runbook/tasks/mark.yml labels).
WRITES_STOPPED = 'writes stopped'
WRITES_BACK = 'writes back'

# An extension whose Debian package is not postgresql-<version>-<extension name>.
_EXTENSION_PACKAGES = {
    'pg_cron': 'cron',
    'vector': 'pgvector',
    'postgis': 'postgis-3',
    'postgis_raster': 'postgis-3',
    'postgis_topology': 'postgis-3',
    'postgis_tiger_geocoder': 'postgis-3',
    'address_standardizer': 'postgis-3',
    'pgrouting': 'pgrouting',
}
# Extensions every PostgreSQL installation has (the procedural language of a new database).
_ALWAYS_AVAILABLE = frozenset(['plpgsql'])

_PLAIN_IDENT_RE = re.compile(r'^[a-z_][a-z0-9_]{0,39}$')
_VERSION_RE = re.compile(r'^\s*(\d+)(\.\d+)?\s*$')
_INT_RE = re.compile(r'^\s*[-+]?\d+\s*$')
_BIGINT_MIN = -(2 ** 63)
_BIGINT_MAX = 2 ** 63 - 1
# PostgreSQL's NAMEDATALEN - 1: a longer name would be cut, and address another object.
_MAX_IDENT_BYTES = 63
_TRUE = ('true', 't', 'on', 'yes', '1')
_FALSE = ('false', 'f', 'off', 'no', '0')


def _major(value):
    """17, '17', '15.8' -> the major version as an int; anything else -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float):
        return int(value) if value >= 1 and value == int(value) else None
    if isinstance(value, str):
        match = _VERSION_RE.match(value)
        if match:
            return int(match.group(1)) or None
    return None


def upgrade_version_errors(source_version, target_version):
    """A blue-green upgrade goes from an older major version to a newer one.

    source_version: the upgrade_source cluster's postgresql_version; target_version: this
    inventory's postgresql_version (17, '17'; a minor such as '15.8' counts as its major)."""
    source_var = "the upgrade_source cluster's postgresql_version"
    target_var = "this inventory's postgresql_version"
    errors = []
    source = _major(source_version)
    target = _major(target_version)
    if source is None:
        errors.append('%s=%r is not a PostgreSQL major version such as 15. Fix: set it (in the old cluster\'s '
                      'group_vars) to the major version the old cluster runs.' % (source_var, source_version))
    if target is None:
        errors.append('%s=%r is not a PostgreSQL major version such as 17. Fix: set it to the major version '
                      'site.yml installed on the new cluster.' % (target_var, target_version))
    if errors:
        return errors
    if source < 10:
        errors.append('%s=%d has no logical replication (PostgreSQL 10 and later have it). Fix: upgrade the old '
                      'cluster with pg_upgrade or pg_dump instead.' % (source_var, source))
    if target == source:
        errors.append('%s and %s are both %d: a blue-green upgrade goes to a newer major version. Fix: point '
                      'upgrade_source at the old cluster, and provision this inventory with a newer '
                      'postgresql_version (minor updates need no upgrade.yml: apt upgrades them).'
                      % (source_var, target_var, source))
    elif target < source:
        errors.append('%s=%d is older than %s=%d: upgrade.yml does not downgrade. Fix: swap the inventories '
                      '(upgrade_source is the OLD cluster, this inventory the new one), or provision the new '
                      'cluster with postgresql_version >= %d.' % (target_var, target, source_var, source, source))
    return errors


def _rows(value, what, filter_name):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AnsibleFilterError('%s expects {database: [%s, ...]}, got %r' % (filter_name, what, type(value).__name__))
    return value


def upgrade_table_errors(tables_by_db):
    """Tables the old primary cannot publish usefully: an UPDATE or DELETE on a table
    without a primary key or replica identity fails once it is in a publication (FOR ALL
    TABLES publishes every one), so the application would break before the cutover.

    tables_by_db: {database: [{table: schema.name, identity: 'd'|'n'|'f'|'i', has_pk: bool}]},
    from the old primary's catalog (pg_class.relreplident). One message per database."""
    errors = []
    for database in sorted(_rows(tables_by_db, '{table, identity, has_pk}', 'upgrade_table_errors')):
        bad = []
        for row in tables_by_db[database] or []:
            if not isinstance(row, dict) or 'table' not in row:
                raise AnsibleFilterError('upgrade_table_errors: %r in database %s is not {table, identity, has_pk}'
                                         % (row, database))
            identity = row.get('identity')
            if identity not in ('d', 'n', 'f', 'i'):
                raise AnsibleFilterError('upgrade_table_errors: table %s in database %s has replica identity %r, '
                                         'not one of d, n, f, i' % (row['table'], database, identity))
            if identity == 'n' or (identity == 'd' and not row.get('has_pk')):
                bad.append(str(row['table']))
        if bad:
            bad = sorted(set(bad))
            errors.append(
                'database %s: %s %s no primary key or replica identity, so UPDATE and DELETE on %s would fail '
                'once the old primary publishes all tables. Fix, on the old primary in database %s: add a primary '
                'key, or ALTER TABLE %s REPLICA IDENTITY USING INDEX <a unique index on NOT NULL columns>, or '
                'ALTER TABLE %s REPLICA IDENTITY FULL (every UPDATE/DELETE then logs the whole row).'
                % (database, ', '.join(bad), 'has' if len(bad) == 1 else 'have', 'it' if len(bad) == 1 else 'them',
                   database, bad[0], bad[0]))
    return errors


def _name_of(item):
    if isinstance(item, dict):
        return item.get('name')
    return item


def extension_package(extension, version):
    """The Debian package that usually ships <extension> for PostgreSQL <version>."""
    return 'postgresql-%s-%s' % (version, _EXTENSION_PACKAGES.get(extension, extension.replace('_', '-')))


def upgrade_extension_errors(installed_by_db, available, target_version=None):
    """Extensions installed in the old cluster's databases that the new version lacks:
    the schema copy would stop at their CREATE EXTENSION.

    installed_by_db: {database: [{name, version}]} (the old cluster's pg_extension);
    available: [name, ...] or rows with name (the new cluster's pg_available_extensions);
    target_version: the new major version, to name the package. One message per extension."""
    have = set(str(_name_of(a)) for a in available or [] if _name_of(a))
    missing = {}
    for database in sorted(_rows(installed_by_db, '{name, version}', 'upgrade_extension_errors')):
        for row in installed_by_db[database] or []:
            name = _name_of(row)
            if not name:
                raise AnsibleFilterError('upgrade_extension_errors: %r in database %s has no name' % (row, database))
            name = str(name)
            if name in _ALWAYS_AVAILABLE or name in have:
                continue
            entry = missing.setdefault(name, {'databases': [], 'versions': set()})
            entry['databases'].append(database)
            if isinstance(row, dict) and row.get('version'):
                entry['versions'].add(str(row['version']))
    version = _major(target_version)
    errors = []
    for name in sorted(missing):
        entry = missing[name]
        package = extension_package(name, version if version else '<new version>')
        errors.append(
            'extension %s%s, installed in database%s %s of the old cluster, is not available on the new cluster%s. '
            'Fix: install its package for the new version (e.g. %s; the name can differ, see apt-cache search %s) '
            'by adding it to postgresql_extra_packages of this inventory and running site.yml; or DROP EXTENSION %s '
            'in %s on the old primary if nothing uses it.'
            % (name, ' (version %s)' % ', '.join(sorted(entry['versions'])) if entry['versions'] else '',
               '' if len(entry['databases']) == 1 else 's', ', '.join(entry['databases']),
               ' (PostgreSQL %d)' % version if version else '', package, name, name, ', '.join(entry['databases'])))
    return errors


def _setting_int(settings, key):
    value = settings.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.match(value):
        return int(value)
    return None


def upgrade_capacity_errors(settings, databases, existing_slots, existing_senders=None,
                            where="the old primary (upgrade_source)"):
    """Whether the publisher can serve one subscription per database.

    settings: {max_replication_slots, max_wal_senders, wal_level} as SHOW returns them
    (strings); databases: the databases to migrate; existing_slots: the replication slots
    it already has (its replicas', a backup's; pg_replication_slots counts inactive ones
    too); existing_senders: the WAL senders already in use (default: existing_slots).
    Each database takes 1 slot and 1 sender for its subscription, plus one of each per
    table-sync worker during the initial copy (max_sync_workers_per_subscription, 2).
    where names the publisher (the new primary for the reverse replication)."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError('upgrade_capacity_errors expects the settings as a dict, got %r'
                                 % type(settings).__name__)
    count = len(set(databases or []))
    try:
        slots_used = int(existing_slots or 0)
        senders_used = slots_used if existing_senders is None else int(existing_senders)
    except (TypeError, ValueError):
        raise AnsibleFilterError('upgrade_capacity_errors: existing slots %r / senders %r are not numbers'
                                 % (existing_slots, existing_senders))
    errors = []
    wal_level = str(settings.get('wal_level') or '').strip().lower()
    if wal_level != 'logical':
        errors.append(
            'wal_level is %r on %s, and a publication needs logical. Fix: set wal_level: logical in that '
            'cluster\'s postgresql_settings (or define logical_publications there, which sets it) and run site.yml '
            'on it; the change needs a restart of PostgreSQL.' % (wal_level or None, where))
    for key, used, unit in (('max_replication_slots', slots_used, 'slot'), ('max_wal_senders', senders_used, 'sender')):
        have = _setting_int(settings, key)
        need = used + SLOTS_PER_DATABASE * count
        if have is None:
            errors.append('%s=%r on %s is not a number (read it with SHOW %s). Fix: correct the query or the '
                          'setting.' % (key, settings.get(key), where, key))
        elif have < need:
            errors.append(
                '%s is %d on %s, and %d are needed: %d in use + %d database%s x %d (a subscription\'s %s and %d '
                'table-sync workers\'). Fix: set %s: %d or more in that cluster\'s postgresql_settings and run '
                'site.yml on it (a restart), or migrate fewer databases at once.'
                % (key, have, where, need, used, count, '' if count == 1 else 's', SLOTS_PER_DATABASE, unit,
                   SYNC_WORKERS_PER_SUBSCRIPTION, key, need))
    return errors


def _quote_ident(name, sequence, where='upgrade_sequence_sql: sequence'):
    if not isinstance(name, str) or not name:
        raise AnsibleFilterError('%s %s has an empty or non-text schema or name' % (where, sequence))
    if '\x00' in name:
        raise AnsibleFilterError('%s %s has a NUL byte in its name' % (where, sequence))
    if len(name.encode('utf-8')) > _MAX_IDENT_BYTES:
        raise AnsibleFilterError('%s %s has a name longer than %d bytes, which PostgreSQL would cut (another object)'
                                 % (where, sequence, _MAX_IDENT_BYTES))
    return '"%s"' % name.replace('"', '""')


def _literal(text):
    """A SQL string literal, right whatever standard_conforming_strings says."""
    quoted = text.replace("'", "''")
    if '\\' in quoted:
        return "E'%s'" % quoted.replace('\\', '\\\\')
    return "'%s'" % quoted


def _sequence_value(value, sequence):
    if isinstance(value, bool):
        value = None
    elif isinstance(value, str) and _INT_RE.match(value):
        value = int(value)
    if not isinstance(value, int):
        raise AnsibleFilterError('upgrade_sequence_sql: sequence %s has last_value %r, not an integer' % (sequence, value))
    if not _BIGINT_MIN <= value <= _BIGINT_MAX:
        raise AnsibleFilterError('upgrade_sequence_sql: sequence %s has last_value %d, outside bigint' % (sequence, value))
    return value


def _is_called(value, sequence):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise AnsibleFilterError('upgrade_sequence_sql: sequence %s has is_called %r, not true or false' % (sequence, value))


def upgrade_sequence_sql(sequences):
    """The statements that give the new primary's sequences the old primary's values
    (logical replication does not carry them), in the input's order:
    SELECT pg_catalog.setval('"schema"."name"', <last_value>, <is_called>).

    sequences: [{schema, name, last_value, is_called}] read on the old primary once writes
    stopped. A sequence whose last_value is null (never used, or not readable) is skipped:
    its value on the new primary (its start) is already right for a never-used one."""
    if sequences is None:
        return []
    if not isinstance(sequences, (list, tuple)):
        raise AnsibleFilterError('upgrade_sequence_sql expects a list of {schema, name, last_value, is_called}')
    statements = []
    for row in sequences:
        if not isinstance(row, dict):
            raise AnsibleFilterError('upgrade_sequence_sql: %r is not {schema, name, last_value, is_called}' % (row,))
        sequence = '%r.%r' % (row.get('schema'), row.get('name'))
        if row.get('last_value') is None:
            continue
        regclass = '%s.%s' % (_quote_ident(row.get('schema'), sequence), _quote_ident(row.get('name'), sequence))
        value = _sequence_value(row.get('last_value'), sequence)
        called = _is_called(row.get('is_called', True), sequence)
        statements.append('SELECT pg_catalog.setval(%s, %d, %s)' % (_literal(regclass), value, 'true' if called else 'false'))
    return statements


def _side(cluster, default_version):
    if isinstance(cluster, dict):
        primary = cluster.get('primary')
        version = cluster.get('version', default_version)
        vip = cluster.get('vip')
        replicas = [str(r) for r in cluster.get('replicas') or []]
    else:
        primary, version, vip, replicas = cluster, default_version, None, []
    if not primary:
        raise AnsibleFilterError('upgrade_plan: a cluster without a primary: %r' % (cluster,))
    return str(primary), version, vip, replicas


def upgrade_plan(source, target, databases, reverse=False):
    """The lines a DBA reads before saying yes, in the order upgrade.yml acts.

    source, target: {primary, version, vip (the writer VIP, optional), replicas (optional)}
    for the old and the new cluster (a plain host name is a primary of unknown version);
    databases: the databases to migrate; reverse: whether the new primary replicates back
    to the old one after the cutover, so that a rollback loses no write."""
    old, old_version, old_vip, _old_replicas = _side(source, '?')
    new, new_version, new_vip, new_replicas = _side(target, '?')
    dbs = sorted(set(str(d) for d in databases or []))
    if not dbs:
        raise AnsibleFilterError('upgrade_plan: no database to migrate')
    names = ', '.join(dbs)
    vip = new_vip or old_vip
    lines = [
        'Blue-green upgrade from PostgreSQL %s on %s (old primary) to PostgreSQL %s on %s (new primary%s), '
        'by logical replication.' % (old_version, old, new_version, new,
                                     ', replicas %s' % ', '.join(new_replicas) if new_replicas else ''),
        'Databases (%d): %s.' % (len(dbs), names),
        '1. Copy the roles (with their passwords) and the schema of each database from %s to %s; the new cluster\'s '
        'databases are created, empty.' % (old, new),
        '2. On %s: a publication FOR ALL TABLES in each database (%s).' % (old, names),
        '3. On %s: a subscription per database, which copies every table, then streams the changes; its slot is '
        'on %s. From here until the cutover, NO schema change (DDL) on %s: it is not replicated.' % (new, old, old),
        '4. Wait until every table is copied and the lag is small. The applications keep writing to %s.' % old,
        '5. CUTOVER, write downtime starts: on %s default_transaction_read_only = on, and every client session of %s '
        'is terminated.' % (old, names),
        '6. Wait until %s has confirmed every change %s committed (its WAL position <= each subscription slot\'s '
        'confirmed_flush_lsn).' % (new, old),
        '7. Copy the sequence values from %s to %s (logical replication does not carry them).' % (old, new),
        ('8. Move the writer VIP %s to %s.' % (vip, new)) if vip else
        ('8. No writer VIP: point the applications at %s (the summary prints the target).' % new),
        '9. Prove a write on %s; write downtime ends.' % new,
    ]
    if reverse:
        lines.append('10. Reverse replication: %s subscribes to %s, so %s keeps every write made after the cutover.'
                     % (old, new, old))
        lines.append('Rollback stays possible: stop writes on %s, wait until %s caught up, point the applications '
                     '(or the VIP) back at %s, which still runs PostgreSQL %s.' % (new, old, old, old_version))
    else:
        lines.append('10. The subscriptions on %s are dropped, and with them their slots on %s, which stays running and '
                     'read-only.' % (new, old))
        lines.append('No reverse replication: going back to %s after the cutover loses every write made on %s.' % (old, new))
    return lines


def upgrade_downtime(marks):
    """{'write_downtime': seconds from 'writes stopped' to 'writes back', 'total': last - first}
    (rounded to 0.1 s) from the runbook marks [[label, unix time], ...] (times may be the
    strings now().timestamp() renders; a label marked twice counts from its first mark)."""
    if not isinstance(marks, (list, tuple)) or not marks:
        raise AnsibleFilterError('upgrade_downtime expects a list of [label, time] pairs, got %r' % (marks,))
    times = []
    at = {}  # the first mark of each label
    for mark in marks:
        try:
            label, when = mark
            when = float(when)
        except (TypeError, ValueError):
            raise AnsibleFilterError('upgrade_downtime: %r is not a [label, time] pair' % (mark,))
        times.append(when)
        at.setdefault(str(label), when)
    missing = [label for label in (WRITES_STOPPED, WRITES_BACK) if label not in at]
    if missing:
        raise AnsibleFilterError('upgrade_downtime: no %s mark among %s; the write downtime cannot be measured'
                                 % (' mark and no '.join(repr(m) for m in missing), ', '.join(repr(k) for k in at)))
    downtime = at[WRITES_BACK] - at[WRITES_STOPPED]
    if downtime < 0:
        raise AnsibleFilterError("upgrade_downtime: 'writes back' comes %.1f s before 'writes stopped'" % -downtime)
    return {'write_downtime': round(downtime, 1), 'total': round(times[-1] - times[0], 1)}


def _as_bool(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def upgrade_role_flags(role):
    """postgresql_user's role_attr_flags for a role read from the old primary's pg_authid
    ({rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolcanlogin, rolbypassrls,
    rolinherit}): the same attributes on the new cluster."""
    if not isinstance(role, dict):
        raise AnsibleFilterError('upgrade_role_flags expects a pg_authid row, got %r' % (role,))
    flags = []
    for column, flag in (('rolsuper', 'SUPERUSER'), ('rolcreatedb', 'CREATEDB'), ('rolcreaterole', 'CREATEROLE'),
                         ('rolreplication', 'REPLICATION'), ('rolcanlogin', 'LOGIN'), ('rolbypassrls', 'BYPASSRLS'),
                         ('rolinherit', 'INHERIT')):
        if column not in role:
            raise AnsibleFilterError('upgrade_role_flags: role %r has no %s' % (role.get('rolname'), column))
        flags.append(flag if _as_bool(role[column]) else 'NO' + flag)
    return ','.join(flags)


def _join(names):
    return ', '.join(sorted(names))


def _publication_error(where, publication, databases, inventory, sources, whose, then, why=''):
    """A side lacks its FOR ALL TABLES publication: the inventory lines that make it."""
    return ('%s has no publication %s FOR ALL TABLES in database%s %s%s. Fix: %s set logical_publications: [%s] and '
            'logical_subscriber_sources: [%s] (%s addresses), %s'
            % (where, publication, '' if len(databases) == 1 else 's', _join(databases), why, inventory,
               ', '.join('{name: %s, database: %s, all_tables: true}' % (publication, d) for d in databases),
               ', '.join(sources or ['<address>/32']), whose, then))


def upgrade_errors(old, new, old_databases, new_databases, available, options):
    """Everything upgrade.yml refuses before it changes anything, as messages naming the
    object and the fix (empty: go ahead).

    old, new: each cluster's primary as read by upgrade.yml ({version, in_recovery,
    wal_level, max_replication_slots, max_wal_senders, slots, senders, databases,
    all_databases, subscriptions}); old_databases, new_databases: {database: {tables:
    [{table, identity, has_pk, rows}], extensions, publication_all_tables, subscriptions}}
    (new_databases holds only the databases the new cluster has); available: the new
    version's extensions; options: {action, reverse, cutover_done, publication,
    subscription, old_host, new_host, new_addresses, old_addresses}."""
    for value, what in ((old, 'old'), (new, 'new'), (old_databases, 'old_databases'),
                        (new_databases, 'new_databases'), (options, 'options')):
        if not isinstance(value, dict):
            raise AnsibleFilterError('upgrade_errors: %s must be a dict, got %r' % (what, type(value).__name__))
    action = options.get('action', 'upgrade')
    publication = options.get('publication')
    subscription = options.get('subscription')
    old_host, new_host = options.get('old_host', 'the old primary'), options.get('new_host', 'the new primary')
    databases = sorted(old.get('databases') or [])
    errors = []
    for option, value in (('upgrade_publication', publication), ('upgrade_subscription', subscription)):
        if not isinstance(value, str) or not _PLAIN_IDENT_RE.match(value):
            errors.append('%s=%r is not a plain lower-case identifier of at most 40 characters (letters, digits, _). '
                          'Fix: a name such as pgha_upgrade.' % (option, value))
    if errors:
        return errors
    if action == 'rollback':
        if not _as_bool(options.get('cutover_done')):
            errors.append('upgrade_action=rollback, but no cutover happened (%s has no cutover marker): writes still '
                          'go to the old cluster, there is nothing to roll back. Fix: leave upgrade_action out to '
                          'continue the upgrade.' % new_host)
        elif int(old.get('subscriptions') or 0) < len(databases):
            errors.append('upgrade_action=rollback, but %s has no subscription %s in every database (no reverse '
                          'replication, upgrade_reverse=false): moving writes back would lose every write made on '
                          '%s since the cutover. Refused; if you accept that loss, point the applications at %s by '
                          'hand.' % (old_host, subscription, new_host, old_host))
        return errors
    if _as_bool(options.get('cutover_done')):
        return []
    errors.extend(upgrade_version_errors(old.get('version'), new.get('version')))
    if _as_bool(old.get('in_recovery')):
        errors.append('%s, the first host of group upgrade_source, is a standby. Fix: list the old cluster\'s primary '
                      'first in upgrade_source.' % old_host)
    if not databases:
        errors.append('%s has no database to migrate (postgres and the templates are not migrated).' % old_host)
        return errors
    slots = [('%s_%s' % (subscription, d)) for d in databases]
    if len(set(s.lower() for s in slots)) < len(slots):
        errors.append('databases %s give the same slot name. Fix: migrate them one at a time.' % _join(databases))
    errors.extend(upgrade_table_errors(dict((d, (old_databases.get(d) or {}).get('tables') or []) for d in databases)))
    errors.extend(upgrade_extension_errors(
        dict((d, (old_databases.get(d) or {}).get('extensions') or []) for d in databases), available, new.get('version')))
    if int(new.get('subscriptions') or 0) == 0:
        errors.extend(upgrade_capacity_errors(old, databases, old.get('slots'), old.get('senders'),
                                              'the old primary %s' % old_host))
    if _as_bool(options.get('reverse', True)):
        errors.extend(upgrade_capacity_errors(new, databases, new.get('slots'), new.get('senders'),
                                              'the new primary %s (for the reverse replication; or '
                                              'upgrade_reverse=false)' % new_host))
    no_pub = [d for d in databases if not _as_bool((old_databases.get(d) or {}).get('publication_all_tables') or False)]
    if no_pub:
        errors.append(_publication_error('the old primary %s' % old_host, publication, no_pub, "in the OLD cluster's "
                                         'inventory', options.get('new_addresses'), "the new cluster's",
                                         'then run site.yml on it.'))
    missing = [d for d in databases if d not in new_databases]
    if missing:
        errors.append(
            'database%s %s of the old cluster do%s not exist on the new primary %s. Fix: add %s to pg_primary_databases '
            '(with the same owner) in this inventory and run site.yml.'
            % ('' if len(missing) == 1 else 's', _join(missing), 'es' if len(missing) == 1 else '', new_host,
               _join(missing)))
    for d in databases:
        info = new_databases.get(d)
        if info is None or int(info.get('subscriptions') or 0) > 0:
            continue
        full = [t.get('table') for t in info.get('tables') or [] if int(t.get('rows') or 0) > 0]
        if full:
            errors.append(
                'database %s on the new primary %s already has rows (%s) and no subscription %s: the initial copy '
                'would duplicate or collide with them (a rolled-back upgrade leaves them). Fix: drop and re-create '
                'the new cluster\'s database %s (site.yml creates it), then run upgrade.yml again.'
                % (d, new_host, _join(full[:5]) + (', ...' if len(full) > 5 else ''), subscription, d))
    if _as_bool(options.get('reverse', True)):
        no_rev = [d for d in databases if d in new_databases
                  and not _as_bool(new_databases[d].get('publication_all_tables') or False)]
        if no_rev:
            errors.append(_publication_error(
                'the new primary %s' % new_host, publication, no_rev, 'in this inventory', options.get('old_addresses'),
                "the old cluster's", 'then run site.yml; or upgrade_reverse=false (no rollback without losing '
                'writes).', ', which the reverse replication (the rollback target) needs'))
    return errors


def upgrade_read_only_sql(databases, read_only):
    """The statements that make each database read-only for new transactions
    (ALTER DATABASE "db" SET default_transaction_read_only = on) or take writes again
    (... RESET default_transaction_read_only), names quoted as identifiers."""
    if not isinstance(databases, (list, tuple)):
        raise AnsibleFilterError('upgrade_read_only_sql expects a list of database names, got %r' % (databases,))
    action = 'SET default_transaction_read_only = on' if _as_bool(read_only) else 'RESET default_transaction_read_only'
    return ['ALTER DATABASE %s %s' % (_quote_ident(d, repr(d), 'upgrade_read_only_sql: database'), action) for d in databases]


class FilterModule(object):
    def filters(self):
        return {
            'upgrade_version_errors': upgrade_version_errors,
            'upgrade_table_errors': upgrade_table_errors,
            'upgrade_extension_errors': upgrade_extension_errors,
            'upgrade_capacity_errors': upgrade_capacity_errors,
            'upgrade_sequence_sql': upgrade_sequence_sql,
            'upgrade_plan': upgrade_plan,
            'upgrade_downtime': upgrade_downtime,
            'upgrade_role_flags': upgrade_role_flags,
            'upgrade_errors': upgrade_errors,
            'upgrade_read_only_sql': upgrade_read_only_sql,
        }

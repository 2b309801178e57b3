# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the logical role (publications on the cluster, subscriptions on
other servers), as pure functions unit-tested in
tests/unit/plugins/filter/test_logical.py.

Every *_errors filter returns a list of messages (empty when the input is
good); each names the variable and the fix, none repeats a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Names this role puts into SQL and conninfo strings unquoted (the community
# modules build their statements from them): plain lower-case identifiers.
_IDENT_RE = re.compile(r'^[a-z_][a-z0-9_]{0,62}$')
# A table as publications list it: table or schema.table, both plain identifiers.
_TABLE_RE = re.compile(r'^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$')
# The password goes into the subscription's conninfo (key=value, space separated).
_CONNINFO_UNSAFE_RE = re.compile(r"[\s'\"\\=]")

#: WAL senders and slots one subscription takes on the publisher: its apply
#: worker, and max_sync_workers_per_subscription (2 by default) table-sync
#: workers during the initial copy or a refresh.
SENDERS_PER_SUBSCRIPTION = 3


def qualified(table):
    """schema.table for a table given as table or schema.table (public by default)."""
    table = str(table)
    return table if '.' in table else 'public.' + table


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def publications_errors(publications, varname='logical_publications'):
    """Shape of logical_publications: [{name, database, tables | all_tables}]."""
    if publications in (None, ''):
        return []
    if not isinstance(publications, (list, tuple)):
        return ['%s must be a list of {name, database, tables or all_tables: true}. Fix: see the logical role\'s '
                'README section.' % varname]
    errors = []
    seen = set()
    for index, pub in enumerate(publications):
        where = '%s[%d]' % (varname, index)
        if not isinstance(pub, dict):
            errors.append('%s must be a dict {name, database, tables or all_tables: true}.' % where)
            continue
        unknown = sorted(set(pub) - {'name', 'database', 'tables', 'all_tables'})
        if unknown:
            errors.append('%s has unknown keys %s. Fix: use name, database, tables, all_tables.'
                          % (where, ', '.join(unknown)))
        for key in ('name', 'database'):
            value = pub.get(key)
            if not isinstance(value, str) or not _IDENT_RE.match(value):
                errors.append('%s.%s=%r is not a plain lower-case identifier (letters, digits, _; 63 at most). '
                              'Fix: rename it.' % (where, key, value))
        name = pub.get('name')
        if name in seen:
            errors.append('%s: publication %r is defined twice. Fix: one entry per publication.' % (where, name))
        seen.add(name)
        tables = pub.get('tables')
        all_tables = pub.get('all_tables', False)
        if not isinstance(all_tables, bool):
            errors.append('%s.all_tables must be true or false.' % where)
        elif all_tables and tables:
            errors.append('%s has both tables and all_tables: true. Fix: keep one.' % where)
        elif not all_tables:
            if not isinstance(tables, (list, tuple)) or not tables:
                errors.append('%s lists no tables. Fix: set tables: [schema.table, ...] or all_tables: true.'
                              % where)
            else:
                bad = [t for t in tables if not isinstance(t, str) or not _TABLE_RE.match(t)]
                if bad:
                    errors.append('%s.tables: %s not table or schema.table with plain lower-case identifiers. '
                                  'Fix: correct the names.' % (where, ', '.join(repr(t) for t in bad)))
    return errors


def subscriptions_errors(subscriptions, host, members, publications, publisher_host='',
                         varname='logical_subscriptions'):
    """Shape of one subscriber's logical_subscriptions, checked against the cluster.

    members: the cluster's member names (a subscriber must not be one); publications: the
    cluster's logical_publications (each subscription must name publications defined there, all
    in its database), unless publisher_host points at another inventory's cluster."""
    if subscriptions in (None, ''):
        return []
    if not isinstance(subscriptions, (list, tuple)):
        return ['%s must be a list of {name, database, publications}.' % varname]
    errors = []
    if host in (members or []) and subscriptions:
        errors.append('%s is a member of the cluster (primary or replica) and has %s: a subscriber must be another '
                      'server. Fix: move the host out of the cluster\'s groups, or remove %s from it.'
                      % (host, varname, varname))
    known = {}
    for pub in publications or []:
        if isinstance(pub, dict):
            known[pub.get('name')] = pub.get('database')
    seen = set()
    for index, sub in enumerate(subscriptions):
        where = '%s[%d] on %s' % (varname, index, host)
        if not isinstance(sub, dict):
            errors.append('%s must be a dict {name, database, publications}.' % where)
            continue
        unknown = sorted(set(sub) - {'name', 'database', 'publications'})
        if unknown:
            errors.append('%s has unknown keys %s. Fix: use name, database, publications.' % (where, ', '.join(unknown)))
        for key in ('name', 'database'):
            value = sub.get(key)
            if not isinstance(value, str) or not _IDENT_RE.match(value):
                errors.append('%s.%s=%r is not a plain lower-case identifier (letters, digits, _; 63 at most). '
                              'Fix: rename it.' % (where, key, value))
        if sub.get('name') in seen:
            errors.append('%s: subscription %r is defined twice on this host.' % (where, sub.get('name')))
        seen.add(sub.get('name'))
        pubs = sub.get('publications')
        if not isinstance(pubs, (list, tuple)) or not pubs:
            errors.append('%s.publications is empty. Fix: list the publications it subscribes to.' % where)
            continue
        if publisher_host:
            continue
        for pub in pubs:
            if pub not in known:
                errors.append('%s subscribes to %r, which logical_publications does not define (defined: %s). '
                              'Fix: add it to logical_publications or correct the name.'
                              % (where, pub, ', '.join(sorted(str(k) for k in known)) or 'none'))
            elif known[pub] != sub.get('database'):
                errors.append('%s (database %r) subscribes to %r, a publication of database %r. Fix: set '
                              'database: %s.' % (where, sub.get('database'), pub, known[pub], known[pub]))
    return errors


def password_errors(password, needed, varname='logical_password'):
    """The subscription's password goes into its conninfo: at least 8 characters, no
    whitespace, quote, backslash or '='."""
    if not needed:
        return []
    if not isinstance(password, str) or len(password) < 8:
        return ['%s is empty or shorter than 8 characters, and logical replication is configured. Fix: set it in '
                'group_vars for all (the cluster and its subscribers), ideally from Ansible Vault.' % varname]
    if _CONNINFO_UNSAFE_RE.search(password):
        return ['%s holds whitespace, a quote, a backslash or "=", which a subscription\'s connection string '
                'cannot carry unquoted. Fix: choose a password without them.' % varname]
    return []


def table_errors(publications, live, varname='logical_publications'):
    """Tables the publications cannot publish, from the primary's catalog.

    live: {database: [{table: schema.table, identity: 'd'|'n'|'f'|'i', has_pk: bool}]}; a database
    missing from live could not be read (not created yet): its listed tables do not exist yet.
    UPDATE and DELETE of a table without a primary key or replica identity fail on the publisher
    once it is published; a listed table that does not exist makes the publication fail."""
    errors = []
    for index, pub in enumerate(publications or []):
        where = '%s[%d] (%s)' % (varname, index, pub.get('name'))
        database = pub.get('database')
        rows = (live or {}).get(database)
        existing = dict((r['table'], r) for r in (rows or []))
        if pub.get('all_tables'):
            wanted = sorted(existing)
        else:
            wanted = [qualified(t) for t in pub.get('tables') or []]
            missing = [t for t in wanted if t not in existing]
            if missing:
                errors.append('%s lists tables that do not exist in database %s: %s. Fix: create them first, or '
                              'remove them from the publication.' % (where, database, ', '.join(missing)))
        no_identity = []
        for t in wanted:
            row = existing.get(t)
            if row is None:
                continue
            identity = row.get('identity')
            if identity == 'n' or (identity == 'd' and not row.get('has_pk')):
                no_identity.append(t)
        if no_identity:
            errors.append('%s: %s in database %s %s no primary key or replica identity, so UPDATE and DELETE on '
                          'them would fail once published. Fix: add a primary key, or ALTER TABLE ... REPLICA '
                          'IDENTITY USING INDEX (or FULL).'
                          % (where, ', '.join(no_identity), database, 'has' if len(no_identity) == 1 else 'have'))
    return errors


def standby_slots(members, host, exclude=None):
    """synchronized_standby_slots for <host> when it is (or becomes) the primary: the slot of every
    other member, minus the excluded hosts (a dead old primary), in the members' order, written as
    PostgreSQL shows it (SHOW), so a run that changes nothing compares equal."""
    exclude = set(_as_list(exclude))
    return ', '.join(m['slot'] for m in members or [] if m['name'] != host and m['name'] not in exclude)


def hba_entries(publications, sources, user):
    """pg_hba rules letting the subscribers (source addresses or networks) reach the published
    databases as the logical user, over TLS with a password."""
    databases = sorted(set(p.get('database') for p in publications or [] if isinstance(p, dict)))
    if not databases or not user:
        return []
    rules = []
    for source in sorted(set(str(s) for s in sources or [] if s)):
        rules.append({'contype': 'hostssl', 'databases': ','.join(databases), 'users': str(user),
                      'source': source, 'method': 'scram-sha-256'})
    return rules


def subscription_plan(subscriptions, existing, publisher_tables, local_tables):
    """What the subscriber must do, per subscription.

    existing: {subscription: [schema.table, ...]} the tables each existing subscription has
    (pg_subscription_rel); publisher_tables: {subscription: [schema.table, ...]} what its
    publications hold now; local_tables: {database: [schema.table, ...]} the subscriber's tables.
    Returns [{name, create, refresh, copy_schema: [tables missing locally]}]."""
    plan = []
    for sub in subscriptions or []:
        name = sub['name']
        local = set((local_tables or {}).get(sub.get('database')) or [])
        wanted = sorted(set((publisher_tables or {}).get(name) or []))
        create = name not in (existing or {})
        plan.append({
            'name': name,
            'create': create,
            'refresh': (not create) and sorted(set(existing[name])) != wanted,
            'copy_schema': [t for t in wanted if t not in local],
        })
    return plan


def grants(publications, live):
    """SELECT grants the logical user needs (the initial copy reads the tables): one item per
    database and schema, [{database, schema, tables: [table, ...]}], sorted. A publication of all
    tables grants on the tables that exist now (live, as in table_errors)."""
    wanted = {}
    for pub in publications or []:
        database = pub.get('database')
        if pub.get('all_tables'):
            tables = [r['table'] for r in (live or {}).get(database) or []]
        else:
            tables = [qualified(t) for t in pub.get('tables') or []]
        for table in tables:
            schema, _dot, name = table.partition('.')
            wanted.setdefault((database, schema), set()).add(name)
    return [{'database': d, 'schema': s, 'tables': sorted(t)} for (d, s), t in sorted(wanted.items())]


def expected_subscriptions(hosts, hostvars):
    """The subscriptions the inventory's subscriber hosts hold: [{host, name, database}], sorted."""
    found = []
    for host in hosts or []:
        try:
            subs = hostvars[host].get('logical_subscriptions') or []
        except (KeyError, AttributeError, TypeError):
            subs = []
        for sub in subs:
            if isinstance(sub, dict) and sub.get('name'):
                found.append({'host': host, 'name': sub['name'], 'database': sub.get('database')})
    return sorted(found, key=lambda s: (s['host'], s['name']))


def slot_report(expected, slots, primary):
    """One line per subscription after a promotion or switchover, from the new primary's logical
    slots (rows of pg_replication_slots: slot_name, active). A subscription whose slot the new
    primary lacks is broken (PostgreSQL 15 has no failover slots, or the slot was never
    synchronized): the line says so and gives the steps that recover it without a wrong row."""
    by_name = dict((s.get('slot_name'), s) for s in slots or [])
    lines = []
    for sub in expected or []:
        slot = by_name.get(sub['name'])
        if slot is not None:
            lines.append('%s on %s: slot %s on %s (%s)' % (
                sub['name'], sub['host'], sub['name'], primary,
                'streaming' if slot.get('active') else 'the subscriber reconnects within seconds'))
        else:
            lines.append(
                'BROKEN %s on %s: %s has no slot %s, so the subscription cannot go on and rows written since the '
                'failover would be missing. Recover, on %s in database %s: ALTER SUBSCRIPTION %s DISABLE; '
                'ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s; then TRUNCATE the tables it '
                'subscribed to; then run site.yml, which subscribes again with a full copy.'
                % (sub['name'], sub['host'], primary, sub['name'], sub['host'], sub['database'], sub['name'],
                   sub['name'], sub['name']))
    return lines


class FilterModule(object):
    def filters(self):
        return {
            'logical_publications_errors': publications_errors,
            'logical_subscriptions_errors': subscriptions_errors,
            'logical_password_errors': password_errors,
            'logical_table_errors': table_errors,
            'logical_standby_slots': standby_slots,
            'logical_hba_entries': hba_entries,
            'logical_subscription_plan': subscription_plan,
            'logical_qualified': qualified,
            'logical_grants': grants,
            'logical_expected_subscriptions': expected_subscriptions,
            'logical_slot_report': slot_report,
        }

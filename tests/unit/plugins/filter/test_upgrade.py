# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter import upgrade as f

SOURCE_VAR = "the upgrade_source cluster's postgresql_version"
TARGET_VAR = "this inventory's postgresql_version"


def test_filters_are_exported():
    assert f.FilterModule().filters() == {
        'upgrade_version_errors': f.upgrade_version_errors,
        'upgrade_table_errors': f.upgrade_table_errors,
        'upgrade_extension_errors': f.upgrade_extension_errors,
        'upgrade_capacity_errors': f.upgrade_capacity_errors,
        'upgrade_sequence_sql': f.upgrade_sequence_sql,
        'upgrade_plan': f.upgrade_plan,
        'upgrade_downtime': f.upgrade_downtime,
        'upgrade_role_flags': f.upgrade_role_flags,
        'upgrade_errors': f.upgrade_errors,
        'upgrade_read_only_sql': f.upgrade_read_only_sql,
    }


# --- versions -----------------------------------------------------------------

@pytest.mark.parametrize('source, target', [(15, 17), ('15', '17'), (15, '17'), ('15.8', 17), (16, 17), (10, 17)])
def test_an_upgrade_to_a_newer_major_passes(source, target):
    assert f.upgrade_version_errors(source, target) == []


@pytest.mark.parametrize('source, target', [(17, 17), ('15', 15), ('15.4', '15.8')])
def test_the_same_major_is_refused(source, target):
    errors = f.upgrade_version_errors(source, target)
    assert len(errors) == 1
    assert SOURCE_VAR in errors[0] and TARGET_VAR in errors[0] and 'newer major version' in errors[0]


def test_a_downgrade_is_refused_naming_both_versions():
    errors = f.upgrade_version_errors(17, 15)
    assert len(errors) == 1
    assert "%s=15 is older than %s=17" % (TARGET_VAR, SOURCE_VAR) in errors[0]
    assert 'does not downgrade' in errors[0] and 'swap the inventories' in errors[0]


@pytest.mark.parametrize('source, target, named', [
    ('fifteen', 17, SOURCE_VAR), (None, 17, SOURCE_VAR), ('', 17, SOURCE_VAR), (True, 17, SOURCE_VAR),
    (15, '17beta1', TARGET_VAR), (15, 'latest', TARGET_VAR), (15, [17], TARGET_VAR), (15, 0, TARGET_VAR),
    (15, -17, TARGET_VAR), (15, '17; drop', TARGET_VAR),
])
def test_a_non_numeric_version_is_named(source, target, named):
    errors = f.upgrade_version_errors(source, target)
    assert len(errors) == 1 and errors[0].startswith(named + '=') and 'is not a PostgreSQL major version' in errors[0]


def test_both_bad_versions_are_named_at_once():
    assert len(f.upgrade_version_errors('x', 'y')) == 2


def test_a_source_without_logical_replication_is_refused():
    errors = f.upgrade_version_errors(9, 17)
    assert len(errors) == 1 and 'no logical replication' in errors[0]


# --- tables ---------------------------------------------------------------------

TABLES = {
    'app': [{'table': 'public.acked', 'identity': 'd', 'has_pk': True},
            {'table': 'sales.orders', 'identity': 'i', 'has_pk': False},
            {'table': 'public.events', 'identity': 'f', 'has_pk': False}],
    'shop': [{'table': 'public.cart', 'identity': 'd', 'has_pk': True}],
}


def test_replicable_tables_pass():
    assert f.upgrade_table_errors(TABLES) == []
    assert f.upgrade_table_errors({}) == [] and f.upgrade_table_errors(None) == []
    assert f.upgrade_table_errors({'empty': []}) == []


def test_tables_without_key_or_identity_are_named_per_database():
    live = dict(TABLES)
    live['app'] = TABLES['app'] + [{'table': 'public.log', 'identity': 'd', 'has_pk': False},
                                   {'table': 'public.nothing', 'identity': 'n', 'has_pk': True}]
    live['shop'] = TABLES['shop'] + [{'table': 'public.audit', 'identity': 'd', 'has_pk': False}]
    errors = f.upgrade_table_errors(live)
    assert len(errors) == 2
    assert errors[0].startswith('database app: public.log, public.nothing have no primary key or replica identity')
    assert errors[1].startswith('database shop: public.audit has no primary key')
    for error in errors:
        assert 'REPLICA IDENTITY FULL' in error and 'primary key' in error
    assert 'ALTER TABLE public.audit REPLICA IDENTITY FULL' in errors[1]
    # the good tables are not named
    assert 'acked' not in errors[0] and 'orders' not in errors[0] and 'events' not in errors[0]


@pytest.mark.parametrize('row', [{'table': 't', 'identity': 'x', 'has_pk': True}, {'identity': 'd'}, 'public.t'])
def test_an_unreadable_table_row_raises(row):
    with pytest.raises(AnsibleFilterError, match='^upgrade_table_errors: '):
        f.upgrade_table_errors({'app': [row]})


def test_tables_not_grouped_by_database_raise():
    with pytest.raises(AnsibleFilterError, match='upgrade_table_errors expects'):
        f.upgrade_table_errors([{'table': 't', 'identity': 'd', 'has_pk': True}])


# --- extensions -----------------------------------------------------------------

AVAILABLE = ['plpgsql', 'pg_stat_statements', 'pgcrypto', 'hstore']


def test_available_extensions_pass():
    installed = {'app': [{'name': 'plpgsql', 'version': '1.0'}, {'name': 'pgcrypto', 'version': '1.3'}],
                 'shop': [{'name': 'hstore', 'version': '1.8'}]}
    assert f.upgrade_extension_errors(installed, AVAILABLE) == []
    assert f.upgrade_extension_errors({}, AVAILABLE) == [] and f.upgrade_extension_errors(None, []) == []


def test_plpgsql_is_always_fine():
    assert f.upgrade_extension_errors({'app': [{'name': 'plpgsql', 'version': '1.0'}]}, []) == []


def test_a_missing_extension_is_named_with_its_databases_and_package():
    installed = {'app': [{'name': 'pg_cron', 'version': '1.6'}, {'name': 'pgcrypto', 'version': '1.3'}],
                 'shop': [{'name': 'pg_cron', 'version': '1.6'}, {'name': 'pg_partman', 'version': '4.7.3'}],
                 'other': [{'name': 'hstore', 'version': '1.8'}]}
    errors = f.upgrade_extension_errors(installed, AVAILABLE, 17)
    assert len(errors) == 2
    assert errors[0].startswith('extension pg_cron (version 1.6), installed in databases app, shop of the old cluster, '
                                'is not available on the new cluster (PostgreSQL 17)')
    assert 'postgresql-17-cron' in errors[0] and 'postgresql_extra_packages' in errors[0]
    assert errors[1].startswith('extension pg_partman (version 4.7.3), installed in database shop ')
    assert 'postgresql-17-pg-partman' in errors[1]


def test_the_available_list_may_hold_rows_and_names_without_version():
    assert f.upgrade_extension_errors({'app': ['vector']}, [{'name': 'vector', 'default_version': '0.8'}]) == []
    errors = f.upgrade_extension_errors({'app': ['vector']}, [])
    assert len(errors) == 1 and 'extension vector, installed in database app' in errors[0]
    assert 'postgresql-<new version>-pgvector' in errors[0]


def test_an_extension_row_without_name_raises():
    with pytest.raises(AnsibleFilterError, match='has no name'):
        f.upgrade_extension_errors({'app': [{'version': '1.0'}]}, AVAILABLE)


# --- capacity -------------------------------------------------------------------

def _settings(slots, senders, wal_level='logical'):
    return {'max_replication_slots': slots, 'max_wal_senders': senders, 'wal_level': wal_level}


def test_capacity_exactly_enough_passes():
    # 2 slots in use (two replicas) + 2 databases x 3 = 8
    assert f.upgrade_capacity_errors(_settings('8', '8'), ['app', 'shop'], 2) == []
    assert f.upgrade_capacity_errors(_settings(8, 8), ['app', 'shop'], '2') == []


def test_capacity_one_short_is_refused_with_the_number_needed():
    errors = f.upgrade_capacity_errors(_settings('7', '8'), ['app', 'shop'], 2)
    assert len(errors) == 1
    assert errors[0].startswith('max_replication_slots is 7 on the old primary (upgrade_source), and 8 are needed: '
                                '2 in use + 2 databases x 3')
    assert 'set max_replication_slots: 8 or more' in errors[0] and 'site.yml' in errors[0] and 'restart' in errors[0]
    errors = f.upgrade_capacity_errors(_settings('8', '7'), ['app', 'shop'], 2)
    assert len(errors) == 1 and errors[0].startswith('max_wal_senders is 7') and 'max_wal_senders: 8' in errors[0]


def test_senders_in_use_can_differ_from_slots():
    assert f.upgrade_capacity_errors(_settings('5', '5'), ['app'], 2) == []
    errors = f.upgrade_capacity_errors(_settings('5', '5'), ['app'], 2, existing_senders=3)
    assert len(errors) == 1 and 'max_wal_senders is 5' in errors[0] and '6 are needed' in errors[0]


def test_a_database_listed_twice_counts_once():
    assert f.upgrade_capacity_errors(_settings('3', '3'), ['app', 'app'], 0) == []


@pytest.mark.parametrize('wal_level', ['replica', 'minimal', '', None])
def test_wal_level_must_be_logical(wal_level):
    errors = f.upgrade_capacity_errors(_settings('10', '10', wal_level), ['app'], 0)
    assert len(errors) == 1 and errors[0].startswith('wal_level is ')
    assert 'wal_level: logical' in errors[0] and 'logical_publications' in errors[0]
    assert 'site.yml' in errors[0] and 'restart' in errors[0]


def test_wal_level_as_show_returns_it_passes():
    assert f.upgrade_capacity_errors(_settings('10', '10', 'logical'), ['app'], 0) == []


def test_every_shortage_is_named_at_once_and_the_publisher_can_be_renamed():
    errors = f.upgrade_capacity_errors(_settings('2', 'ten', 'replica'), ['a', 'b'], 0, where='the new primary pg17-1')
    assert len(errors) == 3
    assert all('the new primary pg17-1' in e for e in errors)
    assert "max_wal_senders='ten'" in errors[2] and 'not a number' in errors[2]


def test_capacity_with_bad_input_raises():
    with pytest.raises(AnsibleFilterError):
        f.upgrade_capacity_errors(None, ['app'], 0)
    with pytest.raises(AnsibleFilterError):
        f.upgrade_capacity_errors(_settings('10', '10'), ['app'], 'many')


# --- sequences ------------------------------------------------------------------

def test_sequence_statements():
    sql = f.upgrade_sequence_sql([
        {'schema': 'public', 'name': 'orders_id_seq', 'last_value': 42, 'is_called': True},
        {'schema': 'sales', 'name': 'fresh', 'last_value': '1', 'is_called': False},
        {'schema': 'public', 'name': 'unused', 'last_value': None, 'is_called': False},
        {'schema': 'public', 'name': 'negative', 'last_value': '-9223372036854775808', 'is_called': 't'},
    ])
    assert sql == [
        """SELECT pg_catalog.setval('"public"."orders_id_seq"', 42, true)""",
        """SELECT pg_catalog.setval('"sales"."fresh"', 1, false)""",
        """SELECT pg_catalog.setval('"public"."negative"', -9223372036854775808, true)""",
    ]
    assert f.upgrade_sequence_sql([]) == [] and f.upgrade_sequence_sql(None) == []


def test_a_never_used_sequence_is_skipped_even_with_a_bad_name():
    assert f.upgrade_sequence_sql([{'schema': '', 'name': None, 'last_value': None, 'is_called': False}]) == []


@pytest.mark.parametrize('schema, name, regclass', [
    ('public', 'Mixed Case', '\'"public"."Mixed Case"\''),
    ('public', 'a"b', '\'"public"."a""b"\''),
    ('public', '"; DROP TABLE t; --', '\'"public"."""; DROP TABLE t; --"\''),
    ("o'brien", 'x', '\'"o\'\'brien"."x"\''),
    ('public', "x'); DROP TABLE t; --", '\'"public"."x\'\'); DROP TABLE t; --"\''),
    # E'' keeps a backslash literal whatever standard_conforming_strings says
    ('public', 'back\\slash', 'E\'"public"."back\\\\slash"\''),
    ('public', "q\\'", 'E\'"public"."q\\\\\'\'"\''),
    ('public', 'ünïcode', '\'"public"."ünïcode"\''),
])
def test_injection_looking_identifiers_are_quoted(schema, name, regclass):
    assert f.upgrade_sequence_sql([{'schema': schema, 'name': name, 'last_value': 7, 'is_called': True}]) == [
        'SELECT pg_catalog.setval(%s, 7, true)' % regclass]


@pytest.mark.parametrize('row, words', [
    ({'schema': 'public', 'name': 's', 'last_value': '7; DROP TABLE t', 'is_called': True}, "'public'.'s' has last_value"),
    ({'schema': 'public', 'name': 's', 'last_value': 1.5, 'is_called': True}, "'public'.'s' has last_value 1.5"),
    ({'schema': 'public', 'name': 's', 'last_value': True, 'is_called': True}, "'public'.'s' has last_value"),
    ({'schema': 'public', 'name': 's', 'last_value': '1e3', 'is_called': True}, 'not an integer'),
    ({'schema': 'public', 'name': 's', 'last_value': 2 ** 63, 'is_called': True}, 'outside bigint'),
    ({'schema': 'public', 'name': 's', 'last_value': 1, 'is_called': 'maybe'}, "'public'.'s' has is_called 'maybe'"),
    ({'schema': 'public', 'name': 's', 'last_value': 1, 'is_called': None}, 'is_called None'),
    ({'schema': '', 'name': 's', 'last_value': 1, 'is_called': True}, "''.'s' has an empty"),
    ({'schema': 'public', 'name': 7, 'last_value': 1, 'is_called': True}, 'non-text'),
    ({'schema': 'public', 'name': 'a\x00b', 'last_value': 1, 'is_called': True}, 'NUL byte'),
    ({'schema': 'public', 'name': 'x' * 64, 'last_value': 1, 'is_called': True}, 'longer than 63 bytes'),
    ({'schema': 'public', 'name': 'é' * 32, 'last_value': 1, 'is_called': True}, 'longer than 63 bytes'),
])
def test_bad_sequences_raise_naming_the_sequence(row, words):
    with pytest.raises(AnsibleFilterError, match='^upgrade_sequence_sql: ') as err:
        f.upgrade_sequence_sql([row])
    assert words in str(err.value)


def test_a_63_byte_name_is_fine():
    assert f.upgrade_sequence_sql([{'schema': 'public', 'name': 'x' * 63, 'last_value': 1, 'is_called': True}])


def test_sequences_not_a_list_of_rows_raise():
    with pytest.raises(AnsibleFilterError):
        f.upgrade_sequence_sql({'schema': 'public'})
    with pytest.raises(AnsibleFilterError):
        f.upgrade_sequence_sql(['public.s'])


# --- plan -----------------------------------------------------------------------

OLD = {'primary': 'pg15-1', 'version': 15, 'replicas': ['pg15-2']}
NEW = {'primary': 'pg17-1', 'version': 17, 'replicas': ['pg17-2', 'pg17-3'], 'vip': '10.0.0.50'}


def test_plan_names_versions_hosts_and_databases_in_order():
    lines = f.upgrade_plan(OLD, NEW, ['shop', 'app'])
    text = '\n'.join(lines)
    assert lines[0] == ('Blue-green upgrade from PostgreSQL 15 on pg15-1 (old primary) to PostgreSQL 17 on pg17-1 '
                        '(new primary, replicas pg17-2, pg17-3), by logical replication.')
    assert lines[1] == 'Databases (2): app, shop.'
    order = ['roles', 'publication FOR ALL TABLES', 'subscription per database', 'lag is small', 'CUTOVER',
             'confirmed_flush_lsn', 'sequence values', 'writer VIP 10.0.0.50 to pg17-1', 'Prove a write on pg17-1']
    positions = [text.index(words) for words in order]
    assert positions == sorted(positions)
    assert 'On pg15-1: a publication' in text and 'On pg17-1: a subscription' in text
    assert 'NO schema change (DDL)' in text
    assert lines[-1].startswith('No reverse replication') and 'loses every write made on pg17-1' in lines[-1]


def test_plan_with_reverse_ends_with_the_rollback():
    lines = f.upgrade_plan(OLD, NEW, ['app'], reverse=True)
    assert 'pg15-1 subscribes to pg17-1' in lines[-2]
    assert lines[-1].startswith('Rollback stays possible') and 'PostgreSQL 15' in lines[-1]
    assert not any('No reverse replication' in line for line in lines)


def test_plan_without_vip_prints_the_target():
    lines = f.upgrade_plan('pg15-1', {'primary': 'pg17-1', 'version': 17}, ['app'])
    assert 'No writer VIP: point the applications at pg17-1' in '\n'.join(lines)
    assert lines[0].startswith('Blue-green upgrade from PostgreSQL ? on pg15-1')


def test_plan_uses_the_old_vip_when_the_new_cluster_names_none():
    lines = f.upgrade_plan(dict(OLD, vip='10.0.0.10'), {'primary': 'pg17-1', 'version': 17}, ['app'])
    assert 'Move the writer VIP 10.0.0.10 to pg17-1.' in '\n'.join(lines)


@pytest.mark.parametrize('source, target, databases', [
    (OLD, NEW, []), (OLD, NEW, None), ({'version': 15}, NEW, ['app']), (OLD, {'primary': ''}, ['app'])])
def test_plan_refuses_incomplete_input(source, target, databases):
    with pytest.raises(AnsibleFilterError, match='^upgrade_plan: '):
        f.upgrade_plan(source, target, databases)


# --- downtime -------------------------------------------------------------------

MARKS = [['checks', 1000.0], ['copy', 1010.0], ['writes stopped', 1100.04], ['sequences', 1101.0],
         ['writes back', 1103.26], ['summary', 1104.5]]


def test_downtime_from_the_marks():
    assert f.upgrade_downtime(MARKS) == {'write_downtime': 3.2, 'total': 104.5}


def test_downtime_from_marks_as_the_playbook_writes_them():
    # "{{ now(utc=true).timestamp() }}" lands in the list as a string
    marks = [['survey', '1700000000.25'], ['writes stopped', '1700000010.0'], ['writes back', '1700000011.96']]
    assert f.upgrade_downtime(marks) == {'write_downtime': 2.0, 'total': 11.7}


@pytest.mark.parametrize('label', ['writes stopped', 'writes back'])
def test_a_missing_mark_raises_naming_it(label):
    marks = [m for m in MARKS if m[0] != label]
    with pytest.raises(AnsibleFilterError, match="^upgrade_downtime: no '%s' mark" % label):
        f.upgrade_downtime(marks)


def test_both_marks_missing_are_named():
    with pytest.raises(AnsibleFilterError, match="no 'writes stopped' mark and no 'writes back' mark"):
        f.upgrade_downtime([['checks', 1.0]])


@pytest.mark.parametrize('marks', [None, [], 'writes stopped', [['writes stopped']], [['writes back', 'soon']]])
def test_malformed_marks_raise(marks):
    with pytest.raises(AnsibleFilterError, match='^upgrade_downtime'):
        f.upgrade_downtime(marks)


def test_writes_back_before_writes_stopped_raises():
    with pytest.raises(AnsibleFilterError, match='before'):
        f.upgrade_downtime([['writes back', 10.0], ['writes stopped', 12.0]])


# --------------------------------------------------------------------------
# upgrade_role_flags, upgrade_read_only_sql, upgrade_errors
# --------------------------------------------------------------------------

def _role(**kw):
    row = dict(rolname='app', rolsuper=False, rolcreatedb=False, rolcreaterole=False, rolreplication=False,
               rolcanlogin=True, rolbypassrls=False, rolinherit=True)
    row.update(kw)
    return row


def test_role_flags_copy_every_attribute():
    assert f.upgrade_role_flags(_role()) == \
        'NOSUPERUSER,NOCREATEDB,NOCREATEROLE,NOREPLICATION,LOGIN,NOBYPASSRLS,INHERIT'
    assert f.upgrade_role_flags(_role(rolsuper=True, rolcanlogin=False, rolinherit='f')) == \
        'SUPERUSER,NOCREATEDB,NOCREATEROLE,NOREPLICATION,NOLOGIN,NOBYPASSRLS,NOINHERIT'


def test_role_flags_refuse_a_row_without_an_attribute():
    row = _role()
    del row['rolbypassrls']
    with pytest.raises(AnsibleFilterError, match='rolbypassrls'):
        f.upgrade_role_flags(row)


def test_read_only_sql_quotes_the_names():
    assert f.upgrade_read_only_sql(['app', 'Odd"name'], True) == [
        'ALTER DATABASE "app" SET default_transaction_read_only = on',
        'ALTER DATABASE "Odd""name" SET default_transaction_read_only = on']
    assert f.upgrade_read_only_sql(['app'], False) == ['ALTER DATABASE "app" RESET default_transaction_read_only']
    with pytest.raises(AnsibleFilterError, match='upgrade_read_only_sql: database'):
        f.upgrade_read_only_sql([''], True)


def _cluster(version, **kw):
    c = dict(version=version, in_recovery=False, wal_level='logical', max_replication_slots='10',
             max_wal_senders='10', slots=1, senders=1, databases=['app'], all_databases=['app', 'postgres'],
             subscriptions=0)
    c.update(kw)
    return c


def _db(tables=None, publication=True, subscriptions=0, extensions=None):
    return dict(tables=[{'table': 'public.t', 'identity': 'd', 'has_pk': True, 'rows': 1}] if tables is None else tables,
                extensions=extensions or [{'name': 'plpgsql', 'version': '1.0'}],
                publication_all_tables=publication, subscriptions=subscriptions)


OPTS = dict(action='upgrade', reverse=True, cutover_done=False, publication='pgha_upgrade',
            subscription='pgha_upgrade', old_host='old1', new_host='new1',
            new_addresses=['10.0.0.20/32'], old_addresses=['10.0.0.31/32'])


def _errors(old=None, new=None, old_dbs=None, new_dbs=None, **opts):
    options = dict(OPTS, **opts)
    return f.upgrade_errors(old or _cluster(15), new or _cluster(17, databases=['app']),
                            {'app': _db()} if old_dbs is None else old_dbs,
                            {'app': _db(tables=[])} if new_dbs is None else new_dbs, ['plpgsql'], options)


def test_a_ready_pair_of_clusters_has_no_error():
    assert _errors() == []


def test_the_same_or_an_older_version_is_refused():
    assert 'both 17' in ' '.join(_errors(old=_cluster(17)))
    assert 'does not downgrade' in ' '.join(_errors(old=_cluster(17), new=_cluster(15)))


def test_a_standby_listed_first_is_refused():
    assert 'upgrade_source, is a standby' in ' '.join(_errors(old=_cluster(15, in_recovery=True)))


def test_a_table_without_identity_is_refused_naming_it():
    bad = _db(tables=[{'table': 'public.nopk', 'identity': 'd', 'has_pk': False, 'rows': 0}])
    assert 'public.nopk' in ' '.join(_errors(old_dbs={'app': bad}))


def test_a_missing_publication_names_the_fix_for_the_old_inventory():
    text = ' '.join(_errors(old_dbs={'app': _db(publication=None)}))
    assert 'no publication pgha_upgrade FOR ALL TABLES in database app' in text
    assert '{name: pgha_upgrade, database: app, all_tables: true}' in text and '10.0.0.20/32' in text


def test_a_database_missing_on_the_new_cluster_is_refused():
    assert 'do' in ' '.join(_errors(new_dbs={}))
    assert 'pg_primary_databases' in ' '.join(_errors(new_dbs={}))


def test_rows_already_on_the_new_cluster_without_a_subscription_are_refused():
    text = ' '.join(_errors(new_dbs={'app': _db()}))
    assert 'already has rows (public.t)' in text and 'drop and re-create' in text
    # a re-run: the subscription exists, its copied rows are expected
    assert _errors(new_dbs={'app': _db(subscriptions=1)}, new=_cluster(17, subscriptions=1)) == []


def test_the_reverse_replication_needs_a_publication_on_the_new_cluster():
    text = ' '.join(_errors(new_dbs={'app': _db(tables=[], publication=None)}))
    assert 'which the reverse replication' in text and '10.0.0.31/32' in text
    assert _errors(new_dbs={'app': _db(tables=[], publication=None)}, reverse=False) == []


def test_capacity_and_wal_level_on_both_sides():
    text = ' '.join(_errors(old=_cluster(15, wal_level='replica', max_wal_senders='2')))
    assert "wal_level is 'replica' on the old primary old1" in text and 'max_wal_senders is 2' in text
    assert 'for the reverse replication' in ' '.join(_errors(new=_cluster(17, wal_level='replica')))


def test_no_database_to_migrate():
    assert 'no database to migrate' in ' '.join(_errors(old=_cluster(15, databases=[])))


def test_after_the_cutover_an_upgrade_run_has_nothing_to_check():
    assert _errors(old=_cluster(17), cutover_done=True) == []


def test_a_rollback_needs_a_cutover_and_the_reverse_subscriptions():
    assert 'no cutover happened' in ' '.join(_errors(action='rollback'))
    text = ' '.join(_errors(action='rollback', cutover_done=True))
    assert 'would lose every write' in text
    assert _errors(action='rollback', cutover_done=True, old=_cluster(15, subscriptions=1)) == []


def test_hostile_publication_and_subscription_names_are_refused_first():
    text = ' '.join(_errors(publication='x; DROP TABLE t'))
    assert "upgrade_publication='x; DROP TABLE t' is not a plain lower-case identifier" in text
    assert 'upgrade_subscription' in ' '.join(_errors(subscription='Sub'))
    assert 'upgrade_subscription' in ' '.join(_errors(subscription='a' * 41, action='rollback'))

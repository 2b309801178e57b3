# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pgha.cluster.plugins.filter import logical as f

PUB = [{'name': 'app_pub', 'database': 'app', 'tables': ['acked', 'sales.orders']}]
LIVE = {'app': [{'table': 'public.acked', 'identity': 'd', 'has_pk': True},
                {'table': 'sales.orders', 'identity': 'i', 'has_pk': False},
                {'table': 'public.private', 'identity': 'd', 'has_pk': False},
                {'table': 'public.events', 'identity': 'f', 'has_pk': False},
                {'table': 'public.nothing', 'identity': 'n', 'has_pk': True}]}
MEMBERS = [{'name': 'pg1', 'slot': 'pg1'}, {'name': 'pg2', 'slot': 'pg2'}, {'name': 'pg3', 'slot': 'pg3'}]


def test_good_publications_pass():
    assert f.publications_errors(PUB) == []
    assert f.publications_errors([{'name': 'all_pub', 'database': 'app', 'all_tables': True}]) == []
    assert f.publications_errors([]) == [] and f.publications_errors(None) == []


@pytest.mark.parametrize('pub, words', [
    ({'name': 'App', 'database': 'app', 'tables': ['t']}, "logical_publications[0].name='App'"),
    ({'name': 'p', 'database': 'app;drop', 'tables': ['t']}, 'logical_publications[0].database'),
    ({'name': 'p', 'database': 'app'}, 'lists no tables'),
    ({'name': 'p', 'database': 'app', 'tables': ['t'], 'all_tables': True}, 'both tables and all_tables'),
    ({'name': 'p', 'database': 'app', 'tables': ['t"; drop']}, 'not table or schema.table'),
    ({'name': 'p', 'database': 'app', 'tables': ['a.b.c']}, 'not table or schema.table'),
    ({'name': 'p', 'database': 'app', 'tables': ['t'], 'table': ['x']}, 'unknown keys table'),
])
def test_bad_publications_are_named(pub, words):
    errors = f.publications_errors([pub])
    assert errors and words in ' '.join(errors)


def test_a_publication_defined_twice():
    assert 'defined twice' in ' '.join(f.publications_errors(PUB + PUB))


def test_subscriptions_checked_against_the_cluster():
    good = [{'name': 'app_sub', 'database': 'app', 'publications': ['app_pub']}]
    assert f.subscriptions_errors(good, 'sub1', ['pg1', 'pg2'], PUB) == []
    member = ' '.join(f.subscriptions_errors(good, 'pg2', ['pg1', 'pg2'], PUB))
    assert 'pg2 is a member of the cluster' in member
    unknown = ' '.join(f.subscriptions_errors([dict(good[0], publications=['nope'])], 'sub1', ['pg1'], PUB))
    assert "'nope', which logical_publications does not define (defined: app_pub)" in unknown
    wrong_db = ' '.join(f.subscriptions_errors([dict(good[0], database='other')], 'sub1', ['pg1'], PUB))
    assert 'set database: app' in wrong_db
    # another inventory's cluster: its publications are not known here
    assert f.subscriptions_errors([dict(good[0], publications=['theirs'])], 'sub1', ['pg1'], PUB, '10.0.0.5') == []
    assert 'is empty' in ' '.join(f.subscriptions_errors([dict(good[0], publications=[])], 's', [], PUB))


@pytest.mark.parametrize('password, ok', [
    ('long-enough', True), ('x7Q', False), ('has space!', False), ("quo'te123", False),
    ('back\\slash1', False), ('a=b=c=d=e', False), (None, False)])
def test_password(password, ok):
    errors = f.password_errors(password, True)
    assert (errors == []) == ok
    assert all(str(password) not in e for e in errors if password)


def test_password_not_needed_without_logical_replication():
    assert f.password_errors('', False) == []


def test_unknown_tables_and_tables_without_identity_are_named():
    pubs = [{'name': 'p', 'database': 'app', 'tables': ['acked', 'nosuch', 'private', 'events', 'nothing']}]
    text = ' '.join(f.table_errors(pubs, LIVE))
    assert 'do not exist in database app: public.nosuch' in text
    assert 'public.private, public.nothing in database app have no primary key or replica identity' in text
    assert 'public.acked' not in text and 'public.events' not in text   # a key, and REPLICA IDENTITY FULL
    assert f.table_errors(PUB, LIVE) == []   # an identity index counts


def test_a_database_not_created_yet_holds_no_table():
    assert 'do not exist' in ' '.join(f.table_errors(PUB, {}))
    assert f.table_errors([{'name': 'p', 'database': 'app', 'all_tables': True}], {}) == []


def test_all_tables_checks_every_table():
    text = ' '.join(f.table_errors([{'name': 'p', 'database': 'app', 'all_tables': True}], LIVE))
    assert 'public.nothing, public.private' in text and 'do not exist' not in text


def test_standby_slots_leave_out_the_host_and_the_excluded():
    assert f.standby_slots(MEMBERS, 'pg1') == 'pg2, pg3'
    assert f.standby_slots(MEMBERS, 'pg2', ['pg1']) == 'pg3'
    assert f.standby_slots(MEMBERS[:2], 'pg2', 'pg1') == ''


def test_hba_entries():
    rules = f.hba_entries(PUB + [{'name': 'x', 'database': 'crm', 'all_tables': True}], ['10.0.0.9/32', ''], 'lg')
    assert rules == [{'contype': 'hostssl', 'databases': 'app,crm', 'users': 'lg', 'source': '10.0.0.9/32',
                      'method': 'scram-sha-256'}]
    assert f.hba_entries([], ['10.0.0.9/32'], 'lg') == []


def test_grants_per_database_and_schema():
    assert f.grants(PUB, LIVE) == [{'database': 'app', 'schema': 'public', 'tables': ['acked']},
                                   {'database': 'app', 'schema': 'sales', 'tables': ['orders']}]
    everything = f.grants([{'name': 'p', 'database': 'app', 'all_tables': True}], LIVE)
    assert everything[0]['tables'] == ['acked', 'events', 'nothing', 'private']


def test_subscription_plan():
    subs = [{'name': 'new', 'database': 'app'}, {'name': 'same', 'database': 'app'},
            {'name': 'grown', 'database': 'app'}]
    plan = f.subscription_plan(
        subs,
        existing={'same': ['public.a'], 'grown': ['public.a']},
        publisher_tables={'new': ['public.a'], 'same': ['public.a'], 'grown': ['public.a', 'public.b']},
        local_tables={'app': ['public.a'], 'other': ['public.b']})
    assert plan == [
        {'name': 'new', 'create': True, 'refresh': False, 'copy_schema': []},
        {'name': 'same', 'create': False, 'refresh': False, 'copy_schema': []},
        {'name': 'grown', 'create': False, 'refresh': True, 'copy_schema': ['public.b']},
    ]
    # a table left the publication: refresh, nothing to copy
    shrunk = f.subscription_plan([{'name': 's', 'database': 'app'}], {'s': ['public.a', 'public.b']},
                                 {'s': ['public.a']}, {'app': ['public.a', 'public.b']})
    assert shrunk[0]['refresh'] and shrunk[0]['copy_schema'] == []


def test_expected_subscriptions_from_the_subscribers():
    hostvars = {'sub2': {'logical_subscriptions': [{'name': 'b', 'database': 'app'}]},
                'sub1': {'logical_subscriptions': [{'name': 'a', 'database': 'crm'}]}, 'sub3': {}}
    assert f.expected_subscriptions(['sub2', 'sub1', 'sub3', 'gone'], hostvars) == [
        {'host': 'sub1', 'name': 'a', 'database': 'crm'}, {'host': 'sub2', 'name': 'b', 'database': 'app'}]


def test_slot_report_names_the_broken_subscription_and_its_recovery():
    expected = [{'host': 'sub1', 'name': 'app_sub', 'database': 'app'},
                {'host': 'sub2', 'name': 'crm_sub', 'database': 'crm'}]
    lines = f.slot_report(expected, [{'slot_name': 'app_sub', 'active': True}], 'pg2')
    assert lines[0] == 'app_sub on sub1: slot app_sub on pg2 (streaming)'
    assert lines[1].startswith('BROKEN crm_sub on sub2: pg2 has no slot crm_sub')
    for step in ('ALTER SUBSCRIPTION crm_sub DISABLE', "SET (slot_name = NONE)", 'DROP SUBSCRIPTION crm_sub',
                 'TRUNCATE', 'site.yml', 'database crm'):
        assert step in lines[1]
    assert f.slot_report([], [], 'pg2') == []

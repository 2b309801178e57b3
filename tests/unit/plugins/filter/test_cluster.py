"""The runbooks' decisions, from survey data to plan."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.cluster import (
    failover_plan,
    node_table,
    rejoin_plan,
    survey_node,
    survey_nodes,
    switchover_plan,
)


def primary_info(lsn='0/5000000', timeline=1, standbys=('pg2', 'pg3')):
    return {'role': 'primary', 'timeline': timeline, 'current_lsn': lsn,
            'standbys': [{'application_name': s, 'state': 'streaming'} for s in standbys]}


def standby_info(receive, replay=None, timeline=1, status='streaming', sender='10.0.0.1'):
    return {'role': 'standby', 'timeline': timeline, 'receive_lsn': receive, 'replay_lsn': replay or receive,
            'wal_receiver': {'status': status, 'sender_host': sender} if status else None}


UNREACHABLE = {'unreachable': True, 'msg': 'ssh: connect timed out'}
DOWN = {'failed': True, 'msg': 'could not connect to server'}


def nodes(**infos):
    return [survey_node(name, info) for name, info in sorted(infos.items())]


# --- survey -----------------------------------------------------------------

def test_survey_node_shapes():
    assert survey_node('pg1', None)['reachable'] is False
    un = survey_node('pg1', UNREACHABLE)
    assert (un['reachable'], un['role'], un['error']) == (False, 'unknown', 'ssh: connect timed out')
    down = survey_node('pg1', DOWN, {'stat': {'exists': True}})
    assert (down['reachable'], down['running'], down['role'], down['fenced']) == (True, False, 'down', True)
    p = survey_node('pg1', primary_info())
    assert (p['role'], p['lsn'], p['standbys']) == ('primary', '0/5000000', ['pg2', 'pg3'])
    s = survey_node('pg2', standby_info('0/4000000', '0/3000000'))
    assert (s['lsn'], s['replay_lsn'], s['receiver'], s['upstream']) == ('0/4000000', '0/3000000', 'streaming',
                                                                         '10.0.0.1')


def test_survey_nodes_reads_hostvars():
    hv = {'pg1': {'pgha_survey_info': primary_info()}, 'pg2': {}}
    got = survey_nodes(['pg1', 'pg2'], hv)
    assert [n['role'] for n in got] == ['primary', 'unknown']


def test_node_table_lines():
    lines = node_table(nodes(pg1=UNREACHABLE, pg2=standby_info('0/4000000')))
    assert lines[0].split()[:3] == ['node', 'reachable', 'role']
    assert lines[1].split()[:3] == ['pg1', 'NO', 'unknown']
    assert lines[2].split()[:5] == ['pg2', 'yes', 'STANDBY', '1', '0/4000000']


# --- failover -----------------------------------------------------------------

def test_failover_picks_the_most_advanced_replica():
    plan = failover_plan(nodes(pg1=UNREACHABLE, pg2=standby_info('0/4000000'), pg3=standby_info('0/4000100')), 'pg1')
    assert plan['action'] == 'promote'
    assert plan['candidate'] == 'pg3' and plan['followers'] == ['pg2'] and plan['candidate_lag_bytes'] == 0
    assert plan['lost_bytes_estimate'] is None


def test_failover_tie_prefers_a_synchronous_standby():
    n = nodes(pg1=UNREACHABLE, pg2=standby_info('0/4000000'), pg3=standby_info('0/4000000'))
    assert failover_plan(n, 'pg1', sync_names=['pg3'])['candidate'] == 'pg3'
    assert failover_plan(n, 'pg1')['candidate'] == 'pg2'


def test_failover_refuses_a_healthy_primary_unless_forced():
    n = nodes(pg1=primary_info('0/5000000'), pg2=standby_info('0/4000000'), pg3=standby_info('0/5000000'))
    plan = failover_plan(n, 'pg1')
    assert plan['action'] == 'refuse' and plan['override'] == 'promote_force'
    assert 'switchover.yml' in plan['reason']
    forced = failover_plan(n, 'pg1', force=True)
    assert forced['action'] == 'promote' and forced['candidate'] == 'pg3'
    assert forced['lost_bytes_estimate'] == 0


def test_failover_refuses_a_lagging_candidate():
    n = nodes(pg1=UNREACHABLE, pg2=standby_info('0/4000000'), pg3=standby_info('0/4100000'))
    plan = failover_plan(n, 'pg1', candidate='pg2')
    assert plan['action'] == 'refuse' and plan['candidate_lag_bytes'] == 0x100000
    assert 'promote_max_lag_bytes=0' in plan['reason'] and 'Pick pg3' in plan['reason']
    assert failover_plan(n, 'pg1', candidate='pg2', max_lag_bytes=0x100000)['action'] == 'promote'
    assert failover_plan(n, 'pg1', candidate='pg2', force=True)['action'] == 'promote'


def test_failover_noop_when_already_failed_over():
    n = nodes(pg1=UNREACHABLE, pg2=primary_info(timeline=2), pg3=standby_info('0/5000000', timeline=2))
    plan = failover_plan(n, 'pg1')
    assert plan['action'] == 'noop' and plan['candidate'] == 'pg2' and 'timeline 2' in plan['reason']


def test_failover_refuses_split_brain_and_nothing_to_promote():
    plan = failover_plan(nodes(pg1=primary_info(), pg2=primary_info(timeline=2)), 'pg1')
    assert plan['action'] == 'refuse' and 'split brain' in plan['reason']
    plan = failover_plan(nodes(pg1=UNREACHABLE, pg2=DOWN), 'pg1')
    assert plan['action'] == 'refuse' and 'No replica answered' in plan['reason']


def test_failover_refuses_a_stale_inventory_and_bad_candidate():
    n = nodes(pg1=standby_info('0/5000000', timeline=2), pg2=UNREACHABLE, pg3=standby_info('0/5000000'))
    plan = failover_plan(n, 'pg1')
    assert plan['action'] == 'refuse' and plan['override'] == 'promote_old_primary'
    plan = failover_plan(nodes(pg1=UNREACHABLE, pg2=DOWN, pg3=standby_info('0/1')), 'pg1', candidate='pg2')
    assert plan['action'] == 'refuse' and plan['override'] == 'promote_candidate'


def test_failover_rejects_bad_input():
    with pytest.raises(AnsibleFilterError):
        failover_plan([], 'pg1')
    with pytest.raises(AnsibleFilterError, match='not among the surveyed'):
        failover_plan(nodes(pg2=standby_info('0/1')), 'pg1')


# --- switchover ---------------------------------------------------------------

def test_switchover_plan():
    n = nodes(pg1=primary_info('0/5000000'), pg2=standby_info('0/5000000'), pg3=standby_info('0/4FFFF00'))
    plan = switchover_plan(n)
    assert (plan['action'], plan['primary'], plan['candidate'], plan['followers']) == \
        ('switchover', 'pg1', 'pg2', ['pg3'])
    assert switchover_plan(n, candidate='pg3')['candidate'] == 'pg3'
    assert switchover_plan(n, sync_names=['pg3'])['candidate'] == 'pg3'


def test_switchover_refusals():
    down = nodes(pg1=primary_info(), pg2=standby_info('0/5000000'), pg3=UNREACHABLE)
    assert 'pg3 is down' in switchover_plan(down)['reason']
    lag = nodes(pg1=primary_info('1/0'), pg2=standby_info('0/0'))
    plan = switchover_plan(lag)
    assert plan['action'] == 'refuse' and plan['override'] == 'switchover_max_lag_bytes'
    none = nodes(pg1=UNREACHABLE, pg2=standby_info('0/1'))
    assert 'promote.yml' in switchover_plan(none)['reason']
    not_streaming = nodes(pg1=primary_info(), pg2=standby_info('0/5000000', status=None))
    assert 'does not stream' in switchover_plan(not_streaming)['reason']


# --- rejoin -------------------------------------------------------------------

def test_rejoin_plan():
    fenced_old = survey_node('pg1', DOWN, {'stat': {'exists': True}})
    n = [fenced_old, survey_node('pg2', primary_info(timeline=2)), survey_node('pg3', standby_info('0/1', timeline=2))]
    plan = rejoin_plan(n, 'pg1', {'pg1': {}})
    assert (plan['action'], plan['primary'], plan['slot']) == ('rejoin', 'pg2', 'pg1')
    assert rejoin_plan(n, 'pg3')['action'] == 'noop'
    assert 'running primary' in rejoin_plan(n, 'pg2')['reason']
    assert rejoin_plan(n, 'pg1', {'pg1': {'postgresql_slot_name': 'old_one'}})['slot'] == 'old_one'
    assert rejoin_plan(n, 'nope')['action'] == 'refuse'
    no_primary = [fenced_old, survey_node('pg3', standby_info('0/1'))]
    assert 'promote.yml first' in rejoin_plan(no_primary, 'pg1')['reason']

"""The runbooks' decisions, from survey data to plan."""

import re

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.cluster import (
    mark_durations,
    cluster_verdict,
    failover_plan,
    fork_point,
    node_table,
    rejoin_plan,
    replica_state,
    split_brain,
    split_brain_lines,
    survey_node,
    survey_nodes,
    switchover_plan,
    sync_hosts,
)
from ansible_collections.pgha.cluster.plugins.filter.validate import cluster_members


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
    down = survey_node('pg1', DOWN, True)
    assert (down['reachable'], down['running'], down['role'], down['fenced']) == (True, False, 'down', True)
    p = survey_node('pg1', primary_info())
    assert (p['role'], p['lsn'], p['standbys']) == ('primary', '0/5000000', ['pg2', 'pg3'])
    s = survey_node('pg2', standby_info('0/4000000', '0/3000000'))
    assert (s['lsn'], s['replay_lsn'], s['receiver'], s['upstream']) == ('0/4000000', '0/3000000', 'streaming',
                                                                         '10.0.0.1')


def survey(info=None, fenced=False, error=None):
    """What node_survey registers: the report when PostgreSQL answered, else the error."""
    return {'changed': False, 'running': info is not None, 'error': error, 'fenced': fenced,
            'replication': info or {}}


def test_survey_nodes_reads_hostvars():
    hv = {'pg1': {'pgha_survey': survey(primary_info())}, 'pg2': {},
          'pg3': {'pgha_survey': survey(None, fenced=True, error='connection refused')},
          'pg4': {'pgha_survey': UNREACHABLE},
          'pg5': {'pgha_survey': {'failed': True, 'msg': 'psycopg2 is missing'}}}
    got = survey_nodes(['pg1', 'pg2', 'pg3', 'pg4', 'pg5'], hv)
    assert [n['role'] for n in got] == ['primary', 'unknown', 'down', 'unknown', 'down']
    assert [n['reachable'] for n in got] == [True, False, True, False, True]
    assert [n['fenced'] for n in got] == [False, False, True, False, False]
    assert got[2]['error'] == 'connection refused' and got[4]['error'] == 'psycopg2 is missing'


def test_node_table_lines():
    lines = node_table(nodes(pg1=UNREACHABLE, pg2=standby_info('0/4000000')))
    assert lines[0].split()[:3] == ['node', 'reachable', 'role']
    assert lines[1].split()[:3] == ['pg1', 'NO', 'unknown']
    assert lines[2].split()[:5] == ['pg2', 'yes', 'STANDBY', '1', '0/4000000']


def test_node_table_cells_hold_no_single_space():
    # The YAML callback folds a long line at a single space: a row must stay one line.
    lines = node_table(two_primaries())
    assert any('streaming<-10.0.0.2' in line for line in lines)
    for line in lines:
        assert not re.search(r'\S \S', line), line


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
    fenced_old = survey_node('pg1', DOWN, True)
    n = [fenced_old, survey_node('pg2', primary_info(timeline=2)), survey_node('pg3', standby_info('0/1', timeline=2))]
    plan = rejoin_plan(n, 'pg1', {'pg1': {}})
    assert (plan['action'], plan['primary'], plan['slot']) == ('rejoin', 'pg2', 'pg1')
    assert rejoin_plan(n, 'pg3')['action'] == 'noop'
    assert 'running primary' in rejoin_plan(n, 'pg2')['reason']
    assert rejoin_plan(n, 'pg1', {'pg1': {'postgresql_slot_name': 'old_one'}})['slot'] == 'old_one'
    assert rejoin_plan(n, 'nope')['action'] == 'refuse'
    no_primary = [fenced_old, survey_node('pg3', standby_info('0/1'))]
    assert 'promote.yml first' in rejoin_plan(no_primary, 'pg1')['reason']


def test_switchover_ignores_a_fenced_primary():
    fenced = survey_node('pg1', primary_info('0/6000000'), True)
    n = [fenced, survey_node('pg2', primary_info('0/5000000', timeline=2)),
         survey_node('pg3', standby_info('0/5000000', timeline=2, sender='10.0.0.2'))]
    plan = switchover_plan(n)
    assert plan['primary'] == 'pg2', plan


# --- a replica's data directory -------------------------------------------------

@pytest.mark.parametrize('args,state', [
    (dict(local_id=''), 'absent'),
    (dict(local_id='7', upstream_id='9', marker_id='7', timeline='1'), 'new'),
    # not provable without the primary's identifier
    (dict(local_id='7', marker_id='7', timeline='1'), 'foreign'),
    # the node that created the cluster and served: its marker was retired, or it moved on
    (dict(local_id='9', upstream_id='9', marker_id='9', timeline='2', standby_signal=True), 'replica'),
    (dict(local_id='9', upstream_id='9', marker_id='9', timeline='1', standby_signal=True), 'replica'),
    (dict(local_id='9', upstream_id='9', marker_id='9', timeline='1'), 'diverged'),
    (dict(local_id='9', upstream_id='9', marker_id='9', timeline='1', fenced=True), 'fenced'),
    (dict(local_id='9', upstream_id='9', standby_signal=True), 'replica'),
    (dict(local_id='9', upstream_id='9'), 'diverged'),
    (dict(local_id='9', upstream_id='9', fenced=True, standby_signal=True), 'fenced'),
    (dict(local_id='5', upstream_id='9', standby_signal=True), 'foreign'),
    (dict(local_id='5', upstream_id='9'), 'foreign'),
    (dict(local_id='5', standby_signal=True), 'replica'),
    (dict(local_id='5'), 'foreign'),
    (dict(local_id='7', marker_id='7', timeline='2'), 'foreign'),
])
def test_replica_state_only_proves_new_for_an_untouched_cluster(args, state):
    assert replica_state(**args) == state


# --- split brain ----------------------------------------------------------------

def two_primaries():
    history = [{'timeline': 1, 'switchpoint': '0/5000000', 'reason': 'no recovery target specified'}]
    old = dict(primary_info('0/5800000', timeline=1), system_identifier='42', timeline_history=[])
    new = dict(primary_info('0/5300000', timeline=2), system_identifier='42', timeline_history=history)
    follower = dict(standby_info('0/5300000', timeline=2, sender='10.0.0.2'))

    def facts(address, *held):
        return {'default_ipv4': {'address': address}, 'all_ipv4_addresses': [address] + list(held)}

    return survey_nodes(['pg1', 'pg2', 'pg3'], {
        'pg1': {'pgha_survey': survey(old), 'ansible_facts': facts('10.0.0.1', '10.0.0.100')},
        'pg2': {'pgha_survey': survey(new), 'ansible_facts': facts('10.0.0.2')},
        'pg3': {'pgha_survey': survey(follower), 'ansible_facts': facts('10.0.0.3')},
    }, vips={'writer': '10.0.0.100/24', 'reader': ''})


def test_survey_knows_addresses_vips_and_history():
    n = two_primaries()
    assert [x['address'] for x in n] == ['10.0.0.1', '10.0.0.2', '10.0.0.3']
    assert n[0]['vips'] == ['writer'] and n[1]['vips'] == []
    assert n[1]['history'][0]['switchpoint'] == '0/5000000' and n[1]['system_identifier'] == '42'
    assert 'writer' in node_table(n)[1]


def test_fork_point():
    n = two_primaries()
    assert fork_point(n[0], n[1]) == 0x5000000
    assert fork_point(n[1], n[0]) == 0x5000000
    # both left timeline 1 at the same point onto different timelines
    a = {'timeline': 2, 'history': [{'timeline': 1, 'switchpoint': '0/4000000'}]}
    b = {'timeline': 3, 'history': [{'timeline': 1, 'switchpoint': '0/4000000'}]}
    assert fork_point(a, b) == 0x4000000
    # one history unknown
    assert fork_point(a, {'timeline': 3, 'history': None}) is None


def test_split_brain_keeps_the_one_the_replicas_follow():
    report = split_brain(two_primaries())
    assert report['keep'] == 'pg2' and report['discard'] == ['pg1']
    assert 'the replicas follow it (pg3)' in report['reason']
    old = [e for e in report['primaries'] if e['name'] == 'pg1'][0]
    assert (old['fork_lsn'], old['bytes_after_fork']) == ('0/5000000', 0x800000)
    assert old['vips'] == ['writer']
    lines = split_brain_lines(report)
    assert lines[0].startswith('SPLIT BRAIN: 2 nodes run as primary. Keep pg2')
    assert any('DISCARD pg1: timeline 1, lsn 0/5800000, 8388608 bytes of WAL written after the fork at 0/5000000'
               in line for line in lines), lines
    assert 'rejoin_host=pg1 -e rejoin_split_brain_confirm=true' in lines[-1]
    assert split_brain_lines(None) == []


def test_verdicts():
    assert cluster_verdict(two_primaries()).startswith('SPLIT BRAIN: pg1 and pg2 run as primary; keep pg2')
    healthy = nodes(pg1=primary_info(), pg2=standby_info('0/5000000'), pg3=standby_info('0/5000000'))
    assert cluster_verdict(healthy).startswith('HEALTHY: pg1 is the primary on timeline 1')
    down = nodes(pg1=UNREACHABLE, pg2=standby_info('0/5000000'))
    assert cluster_verdict(down) == 'PRIMARY DOWN: no node runs as primary - run promote.yml'
    fenced = [survey_node('pg1', DOWN, True), survey_node('pg2', primary_info(timeline=2)),
              survey_node('pg3', standby_info('0/1', timeline=1, status=None))]
    assert cluster_verdict(fenced) == ('DEGRADED: pg1 fenced (run rejoin.yml -e rejoin_host=pg1); '
                                       'pg3 not streaming')


def test_rejoin_ends_a_split_brain_only_when_confirmed():
    n = two_primaries()
    plan = rejoin_plan(n, 'pg1', {})
    assert plan['action'] == 'refuse' and plan['override'] == 'rejoin_split_brain_confirm'
    assert 'Keep pg2' in plan['reason'] and '8388608 bytes of WAL written after the fork' in plan['reason']
    plan = rejoin_plan(n, 'pg1', {}, split_brain_confirm=True)
    assert (plan['action'], plan['primary'], plan['slot']) == ('rejoin', 'pg2', 'pg1')
    assert plan['split_brain']['keep'] == 'pg2'
    keep = rejoin_plan(n, 'pg2', {}, split_brain_confirm=True)
    assert keep['action'] == 'refuse' and 'the primary to KEEP' in keep['reason'] and 'rejoin_host=pg1' in \
        keep['reason']
    other = rejoin_plan(n, 'pg3', {})
    assert other['action'] == 'refuse' and 'end it first' in other['reason']


def test_failover_in_split_brain_names_the_way_out():
    plan = failover_plan(two_primaries(), 'pg1')
    assert plan['action'] == 'refuse' and plan['override'] == 'rejoin_split_brain_confirm'
    assert 'Keep pg2' in plan['reason'] and 'rejoin_host=pg1' in plan['reason']


def test_sync_hosts():
    members = cluster_members({'primary': ['a'], 'replicas': ['b', 'c']}, {'c': {'postgresql_slot_name': 'cc'}})
    assert sync_hosts(members, 'off') == []
    assert sync_hosts(members, 'any') == ['a', 'b', 'c']
    assert sync_hosts(members, 'first', ['cc']) == ['c']


# --------------------------------------------------------------------------
# mark_durations: the runbook summaries' timing line
# --------------------------------------------------------------------------

def test_mark_durations_gives_the_time_from_each_mark_to_the_next():
    marks = [['survey', 100.0], ['decide', '103.2'], ['promote', 103.4], ['VIP write', 104.0], ['summary', 106.56]]
    assert mark_durations(marks) == 'survey 3.2, decide 0.2, promote 0.6, VIP write 2.6'


def test_mark_durations_with_one_mark_or_none_says_so():
    assert mark_durations([['survey', 1.0]]) == 'not measured'
    assert mark_durations([]) == 'not measured'


def test_mark_durations_never_negative_and_refuses_garbage():
    assert mark_durations([['a', 5.0], ['b', 4.0]]) == 'a 0.0'
    with pytest.raises(AnsibleFilterError, match='not a \\[name, time\\] pair'):
        mark_durations([['a', 'soon'], ['b', 1]])
    with pytest.raises(AnsibleFilterError, match='expects a list'):
        mark_durations('survey')

"""The runbooks' decisions, from survey data to plan."""

import json
import re
import shutil
import subprocess

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.cluster import (
    FilterModule,
    mark_durations,
    cluster_verdict,
    failover_plan,
    fork_point,
    human_bytes,
    node_table,
    rejoin_plan,
    replica_state,
    split_brain,
    split_brain_lines,
    status_document,
    status_dot,
    status_lines,
    status_rows,
    survey_node,
    survey_nodes,
    switchover_plan,
    sync_hosts,
    vip_holder_line,
    vip_holders,
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
    hv = {'pg1': {'runbook_survey': survey(primary_info())}, 'pg2': {},
          'pg3': {'runbook_survey': survey(None, fenced=True, error='connection refused')},
          'pg4': {'runbook_survey': UNREACHABLE},
          'pg5': {'runbook_survey': {'failed': True, 'msg': 'psycopg2 is missing'}}}
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
        'pg1': {'runbook_survey': survey(old), 'ansible_facts': facts('10.0.0.1', '10.0.0.100')},
        'pg2': {'runbook_survey': survey(new), 'ansible_facts': facts('10.0.0.2')},
        'pg3': {'runbook_survey': survey(follower), 'ansible_facts': facts('10.0.0.3')},
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


# --------------------------------------------------------------------------
# status.yml: lag, sync state and slots per member; one document for the
# table, the JSON and the picture
# --------------------------------------------------------------------------

MB = 1024 * 1024


def sender(name, lag_bytes, lag_seconds, sync_state='async', slot=None, addr=None, state='streaming'):
    """A primary's standbys[] entry (pgha_replication.shape_standby)."""
    return {'application_name': name, 'slot_name': slot or name, 'client_addr': addr, 'state': state,
            'sync_state': sync_state, 'replay_lag_bytes': lag_bytes, 'replay_lag': lag_seconds}


def slot(name, retained, active=True, wal_status='reserved'):
    """A primary's slots[] entry (pgha_replication.shape_slot)."""
    return {'slot_name': name, 'slot_type': 'physical', 'active': active, 'restart_lsn': '0/1',
            'wal_status': wal_status, 'safe_wal_size': None, 'retained_bytes': retained}


def watched_primary(senders, slots, lsn='0/7000000', timeline=2):
    return dict(primary_info(lsn, timeline), standbys=senders, slots=slots)


def column(lines, header, row):
    """The cell of a node_table line under header (no cell holds a blank)."""
    return lines[row].split()[lines[0].split().index(header)]


def lag_cluster():
    primary = watched_primary(
        [sender('pg2', 0, 0.0008, 'quorum'), sender('pg3', 3 * MB // 2, 2.5, 'quorum'),
         sender('pgbackrest', 0, None, 'async', slot='')],
        [slot('pg2', 16 * MB), slot('pg3', 3 * MB // 2), slot('pg4', 3 * 1024 * MB, active=False, wal_status='lost')])
    return [survey_node('pg1', primary, address='10.0.0.1'), survey_node('pg2', standby_info('0/7000000', timeline=2)),
            survey_node('pg3', standby_info('0/6E80000', timeline=2)), survey_node('pg4', UNREACHABLE),
            survey_node('pg5', standby_info('0/6000000', timeline=2, status='waiting'))]


def test_human_bytes():
    assert [human_bytes(v) for v in (None, 0, 512, 1536, 16 * MB, 3 * MB // 2, 3 * 1024 * MB)] == \
        [None, '0B', '512B', '1.5kB', '16MB', '1.5MB', '3GB']


def test_node_table_shows_lag_sync_state_slot_and_retained_wal_from_the_primarys_view():
    lines = node_table(lag_cluster())
    assert lines[0].split() == ['node', 'reachable', 'role', 'timeline', 'lsn(received/current)', 'replayed',
                                'wal_receiver<-upstream', 'lag', 'lag(s)', 'sync', 'slot', 'retained', 'fence', 'vip']
    # the primary measures the others, not itself
    assert [column(lines, h, 1) for h in ('lag', 'lag(s)', 'sync', 'slot', 'retained')] == ['-'] * 5
    assert [column(lines, h, 2) for h in ('lag', 'lag(s)', 'sync', 'slot', 'retained')] == \
        ['0B', '0.001', 'quorum', 'pg2', '16MB']
    assert [column(lines, h, 3) for h in ('lag', 'lag(s)', 'sync', 'slot', 'retained')] == \
        ['1.5MB', '2.5', 'quorum', 'pg3', '1.5MB']
    # unreachable, but its slot holds WAL back on the primary: that is what fills the disk
    assert [column(lines, h, 4) for h in ('lag', 'sync', 'slot', 'retained')] == ['-', '-', 'pg4(inactive,lost)', '3GB']
    # not streaming, and no slot on the primary
    assert [column(lines, h, 5) for h in ('lag', 'sync', 'slot', 'retained')] == ['-', '-', 'MISSING', '-']
    for line in lines:
        assert not re.search(r'\S \S', line), line


def test_a_member_is_found_by_its_slot_name_then_by_its_address():
    """The primary lists a standby under its application_name, which is its slot name
    (postgresql_slot_name when the inventory sets one), not its host name."""
    primary = watched_primary([sender('reports', 5 * MB, 1.0, 'potential'), sender('walreceiver', 7, 0.1, addr='10.0.0.3')],
                              [slot('reports', 5 * MB)])
    hv = {'pg1': {'runbook_survey': survey(primary), 'postgresql_host_address': '10.0.0.1'},
          'pg2': {'runbook_survey': survey(standby_info('0/1')), 'postgresql_slot_name': 'reports',
                  'postgresql_host_address': '10.0.0.2'},
          'pg3': {'runbook_survey': survey(standby_info('0/1')), 'postgresql_host_address': '10.0.0.3'}}
    rows = status_rows(survey_nodes(['pg1', 'pg2', 'pg3'], hv))
    assert (rows[1]['slot'], rows[1]['lag_bytes'], rows[1]['sync_state'], rows[1]['retained_bytes']) == \
        ('reports', 5 * MB, 'potential', 5 * MB)
    assert (rows[2]['lag_bytes'], rows[2]['sync_state'], rows[2]['slot_missing']) == (7, 'async', True)
    assert rows[1]['upstream_node'] == 'pg1' and rows[0]['is_reference'] and not rows[1]['is_reference']


def test_without_a_primary_there_is_no_lag_to_show():
    rows = status_rows(nodes(pg1=UNREACHABLE, pg2=standby_info('0/4000000')))
    assert [(r['lag_bytes'], r['slot'], r['slot_missing']) for r in rows] == [(None, None, False)] * 2
    # a report without slots[] proves no slot missing
    rows = status_rows(nodes(pg1=primary_info(), pg2=standby_info('0/4000000')))
    assert (rows[1]['slot'], rows[1]['slot_missing']) == (None, False)


@pytest.mark.parametrize('infos, sync, old, candidate, why', [
    (dict(pg1=UNREACHABLE, pg2=standby_info('0/4000000'), pg3=standby_info('0/4000100')), [], 'pg1', 'pg3',
     'newest LSN 0/4000100 on timeline 1; pg2 would follow it'),
    (dict(pg1=DOWN, pg2=standby_info('0/4000000'), pg3=standby_info('0/4000000')), ['pg3'], 'pg1', 'pg3',
     'newest LSN 0/4000000 on timeline 1, a synchronous standby (tied with pg2); pg2 would follow it'),
    (dict(pg1=UNREACHABLE, pg2=standby_info('0/4000000'), pg3=standby_info('0/4000000')), [], 'pg1', 'pg2',
     'newest LSN 0/4000000 on timeline 1 (tied with pg3); pg3 would follow it'),
])
def test_primary_down_names_the_replica_promote_would_promote(infos, sync, old, candidate, why):
    n = nodes(**infos)
    assert failover_plan(n, old, sync_names=sync)['candidate'] == candidate
    assert cluster_verdict(n, old, sync) == ('PRIMARY DOWN: no node runs as primary - run promote.yml '
                                             '(it would promote %s: %s)' % (candidate, why))


def test_primary_down_says_why_promote_would_refuse():
    stale = nodes(pg1=standby_info('0/5000000', timeline=2), pg2=UNREACHABLE)
    verdict = cluster_verdict(stale, 'pg1')
    assert verdict.startswith('PRIMARY DOWN: no node runs as primary - run promote.yml (it would refuse: The '
                              'inventory names pg1 as the primary, but it runs as a replica')
    nothing = cluster_verdict(nodes(pg1=UNREACHABLE, pg2=DOWN), 'pg1')
    assert nothing.endswith('(it would refuse: No replica answered: there is nothing to promote. Bring a replica '
                            'back first.)')
    # an old primary that is no member: the plain verdict
    assert cluster_verdict(stale, 'nope') == 'PRIMARY DOWN: no node runs as primary - run promote.yml'


def pgpool_hostvars():
    return {'pool1': {'found': {'changed': False}, 'ansible_facts': {'all_ipv4_addresses': ['10.0.0.21', '10.0.0.50']}},
            'pool2': {'found': {'changed': False}, 'ansible_facts': {'all_ipv4_addresses': ['10.0.0.22']}},
            'pool3': {'found': {'unreachable': True, 'msg': 'timed out'}},
            'pool4': {}}


def test_vip_holders():
    hv = pgpool_hostvars()
    report = vip_holders(['pool1', 'pool2', 'pool3', 'pool4'], hv, '10.0.0.50/24', 'found')
    assert report == {'vip': '10.0.0.50', 'hosts': ['pool1', 'pool2', 'pool3', 'pool4'], 'holders': ['pool1'],
                      'unreachable': ['pool3'], 'unknown': ['pool4']}
    assert vip_holder_line(report) == ['pgpool VIP 10.0.0.50: pool1 (unreachable: pool3; not asked: pool4)']
    assert vip_holder_line(vip_holders(['pool1', 'pool2'], hv, '10.0.0.50', 'found')) == \
        ['pgpool VIP 10.0.0.50: pool1']
    assert vip_holder_line(vip_holders(['pool2'], hv, '10.0.0.50', 'found')) == \
        ['pgpool VIP 10.0.0.50: NOBODY holds it']
    hv['pool2']['ansible_facts']['all_ipv4_addresses'].append('10.0.0.50')
    both = vip_holders(['pool1', 'pool2'], hv, '10.0.0.50', 'found')
    assert 'pool1, pool2 (HELD BY 2 HOSTS AT ONCE)' in vip_holder_line(both)[0]
    # no pgpool group, or no VIP: nothing to say
    assert vip_holders([], hv, '10.0.0.50') is None and vip_holders(['pool1'], hv, '') is None
    assert vip_holder_line(None) == []


def full_document():
    n = lag_cluster()
    n[0]['vips'] = ['writer']
    return n, status_document(n, old_primary='pg1', sync_names=['pg2'], vips={'writer': '10.0.0.100/24', 'reader': ''},
                              pgpool=vip_holders(['pool1', 'pool3'], pgpool_hostvars(), '10.0.0.50/24', 'found'),
                              backup=['bk1'], subscribers=['sub1'],
                              subscriptions=['app_sub on sub1: slot app_sub on pg1'])


def test_status_document_holds_every_column_and_the_verdict():
    n, doc = full_document()
    assert doc['state'] == 'DEGRADED' and doc['verdict'] == cluster_verdict(n, 'pg1', ['pg2'])
    assert doc['primary'] == 'pg1' and doc['split_brain'] is None and doc['vips'] == {'writer': '10.0.0.100'}
    assert doc['pgpool']['holders'] == ['pool1'] and doc['backup'] == ['bk1'] and doc['subscribers'] == ['sub1']
    pg3 = doc['nodes'][2]
    assert (pg3['name'], pg3['reachable'], pg3['role'], pg3['timeline'], pg3['lsn'], pg3['receiver'], pg3['upstream'],
            pg3['lag_bytes'], pg3['lag_seconds'], pg3['sync_state'], pg3['slot'], pg3['retained_bytes'],
            pg3['fenced'], pg3['vips']) == ('pg3', True, 'standby', 2, '0/6E80000', 'streaming', '10.0.0.1',
                                            3 * MB // 2, 2.5, 'quorum', 'pg3', 3 * MB // 2, False, [])
    split = status_document(two_primaries())
    assert split['state'] == 'SPLIT BRAIN' and split['split_brain']['keep'] == 'pg2' and split['primary'] == 'pg2'


def test_the_table_and_the_json_come_from_the_one_document():
    n, doc = full_document()
    lines = status_lines(doc)
    # what a script reads from -e status_format=json gives back the very screen
    assert status_lines(json.loads(json.dumps(doc))) == lines
    # the screen is the node table of the runbooks, the pgpool VIP's holder, then the verdict
    table = node_table(n)
    assert lines[:len(table)] == table
    assert lines[len(table):len(table) + 3] == ['pgpool VIP 10.0.0.50: pool1 (unreachable: pool3)', '',
                                                'VERDICT: ' + doc['verdict']]
    assert lines[-1] == 'subscription  : app_sub on sub1: slot app_sub on pg1'
    # the table is drawn from the document, not from the survey: change one, the other follows
    doc['nodes'][1]['lag_bytes'] = 32 * MB
    assert column(status_lines(doc), 'lag', 2) == '32MB'
    split = status_document(two_primaries())
    assert 'SPLIT BRAIN: 2 nodes run as primary. Keep pg2: the replicas follow it (pg3); it is on timeline 2.' in \
        status_lines(split)


def test_the_filters_are_registered():
    names = FilterModule().filters()
    for name in ('status_document', 'status_lines', 'status_dot', 'vip_holders', 'node_table', 'cluster_verdict'):
        assert name in names


def test_status_dot_draws_members_streams_vips_and_the_other_hosts():
    _n, doc = full_document()
    dot = status_dot(doc)
    assert dot.startswith('digraph pgha {') and dot.rstrip().endswith('}')
    assert '"member:pg1" [fillcolor="#d8f0d8", label="pg1\\nPRIMARY\\ntimeline 2", penwidth=2];' in dot
    # unreachable: greyed, no role
    assert re.search(r'"member:pg4" \[.*fillcolor="#e6e6e6".*label="pg4\\nunreachable"', dot)
    # streams, labelled with the lag and the sync state; a replica that does not stream is dashed
    assert '"member:pg1" -> "member:pg3" [label="lag 1.5MB / 2.5s\\nquorum"];' in dot
    assert '"member:pg1" -> "member:pg5" [color="#9a9a9a", label="waiting", style=dashed];' in dot
    # VIPs as notes on their holders
    assert '"vip:writer" -> "member:pg1" [style=dotted, arrowhead=none];' in dot
    assert '"vip:pgpool" -> "pgpool:pool1" [style=dotted, arrowhead=none];' in dot
    assert re.search(r'"pgpool:pool3" \[.*label="pool3\\npgpool\\nunreachable"', dot)
    assert '"member:pg1" -> "backup:bk1"' in dot and '"member:pg1" -> "subscriber:sub1"' in dot
    assert 'label="pgha cluster\\n' + doc['verdict'] + '"' in dot


def test_status_dot_marks_a_fenced_node_and_a_vip_nobody_holds():
    n = [survey_node('pg1', DOWN, True), survey_node('pg2', primary_info(timeline=2))]
    dot = status_dot(status_document(n, vips={'writer': '10.0.0.100', 'reader': '10.0.0.101'}))
    assert re.search(r'"member:pg1" \[color="#c00000".*label="pg1\\ndown\\nFENCED"', dot)
    assert re.search(r'"vip:reader" \[.*label="reader VIP\\n10.0.0.101\\nno holder".*shape=note', dot)


def test_status_dot_quotes_and_escapes_every_name():
    evil = 'pg"1\\N'
    n = [survey_node(evil, primary_info()), survey_node('pg 2', standby_info('0/5000000', sender='10.0.0.1'))]
    n[0]['address'] = '10.0.0.1'
    doc = status_document(n, backup=['bk"1'], subscribers=['sub\nnewline'])
    dot = status_dot(doc)
    # a quote cannot end the string, a backslash cannot start graphviz's \N (the node's id)
    assert '"member:pg\\"1\\\\N"' in dot and 'label="pg\\"1\\\\N\\nPRIMARY' in dot
    assert '"member:pg\\"1\\\\N" -> "member:pg 2"' in dot
    assert '"backup:bk\\"1"' in dot and '"subscriber:sub newline"' in dot
    for line in dot.splitlines():
        # every quote that is not escaped opens or closes a string: an even number per line
        assert len(re.findall(r'(?<!\\)(?:\\\\)*"', line)) % 2 == 0, line


@pytest.mark.skipif(not shutil.which('dot'), reason='graphviz is not installed')
def test_graphviz_reads_the_picture(tmp_path):
    _n, doc = full_document()
    evil = [survey_node('pg"1\\N', primary_info()), survey_node('pg{2}; x', UNREACHABLE)]
    for document in (doc, status_document(evil, subscribers=['a"b'])):
        proc = subprocess.run(['dot', '-Tsvg'], input=status_dot(document), capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0 and '<svg' in proc.stdout and not proc.stderr, proc.stderr
    proc = subprocess.run(['dot', '-Tsvg'], input=status_dot(status_document(evil)), capture_output=True,
                          text=True, timeout=60, check=True)
    assert 'pg&quot;1\\N' in proc.stdout

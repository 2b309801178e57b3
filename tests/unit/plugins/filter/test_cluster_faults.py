"""Ordinary faults in the runbooks' decisions: a server systemd is restarting, a crash loop, writes blocked
on synchronous replication, a relaxed primary (sync_relax_plan, failover_plan, the verdict, the document)."""

from ansible_collections.pgha.cluster.plugins.filter.cluster import (
    cluster_verdict,
    failover_plan,
    restarting,
    status_document,
    survey_node,
    survey_nodes,
    sync_relax_plan,
    sync_relaxed,
    writes_blocked,
)
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_replication import sync_requirement, sync_state

SLOTS = ['pg1', 'pg2', 'pg3']
SYNC = 'ANY 1 ("pg1", "pg2", "pg3")'
DOWN = {'failed': True, 'msg': 'could not connect to server'}


def primary(standbys=('pg2', 'pg3'), ssn=SYNC, timeline=1, lsn='0/5000000'):
    senders = [{'application_name': s, 'state': 'streaming'} for s in standbys]
    return {'role': 'primary', 'timeline': timeline, 'current_lsn': lsn, 'standbys': senders,
            'synchronous': sync_state(ssn, senders)}


def standby(lsn='0/5000000', timeline=1, status='streaming'):
    return {'role': 'standby', 'timeline': timeline, 'receive_lsn': lsn, 'replay_lsn': lsn,
            'wal_receiver': {'status': status, 'sender_host': '10.0.0.1'} if status else None}


RELAXED = {'since': '2026-12-06T21:31:50Z', 'primary': 'pg1', 'timeline': 1, 'by': 'sync_relax.yml'}


def cluster(p=None, r2=None, r3=None, states=None):
    states = states or {}
    infos = {'pg1': p if p is not None else primary(), 'pg2': r2 if r2 is not None else standby(),
             'pg3': r3 if r3 is not None else standby()}
    return [survey_node(n, infos[n], state=states.get(n)) for n in ('pg1', 'pg2', 'pg3')]


# --- synchronous_standby_names as PostgreSQL reads it -----------------------------

def test_sync_requirement():
    assert sync_requirement('') == {'method': None, 'count': 0, 'names': []}
    assert sync_requirement('ANY 1 ("pg1", "pg2")') == {'method': 'any', 'count': 1, 'names': ['pg1', 'pg2']}
    assert sync_requirement('first 2 (a, B)') == {'method': 'first', 'count': 2, 'names': ['a', 'b']}
    assert sync_requirement('2 (a, b, c)') == {'method': 'first', 'count': 2, 'names': ['a', 'b', 'c']}
    assert sync_requirement('a, "B"') == {'method': 'first', 'count': 1, 'names': ['a', 'B']}
    assert sync_requirement('*') == {'method': 'first', 'count': 1, 'names': ['*']}


def test_sync_state_counts_the_listed_standbys_that_stream():
    senders = [{'application_name': 'pg2', 'state': 'streaming'}, {'application_name': 'pg3', 'state': 'catchup'},
               {'application_name': 'other', 'state': 'streaming'}]
    state = sync_state(SYNC, senders)
    assert state['required'] == 1 and state['connected'] == ['pg2'] and not state['blocked']
    assert sync_state('ANY 2 (pg2, pg3)', senders)['blocked']
    assert sync_state('*', senders)['connected'] == ['other', 'pg2']
    assert not sync_state('', [])['blocked']


# --- writes blocked -----------------------------------------------------------

def test_writes_blocked_is_the_verdict_and_in_the_document():
    nodes = cluster(primary(standbys=()), DOWN, DOWN)
    assert writes_blocked(nodes) == {'primary': 'pg1', 'required': 1, 'connected': [],
                                     'waiting_for': ['pg1', 'pg2', 'pg3']}
    verdict = cluster_verdict(nodes)
    assert verdict.startswith('WRITES BLOCKED: pg1 waits for 1 synchronous standby(s), 0 connected (pg2 down; '
                              'pg3 down): every commit hangs')
    assert 'run sync_relax.yml' in verdict and 'sync_relax.yml -e sync_relax_action=restore' in verdict
    doc = status_document(nodes)
    assert doc['state'] == 'WRITES BLOCKED' and doc['writes_blocked']['primary'] == 'pg1'
    # one standby left: commits go on, only degraded
    nodes = cluster(primary(standbys=('pg2',)), standby(), DOWN)
    assert writes_blocked(nodes) is None
    assert cluster_verdict(nodes) == 'DEGRADED: pg3 down'
    # asynchronous: never blocked
    assert writes_blocked(cluster(primary(standbys=(), ssn=''), DOWN, DOWN)) is None


# --- relaxed ------------------------------------------------------------------------

def relaxed_cluster(r2=None, r3=None, p=None):
    return cluster(p or primary(standbys=(), ssn=''), r2 or DOWN, r3 or DOWN,
                   states=dict((n, {'sync_relaxed': dict(RELAXED)}) for n in ('pg1', 'pg2', 'pg3')))


def test_a_relaxed_primary_is_the_verdict_and_in_the_document():
    nodes = relaxed_cluster()
    assert cluster_verdict(nodes).startswith('RELAXED: synchronous replication on pg1 is relaxed since '
                                             '2026-12-06T21:31:50Z (sync_relax.yml): commits acknowledged since '
                                             'then may be on pg1 alone; 0 standby(s) streaming (pg2 down; pg3 down)')
    assert status_document(nodes)['sync_relaxed'] == {'primary': 'pg1', 'since': '2026-12-06T21:31:50Z',
                                                      'timeline': 1, 'seen_on': ['pg1', 'pg2', 'pg3']}


def test_a_promotion_ends_the_relaxed_window():
    # pg2 promoted (timeline 2): the markers of timeline 1 no longer count
    nodes = cluster(DOWN, primary(standbys=('pg3',), timeline=2), standby(timeline=2),
                    states={'pg2': {'sync_relaxed': dict(RELAXED)}, 'pg3': {'sync_relaxed': dict(RELAXED)}})
    assert sync_relaxed(nodes) is None
    assert cluster_verdict(nodes) == 'DEGRADED: pg1 down'


def test_promote_refuses_while_relaxed_naming_the_window_and_force_accepts_it():
    nodes = relaxed_cluster(standby(), standby(), p=DOWN)
    plan = failover_plan(nodes, 'pg1', sync_names=['pg2', 'pg3'])
    assert plan['action'] == 'refuse' and plan['override'] == 'promote_force'
    assert plan['reason'].startswith('Synchronous replication was relaxed on pg1 since 2026-12-06T21:31:50Z '
                                     '(sync_relax.yml) and not restored: commits acknowledged from then until pg1 '
                                     'was lost may exist on pg1 alone')
    assert failover_plan(nodes, 'pg1', force=True, sync_names=['pg2', 'pg3'])['action'] == 'promote'
    # no marker: promoted as always
    assert failover_plan(cluster(DOWN, standby(), standby()), 'pg1')['action'] == 'promote'


def test_sync_relax_plan():
    blocked = cluster(primary(standbys=()), DOWN, DOWN)
    plan = sync_relax_plan(blocked, 'relax', SLOTS, 1, mode='any')
    assert plan['action'] == 'relax' and plan['primary'] == 'pg1' and plan['timeline'] == 1
    assert plan['members'] == ['pg1', 'pg2', 'pg3']
    # not blocked: refused, the override named
    plan = sync_relax_plan(cluster(), 'relax', SLOTS, 1, mode='any')
    assert plan['action'] == 'refuse' and plan['override'] == 'sync_relax_force'
    assert sync_relax_plan(cluster(), 'relax', SLOTS, 1, force=True, mode='any')['action'] == 'relax'
    # strict clusters never relax; asynchronous ones have nothing to relax
    plan = sync_relax_plan(blocked, 'relax', SLOTS, 1, allowed=False, mode='any')
    assert plan['action'] == 'refuse' and 'postgresql_synchronous_relax_allowed is false' in plan['reason']
    assert 'postgresql_synchronous_mode is off' in sync_relax_plan(blocked, 'relax', SLOTS, 1, mode='off')['reason']
    # no primary: refused
    assert 'No node runs as primary' in sync_relax_plan(cluster(DOWN), 'relax', SLOTS, 1, mode='any')['reason']
    # already relaxed: nothing to do
    assert sync_relax_plan(relaxed_cluster(), 'relax', SLOTS, 1, mode='any')['action'] == 'noop'


def test_sync_relax_restore_plan():
    plan = sync_relax_plan(relaxed_cluster(), 'restore', SLOTS, 1, mode='any')
    assert plan['action'] == 'refuse' and 'restoring now would block every commit again' in plan['reason']
    back = relaxed_cluster(standby(), standby(), p=primary(standbys=('pg2', 'pg3'), ssn=''))
    plan = sync_relax_plan(back, 'restore', SLOTS, 1, mode='any')
    assert plan['action'] == 'restore' and plan['streaming'] == ['pg2', 'pg3']
    assert sync_relax_plan(cluster(), 'restore', SLOTS, 1, mode='any')['action'] == 'noop'


# --- restarting, crash loops --------------------------------------------------

AUTO_RESTART = {'service_state': {'active_state': 'activating', 'sub_state': 'auto-restart', 'restarts': 1}}
LOOP = {'crash_loop': {'at': '2026-12-06T21:04:47Z', 'crashes': 4, 'window': 300, 'last': 'killed KILL',
                       'service': 'postgresql@17-main'}}


def test_a_primary_systemd_restarts_is_not_a_failover():
    nodes = cluster(DOWN, states={'pg1': AUTO_RESTART})
    assert restarting(nodes[0])
    verdict = cluster_verdict(nodes, 'pg1')
    assert verdict.startswith("PRIMARY RESTARTING: pg1's PostgreSQL ended abnormally and systemd is starting it "
                              "again (automatic restart 1 since its last start by hand)")
    assert 'do not promote' in verdict
    assert status_document(nodes, 'pg1')['restarting'] == ['pg1']


def test_a_crash_loop_is_named():
    nodes = cluster(DOWN, states={'pg1': LOOP})
    verdict = cluster_verdict(nodes, 'pg1')
    assert verdict.startswith('PRIMARY DOWN: pg1 is in a crash loop (4 abnormal ends within 300s, the last killed '
                              'KILL, since 2026-12-06T21:04:47Z) and stays down - run promote.yml (it would promote')
    assert 'journalctl -u postgresql@17-main on pg1' in verdict
    nodes = cluster(r2=DOWN, states={'pg2': LOOP})
    assert cluster_verdict(nodes).startswith('DEGRADED: pg2 down: crash loop (4 abnormal ends within 300s')
    assert status_document(nodes)['crash_loops'] == ['pg2']
    nodes = cluster(r3=DOWN, states={'pg3': AUTO_RESTART})
    assert cluster_verdict(nodes) == 'DEGRADED: pg3 restarting (automatic restart 1 since its last start by hand)'


def test_survey_nodes_reads_what_node_survey_returned():
    survey = {'running': False, 'error': 'down', 'fenced': False, 'crash_loop': LOOP['crash_loop'],
              'sync_relaxed': None, 'service_state': {'active_state': 'failed'}}
    hostvars = {'pg1': {'runbook_survey': survey},
                'pg2': {'runbook_survey': {'unreachable': True, 'msg': 'timeout'}}}
    n1, n2 = survey_nodes(['pg1', 'pg2'], hostvars)
    assert n1['crash_loop']['crashes'] == 4 and n1['service'] == {'active_state': 'failed'}
    assert n2['crash_loop'] is None and n2['service'] == {}

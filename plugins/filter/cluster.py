# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the runbooks use to read the cluster and decide what to do.

survey_nodes: one normalized dict per node from what playbooks/tasks/survey.yml
registered. failover_plan and switchover_plan: the decision, with the reason in
words an operator reads at 3 a.m. node_table: the survey as aligned text lines.
Pure functions: unit-tested in tests/unit/plugins/filter/test_cluster.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import (
    LsnError,
    format_table,
    lsn_to_int,
)


def _get(mapping, key, default=None):
    try:
        value = mapping[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def survey_node(name, info, fence=None):
    """Normalize one host's survey.

    info: the registered result of pgha.cluster.pg_replication_info (or None
    when the host was unreachable); fence: the registered stat of the fence
    marker.
    """
    node = {'name': name, 'reachable': False, 'running': False, 'fenced': False, 'role': 'unknown',
            'timeline': None, 'lsn': None, 'replay_lsn': None, 'receiver': None, 'upstream': None,
            'error': None}
    if not info or _get(info, 'unreachable'):
        node['error'] = _get(info, 'msg', 'unreachable') if info else 'unreachable'
        return node
    node['reachable'] = True
    node['fenced'] = bool(_get(_get(fence, 'stat', {}), 'exists', False))
    if _get(info, 'failed') or not _get(info, 'role'):
        node['role'] = 'down'
        node['error'] = _get(info, 'msg', 'PostgreSQL did not answer')
        return node
    node['running'] = True
    node['role'] = info['role']
    node['timeline'] = _get(info, 'timeline')
    if node['role'] == 'primary':
        node['lsn'] = _get(info, 'current_lsn')
        node['replay_lsn'] = node['lsn']
        node['standbys'] = [s.get('application_name') for s in _get(info, 'standbys', [])
                            if s.get('state') == 'streaming']
    else:
        receiver = _get(info, 'wal_receiver', {}) or {}
        node['lsn'] = _get(info, 'receive_lsn') or _get(info, 'replay_lsn')
        node['replay_lsn'] = _get(info, 'replay_lsn')
        node['receiver'] = _get(receiver, 'status')
        node['upstream'] = _get(receiver, 'sender_host')
    return node


def survey_nodes(names, hostvars, info_var='pgha_survey_info', fence_var='pgha_survey_fence'):
    """[survey_node(...)] for every name, reading the registered results from hostvars."""
    nodes = []
    for name in names:
        hv = _get(hostvars, name, {})
        nodes.append(survey_node(name, _get(hv, info_var), _get(hv, fence_var)))
    return nodes


def _lsn_int(node):
    try:
        return lsn_to_int(node['lsn']) if node.get('lsn') else -1
    except LsnError:
        return -1


def node_table(nodes):
    """Aligned lines: node, reachable, role, timeline, LSN, replay, receiver, fenced."""
    rows = []
    for n in nodes:
        rows.append([
            n['name'],
            'yes' if n['reachable'] else 'NO',
            n['role'].upper() if n['role'] in ('primary', 'standby') else n['role'],
            '-' if n['timeline'] is None else str(n['timeline']),
            n['lsn'] or '-',
            n['replay_lsn'] or '-',
            (n['receiver'] or '-') + ((' from ' + n['upstream']) if n.get('upstream') else ''),
            'FENCED' if n['fenced'] else '-',
        ])
    return format_table(['node', 'reachable', 'role', 'timeline', 'lsn (received/current)', 'replayed',
                         'wal receiver', 'fence'], rows).splitlines()


def failover_plan(nodes, old_primary, candidate=None, max_lag_bytes=0, force=False, sync_names=None):
    """Decide what promote.yml does.

    Returns {action: promote|noop|refuse, reason, candidate, old_primary,
    candidate_lag_bytes, followers, lost_bytes_estimate, override}.
    """
    if not isinstance(nodes, list) or not nodes:
        raise AnsibleFilterError('failover_plan expects the list from survey_nodes')
    by_name = dict((n['name'], n) for n in nodes)
    if old_primary not in by_name:
        raise AnsibleFilterError('failover_plan: the old primary %r is not among the surveyed nodes' % old_primary)
    plan = {'action': 'refuse', 'reason': '', 'override': None, 'candidate': None, 'old_primary': old_primary,
            'candidate_lag_bytes': None, 'followers': [], 'lost_bytes_estimate': None}
    primaries = [n for n in nodes if n['role'] == 'primary' and not n['fenced']]
    standbys = [n for n in nodes if n['role'] == 'standby']

    old = by_name[old_primary]
    if old['role'] == 'standby':
        plan['reason'] = ('The inventory names %s as the primary, but it runs as a replica: the inventory is out '
                          'of date. Put the primary that was lost in group \'primary\' (or pass '
                          'promote_old_primary=NAME).' % old_primary)
        plan['override'] = 'promote_old_primary'
        return plan
    if len(primaries) > 1:
        plan['reason'] = ('%d nodes run as primary (%s): split brain. Stop and decide by hand which one '
                          'keeps its writes; nothing was changed.' % (len(primaries),
                                                                      ', '.join(n['name'] for n in primaries)))
        return plan
    if len(primaries) == 1:
        live = primaries[0]
        if live['name'] != old_primary:
            plan.update(action='noop', candidate=live['name'],
                        reason='%s is already the primary (timeline %s); the cluster has failed over. '
                               'Nothing to do.' % (live['name'], live['timeline']))
            return plan
        if not force:
            plan['reason'] = ('The primary %s is up and accepts writes: this is not a failover. Use '
                              'switchover.yml for a planned swap; promote_force=true promotes anyway '
                              '(and fences %s).' % (old_primary, old_primary))
            plan['override'] = 'promote_force'
            return plan

    if not standbys:
        plan['reason'] = 'No replica answered: there is nothing to promote. Bring a replica back first.'
        return plan
    best = max(standbys, key=_lsn_int)
    if candidate:
        chosen = by_name.get(candidate)
        if chosen is None or chosen['role'] != 'standby':
            plan['reason'] = ('promote_candidate=%s is not a running replica (it is %s).'
                              % (candidate, chosen['role'] if chosen else 'not in the inventory'))
            plan['override'] = 'promote_candidate'
            return plan
    else:
        # the most advanced replica; on a tie, one named in synchronous_standby_names
        top = _lsn_int(best)
        tied = [n for n in standbys if _lsn_int(n) == top]
        sync = [n for n in tied if n['name'] in (sync_names or [])]
        chosen = (sync or tied)[0]
    lag = max(0, _lsn_int(best) - _lsn_int(chosen))
    plan['candidate'] = chosen['name']
    plan['candidate_lag_bytes'] = lag
    plan['followers'] = [n['name'] for n in standbys if n['name'] != chosen['name']]
    if old['role'] == 'primary' and old.get('lsn'):
        plan['lost_bytes_estimate'] = max(0, _lsn_int(old) - _lsn_int(chosen))
    if lag > int(max_lag_bytes) and not force:
        plan['reason'] = ('%s is %d bytes behind the most advanced replica %s (limit promote_max_lag_bytes=%d): '
                          'promoting it would lose those transactions. Pick %s, or set promote_force=true.'
                          % (chosen['name'], lag, best['name'], int(max_lag_bytes), best['name']))
        plan['override'] = 'promote_force'
        return plan
    plan['action'] = 'promote'
    plan['reason'] = 'Promote %s (received up to %s on timeline %s).' % (
        chosen['name'], chosen['lsn'], chosen['timeline'])
    return plan


def switchover_plan(nodes, candidate=None, max_lag_bytes=16777216, sync_names=None):
    """Decide what switchover.yml does: every node up, one primary, candidate streaming."""
    plan = {'action': 'refuse', 'reason': '', 'override': None, 'candidate': None, 'primary': None,
            'followers': []}
    down = [n['name'] for n in nodes if not n['running']]
    primaries = [n for n in nodes if n['role'] == 'primary']
    standbys = [n for n in nodes if n['role'] == 'standby']
    if len(primaries) != 1:
        plan['reason'] = ('A switchover needs exactly one running primary; found %d (%s). For a dead primary '
                          'use promote.yml.' % (len(primaries), ', '.join(n['name'] for n in primaries) or 'none'))
        return plan
    primary = primaries[0]
    plan['primary'] = primary['name']
    if down:
        plan['reason'] = ('%s is down or unreachable: a planned switchover wants every node healthy. Repair it '
                          '(rejoin.yml) first.' % ', '.join(down))
        return plan
    streaming = [n for n in standbys if n['receiver'] == 'streaming']
    if candidate:
        chosen = next((n for n in standbys if n['name'] == candidate), None)
        if chosen is None:
            plan['reason'] = 'switchover_candidate=%s is not a running replica.' % candidate
            plan['override'] = 'switchover_candidate'
            return plan
    else:
        pool = streaming or standbys
        if not pool:
            plan['reason'] = 'No replica to switch over to.'
            return plan
        sync = [n for n in pool if n['name'] in (sync_names or [])]
        chosen = max(sync or pool, key=_lsn_int)
    if chosen['receiver'] != 'streaming':
        plan['reason'] = '%s does not stream from the primary (WAL receiver: %s).' % (
            chosen['name'], chosen['receiver'] or 'none')
        return plan
    lag = max(0, _lsn_int(primary) - _lsn_int(chosen))
    if lag > int(max_lag_bytes):
        plan['reason'] = ('%s is %d bytes behind the primary (limit switchover_max_lag_bytes=%d); wait for it '
                          'to catch up.' % (chosen['name'], lag, int(max_lag_bytes)))
        plan['override'] = 'switchover_max_lag_bytes'
        return plan
    plan.update(action='switchover', candidate=chosen['name'],
                followers=[n['name'] for n in standbys if n['name'] != chosen['name']],
                reason='Switch over from %s to %s (%d bytes behind now).' % (primary['name'], chosen['name'], lag))
    return plan


def rejoin_plan(nodes, host, hostvars=None):
    """Decide what rejoin.yml does for host: rejoin, noop (already a healthy replica) or refuse."""
    by_name = dict((n['name'], n) for n in nodes)
    plan = {'action': 'refuse', 'reason': '', 'host': host, 'primary': None, 'slot': None}
    if host not in by_name:
        plan['reason'] = 'rejoin_host=%s is not a cluster member.' % host
        return plan
    target = by_name[host]
    primaries = [n for n in nodes if n['role'] == 'primary' and not n['fenced']]
    if len(primaries) != 1:
        plan['reason'] = ('Need exactly one running primary to rejoin to; found %d (%s). Run promote.yml '
                          'first.' % (len(primaries), ', '.join(n['name'] for n in primaries) or 'none'))
        return plan
    primary = primaries[0]
    plan['primary'] = primary['name']
    hv = _get(hostvars, host, {}) if hostvars is not None else {}
    plan['slot'] = _get(hv, 'postgresql_slot_name') or _slot_name(host)
    if primary['name'] == host:
        plan['reason'] = ('%s is the running primary: there is nothing to rejoin. For a planned swap use '
                          'switchover.yml.' % host)
        return plan
    if not target['reachable']:
        plan['reason'] = '%s cannot be reached (%s).' % (host, target.get('error') or 'unreachable')
        return plan
    if (target['role'] == 'standby' and target['receiver'] == 'streaming'
            and target['timeline'] == primary['timeline'] and not target['fenced']):
        plan.update(action='noop', reason='%s already streams from the primary %s on timeline %s. Nothing to do.'
                    % (host, primary['name'], primary['timeline']))
        return plan
    plan.update(action='rejoin', reason='Make %s (%s%s) a replica of %s.' % (
        host, target['role'], ', fenced' if target['fenced'] else '', primary['name']))
    return plan


def _slot_name(host):
    from ansible_collections.pgha.cluster.plugins.filter.slot_name import slot_name
    return slot_name(host)


class FilterModule(object):
    def filters(self):
        return {
            'survey_nodes': survey_nodes,
            'node_table': node_table,
            'failover_plan': failover_plan,
            'switchover_plan': switchover_plan,
            'rejoin_plan': rejoin_plan,
        }

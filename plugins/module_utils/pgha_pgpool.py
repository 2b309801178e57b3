# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgpool-II's view of its backends (pcp_node_info) and the steps that bring it in line
with the cluster, as pure functions for pgha.cluster.pgpool_sync (unit-tested in
tests/unit/plugins/module_utils/test_pgha_pgpool.py).

pgpool never decides a failover here: its failover commands are empty, so a detach only
takes a node out of its routing and an attach makes it search for the primary again
(find_primary_node_repeatedly). These helpers choose the smallest set of detaches and
attaches that make pgpool route writes to the primary the cluster really has, and reads
only to its live standbys."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

#: pcp_node_info's status names that mean pgpool routes to the node.
UP_STATUSES = ('up', 'waiting')
#: The pcp command each step of next_actions runs ('research' is a detach, see there).
PCP_VERBS = {'detach': 'detach', 'attach': 'attach', 'research': 'detach'}


def parse_node_info(text):
    """pcp_node_info's lines for every node, in node id order ->
    [{id, host, port, status, role}].

    4.3 and later print: host port status_code weight status pg_status role pg_role
    delay replication_state sync_state last_change (date and time); earlier versions
    lack pg_status and pg_role."""
    nodes = []
    for line in (text or '').splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        if not fields[1].isdigit() or not fields[2].isdigit():
            continue
        new_format = len(fields) >= 12
        nodes.append({'id': len(nodes), 'host': fields[0], 'port': int(fields[1]), 'status': fields[4],
                      'role': fields[6] if new_format else fields[5],
                      'actual_status': fields[5] if new_format else None,
                      'actual_role': fields[7] if new_format else None})
    return nodes


def _by_id(nodes):
    return dict((int(n['id']), n) for n in nodes)


def mismatches(view, desired):
    """[(id, what pgpool shows, what it should show)] for every node out of line; [] when
    pgpool routes as the cluster is."""
    seen = _by_id(view)
    out = []
    for want in desired:
        node = seen.get(int(want['id']))
        if node is None:
            out.append((want['id'], 'missing', want['role']))
            continue
        up = node['status'] in UP_STATUSES
        if want['role'] == 'down':
            ok = not up
        else:
            ok = up and node['role'] == want['role']
        if not ok:
            out.append((want['id'], '%s %s' % (node['status'], node['role']), want['role']))
    return out


def next_actions(view, desired):
    """The next pcp steps, [(command, node id)] with command 'detach', 'attach' or
    'research' (a detach of the primary, to attach it in the next phase: the caller gives
    pgpool's own search for the primary a few seconds first), or [] when pgpool is in line
    (a node pgpool does not know of leaves nothing to do).

    One phase per call; the caller runs them, waits for pgpool to settle and asks again:
    1. take out the nodes that are down (a detached primary makes pgpool search again);
    2. get the primary right: attach it if pgpool has it down; else take out the node
       pgpool wrongly routes writes to; else (pgpool gave up its search) take the primary
       out, to attach it in the next phase, which searches again;
    3. attach the standbys pgpool has down."""
    seen = _by_id(view)
    want = dict((int(d['id']), d['role']) for d in desired if int(d['id']) in seen)
    down = [i for i, role in sorted(want.items()) if role == 'down' and seen[i]['status'] in UP_STATUSES]
    if down:
        return [('detach', i) for i in down]
    primary = [i for i, role in want.items() if role == 'primary']
    if primary:
        p = primary[0]
        node = seen[p]
        if node['status'] not in UP_STATUSES:
            return [('attach', p)]
        if node['role'] != 'primary':
            wrong = [i for i, n in sorted(seen.items())
                     if i != p and n['role'] == 'primary' and n['status'] in UP_STATUSES]
            return [('detach', wrong[0])] if wrong else [('research', p)]
    standbys = [i for i, role in sorted(want.items()) if role == 'standby']
    attach = [i for i in standbys if seen[i]['status'] not in UP_STATUSES]
    if attach:
        return [('attach', i) for i in attach]
    # a standby pgpool takes for the primary while the real one is in line cannot happen
    # (one primary per pgpool); without a primary in the cluster, a standby it still calls
    # primary is taken out and back in
    wrong = [i for i in standbys if seen[i]['role'] == 'primary' and seen[i]['status'] in UP_STATUSES]
    return [('detach', i) for i in wrong]


def view_lines(view, names=None):
    """One line per node for a summary: 'id name status role (actual: ...)'."""
    names = names or {}
    lines = []
    for n in view:
        actual = ''
        if n.get('actual_status') or n.get('actual_role'):
            actual = ' (server: %s %s)' % (n.get('actual_status') or '?', n.get('actual_role') or '?')
        lines.append('%s %s %s %s%s' % (n['id'], names.get(int(n['id']), '%s:%s' % (n['host'], n['port'])),
                                        n['status'], n['role'], actual))
    return lines

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the runbooks use to read the cluster and decide what to do.

survey_nodes: one normalized dict per node from what roles/runbook/tasks/survey.yml
registered (pgha.cluster.node_survey). failover_plan and switchover_plan: the decision, with the reason in
words an operator reads at 3 a.m. node_table: the survey as aligned text lines.
status_document: everything status.yml shows, as data (status_lines is its screen,
status_dot its graphviz picture, to_json its JSON), so the three cannot disagree.
Pure functions: unit-tested in tests/unit/plugins/filter/test_cluster.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.backup import backup_status_line
from ansible_collections.pgha.cluster.plugins.filter.validate import lookup as _get
from ansible_collections.pgha.cluster.plugins.filter.validate import member_address
from ansible_collections.pgha.cluster.plugins.plugin_utils.primary import counts_as_primary
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import (
    LsnError,
    format_table,
    int_to_lsn,
    lsn_to_int,
)


#: What a primary's view of each standby and slot keeps (pgha_replication.shape_standby, shape_slot).
_SENDER_KEYS = ('application_name', 'slot_name', 'client_addr', 'state', 'sync_state', 'replay_lag_bytes',
                'replay_lag')
_SLOT_KEYS = ('slot_name', 'slot_type', 'active', 'retained_bytes', 'wal_status')


def primaries_of(nodes):
    """The surveyed nodes that count as primaries (plugin_utils/primary.py: running as one, not fenced)."""
    return [n for n in nodes if counts_as_primary(n['role'], n['fenced'])]


def survey_node(name, info, fenced=False, address=None, addresses=None, vips=None, slot=None, state=None):
    """Normalize one host's survey.

    info: the replication report of pgha.cluster.node_survey (or the registered result itself
    when the host was unreachable, or {'failed': True, 'msg': why} when PostgreSQL did not
    answer; None when nothing was registered); fenced: whether its fence marker exists;
    address: the member's address; addresses: the IPv4 addresses it holds now; vips:
    {'writer': address, 'reader': address}; slot: its replication slot name (= the
    application_name it streams with; default: slot_name of its name); state: what node_survey read
    beside PostgreSQL ({crash_loop, sync_relaxed, service_state}: the crash-loop marker, sync_relax.yml's
    marker, the service's systemd state).

    A primary also keeps what it sees of its standbys (senders: application_name, slot_name,
    client_addr, state, sync_state, replay_lag_bytes, replay_lag) and its slots (slot_name,
    slot_type, active, retained_bytes, wal_status), from which status_rows reads each member's
    lag, sync state and slot.
    """
    node = {'name': name, 'reachable': False, 'running': False, 'fenced': False, 'role': 'unknown',
            'timeline': None, 'lsn': None, 'replay_lsn': None, 'receiver': None, 'upstream': None,
            'error': None, 'address': address, 'vips': [], 'system_identifier': None, 'history': None,
            'slot': slot or _slot_name(name), 'crash_loop': _get(state, 'crash_loop'),
            'sync_relaxed': _get(state, 'sync_relaxed'), 'service': _get(state, 'service_state', {}) or {},
            'sync': None}
    held = set(addresses or [])
    node['vips'] = sorted(k for k, v in (vips or {}).items() if v and v in held)
    if not info or _get(info, 'unreachable'):
        node['error'] = _get(info, 'msg', 'unreachable') if info else 'unreachable'
        return node
    node['reachable'] = True
    node['fenced'] = bool(fenced)
    if _get(info, 'failed') or not _get(info, 'role'):
        node['role'] = 'down'
        node['error'] = _get(info, 'msg', 'PostgreSQL did not answer')
        return node
    node['running'] = True
    node['role'] = info['role']
    node['timeline'] = _get(info, 'timeline')
    node['system_identifier'] = _get(info, 'system_identifier')
    node['history'] = _get(info, 'timeline_history')
    if node['role'] == 'primary':
        node['lsn'] = _get(info, 'current_lsn')
        node['replay_lsn'] = node['lsn']
        node['standbys'] = [s.get('application_name') for s in _get(info, 'standbys', [])
                            if s.get('state') == 'streaming']
        node['senders'] = [dict((k, _get(s, k)) for k in _SENDER_KEYS) for s in _get(info, 'standbys', [])]
        # None (not []) when the report has no slots: no slot is then reported MISSING
        slots = _get(info, 'slots')
        node['slots'] = None if slots is None else [dict((k, _get(s, k)) for k in _SLOT_KEYS) for s in slots]
        node['sync'] = _get(info, 'synchronous')
    else:
        receiver = _get(info, 'wal_receiver', {}) or {}
        node['lsn'] = _get(info, 'receive_lsn') or _get(info, 'replay_lsn')
        node['replay_lsn'] = _get(info, 'replay_lsn')
        node['receiver'] = _get(receiver, 'status')
        node['upstream'] = _get(receiver, 'sender_host')
    return node


def survey_report(registered):
    """(info, fenced) for survey_node from what roles/runbook/tasks/survey.yml registered with
    pgha.cluster.node_survey: its replication report when PostgreSQL answered, the result
    itself when the host was unreachable or the module failed, else the error."""
    if not registered or _get(registered, 'unreachable') or _get(registered, 'failed'):
        return registered, False
    fenced = bool(_get(registered, 'fenced', False))
    if not _get(registered, 'running'):
        return {'failed': True, 'msg': _get(registered, 'error') or 'PostgreSQL did not answer'}, fenced
    return _get(registered, 'replication', {}), fenced


def survey_nodes(names, hostvars, survey_var='runbook_survey', vips=None):
    """[survey_node(...)] for every name, reading what the survey registered, the member's
    address, its slot (postgresql_slot_name, else slot_name of its name) and the addresses it
    holds (the facts node_survey returned) from hostvars. vips: the VIPs in any form
    ('10.0.0.100/24' or '10.0.0.100'), as {'writer': ..., 'reader': ...}."""
    vips = _vip_addresses(vips)
    nodes = []
    for name in names:
        hv = _get(hostvars, name, {})
        held = _get(_get(hv, 'ansible_facts', {}), 'all_ipv4_addresses', [])
        registered = _get(hv, survey_var)
        info, fenced = survey_report(registered)
        slot = _get(hv, 'postgresql_slot_name')
        state = None if not registered or _get(registered, 'unreachable') else dict(
            (k, _get(registered, k)) for k in ('crash_loop', 'sync_relaxed', 'service_state'))
        nodes.append(survey_node(name, info, fenced, member_address(hv), held, vips,
                                 str(slot) if slot not in (None, '') else None, state))
    return nodes


def _vip_addresses(vips):
    """{kind: address} without the prefix length, for the VIPs that are set."""
    return dict((k, str(v).split('/', maxsplit=1)[0]) for k, v in (vips or {}).items() if v)


def _lsn_int(node):
    try:
        return lsn_to_int(node['lsn']) if node.get('lsn') else -1
    except LsnError:
        return -1


def human_bytes(value):
    """A byte count as PostgreSQL's pg_size_pretty would round it, without the blank: 0B, 512B,
    1.5kB, 16MB, 2.3GB. None stays None."""
    if value is None:
        return None
    value = int(value)
    size, unit = float(abs(value)), 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    if unit == 0:
        return '%dB' % value
    text = ('%.1f' % size).rstrip('0').rstrip('.')
    return '%s%s%s' % ('-' if value < 0 else '', text, _UNITS[unit])


_UNITS = ('B', 'kB', 'MB', 'GB', 'TB', 'PB')


def _seconds(value):
    if value is None:
        return None
    value = float(value)
    return '%.1f' % value if value >= 1 or value == 0 else '%.3f' % value


def reference_primary(nodes):
    """The primary the others are measured against: the one unfenced primary; in a split brain
    the one to keep (split_brain); None when no node runs as primary."""
    primaries = primaries_of(nodes)
    if len(primaries) < 2:
        return primaries[0] if primaries else None
    keep = split_brain(nodes)['keep']
    return next(p for p in primaries if p['name'] == keep)


def _sender_entry(node, primary):
    """The primary's standbys[] entry of this member: by application_name (= its slot name),
    else by the slot it streams on, else by its address."""
    senders = primary.get('senders') or []
    for key, value in (('application_name', node.get('slot')), ('slot_name', node.get('slot')),
                       ('client_addr', node.get('address'))):
        if value:
            found = [s for s in senders if s.get(key) == value]
            if found:
                return found[0]
    return None


def _slot_entry(primary, names):
    for slot in primary.get('slots') or []:
        if slot.get('slot_name') and slot.get('slot_name') in names:
            return slot
    return None


def status_rows(nodes):
    """One dict per node with every column of the table as data: name, address, reachable,
    role, timeline, lsn, replay_lsn, receiver, upstream (the address it streams from),
    upstream_node (the member at that address, else the primary that lists it as a
    standby), lag_bytes and lag_seconds (replay lag behind that primary, from its
    pg_stat_replication; lag_seconds is null when nothing was replayed lately), sync_state
    (sync, quorum, potential or async), slot (its slot name on the primary; null when the
    primary has none for it), slot_active, slot_wal_status, retained_bytes (the WAL that slot
    holds back), fenced, vips, error, and is_reference (the primary the others are measured
    against)."""
    reference = reference_primary(nodes)
    primaries = primaries_of(nodes)
    if reference is not None:
        primaries = [reference] + [p for p in primaries if p is not reference]
    by_address = dict((n['address'], n['name']) for n in nodes if n.get('address'))
    rows = []
    for n in nodes:
        row = {'name': n['name'], 'address': n.get('address'), 'reachable': n['reachable'], 'role': n['role'],
               'timeline': n['timeline'], 'lsn': n['lsn'], 'replay_lsn': n['replay_lsn'],
               'receiver': n['receiver'], 'upstream': n.get('upstream'),
               'upstream_node': by_address.get(n.get('upstream')) if n.get('upstream') else None,
               'lag_bytes': None, 'lag_seconds': None, 'sync_state': None, 'slot': None, 'slot_active': None,
               'slot_wal_status': None, 'retained_bytes': None, 'slot_missing': False,
               'fenced': n['fenced'], 'vips': list(n.get('vips') or []), 'error': n.get('error'),
               'is_reference': n is reference}
        rows.append(row)
        if any(n is p for p in primaries):
            continue
        primary, entry = reference, None
        for p in primaries:
            entry = _sender_entry(n, p)
            if entry is not None:
                primary = p
                break
        if entry is not None:
            row['upstream_node'] = row['upstream_node'] or primary['name']
            row['lag_bytes'] = entry.get('replay_lag_bytes')
            row['lag_seconds'] = entry.get('replay_lag')
            row['sync_state'] = entry.get('sync_state')
        if primary is None or primary.get('slots') is None:
            continue
        slot = _slot_entry(primary, [x for x in (n.get('slot'), (entry or {}).get('slot_name')) if x])
        if slot is None:
            row['slot_missing'] = True
            continue
        row.update(slot=slot['slot_name'], slot_active=slot.get('active'), slot_wal_status=slot.get('wal_status'),
                   retained_bytes=slot.get('retained_bytes'))
    return rows


def _slot_cell(row):
    if row['slot_missing']:
        return 'MISSING'
    if not row['slot']:
        return '-'
    flags = ([] if row['slot_active'] in (None, True) else ['inactive']) + \
        ([row['slot_wal_status']] if row['slot_wal_status'] in ('extended', 'unreserved', 'lost') else [])
    return row['slot'] + ('(%s)' % ','.join(flags) if flags else '')


#: The table's columns: header, and the cell of a status_rows row.
_COLUMNS = (
    ('node', lambda r: r['name']),
    ('reachable', lambda r: 'yes' if r['reachable'] else 'NO'),
    ('role', lambda r: r['role'].upper() if r['role'] in ('primary', 'standby') else r['role']),
    ('timeline', lambda r: '-' if r['timeline'] is None else str(r['timeline'])),
    ('lsn(received/current)', lambda r: r['lsn'] or '-'),
    ('replayed', lambda r: r['replay_lsn'] or '-'),
    ('wal_receiver<-upstream', lambda r: (r['receiver'] or '-') + (('<-' + r['upstream']) if r['upstream'] else '')),
    ('lag', lambda r: human_bytes(r['lag_bytes']) or '-'),
    ('lag(s)', lambda r: _seconds(r['lag_seconds']) or '-'),
    ('sync', lambda r: r['sync_state'] or '-'),
    ('slot', _slot_cell),
    ('retained', lambda r: human_bytes(r['retained_bytes']) or '-'),
    ('fence', lambda r: 'FENCED' if r['fenced'] else '-'),
    ('vip', lambda r: ','.join(r['vips']) or '-'),
)


def _no_blank(cell):
    # the YAML callback folds a long line at a single space: no cell may hold one
    return str(cell).replace(' ', '_')


def rows_table(rows):
    """status_rows as aligned lines (node_table, status_lines)."""
    return format_table([h for h, _cell in _COLUMNS],
                        [[_no_blank(cell(r)) for _h, cell in _COLUMNS] for r in rows]).splitlines()


def node_table(nodes):
    """Aligned lines: node, reachable, role, timeline, LSN, replay, receiver<-upstream, lag behind
    the primary (bytes, seconds), sync state, its slot on the primary and the WAL it retains,
    fenced, VIPs (status_rows).

    No cell holds a single space: the YAML callback folds long lines only at a single space,
    so the table is never broken in the middle of a row."""
    return rows_table(status_rows(nodes))


# --------------------------------------------------------------------------
# Two primaries: where they forked, what each wrote since, which one to keep
# --------------------------------------------------------------------------

def _timeline_path(node):
    """[(timeline, end LSN as int or None for the current one)] from the node's history,
    or None when its history is unknown."""
    history = node.get('history')
    if node.get('timeline') is None or (history is None and node['timeline'] > 1):
        return None
    try:
        path = [(int(h['timeline']), lsn_to_int(h['switchpoint'])) for h in (history or [])]
    except (KeyError, TypeError, ValueError, LsnError):
        return None
    return path + [(int(node['timeline']), None)]


def fork_point(a, b):
    """The LSN (as int) where the histories of nodes a and b part, or None when unknown."""
    pa, pb = _timeline_path(a), _timeline_path(b)
    if pa is None or pb is None:
        return None
    previous_end = 0
    for (ta, ea), (tb, eb) in zip(pa, pb):
        if ta != tb:
            return previous_end
        if ea == eb:
            if ea is None:
                return None   # the same timeline, still open on both: no fork
            previous_end = ea
            continue
        ends = [e for e in (ea, eb) if e is not None]
        return min(ends)
    return previous_end


def split_brain(nodes):
    """None, or what a tired DBA needs when several unfenced nodes run as primary:
    {primaries: [{name, timeline, lsn, followers, vips, fork_lsn, bytes_after_fork}],
     keep, discard: [names], reason}. The one to keep is the one the replicas follow, then
    the one holding the writer VIP, then the newest timeline (the promoted one)."""
    primaries = primaries_of(nodes)
    if len(primaries) < 2:
        return None
    standbys = [n for n in nodes if n['role'] == 'standby']
    entries = []
    for p in primaries:
        followers = sorted(s['name'] for s in standbys if p.get('address') and s.get('upstream') == p['address'])
        entries.append({'name': p['name'], 'timeline': p['timeline'], 'lsn': p['lsn'], 'followers': followers,
                        'vips': list(p.get('vips') or []), 'fork_lsn': None, 'bytes_after_fork': None})
    by_name = dict((p['name'], p) for p in primaries)
    keep = max(entries, key=lambda e: (len(e['followers']), 'writer' in e['vips'], e['timeline'] or 0,
                                       _lsn_int(by_name[e['name']])))
    for e in entries:
        if e is keep:
            continue
        fork = fork_point(by_name[keep['name']], by_name[e['name']])
        if fork is not None:
            for x in (e, keep):
                lsn = _lsn_int(by_name[x['name']])
                after = max(0, lsn - fork) if lsn >= 0 else None
                if x is keep:
                    keep['bytes_after_fork'] = max(after or 0, keep['bytes_after_fork'] or 0)
                    keep['fork_lsn'] = keep['fork_lsn'] or int_to_lsn(fork)
                else:
                    x['bytes_after_fork'] = after
                    x['fork_lsn'] = int_to_lsn(fork)
    why = []
    if keep['followers']:
        why.append('the replicas follow it (%s)' % ', '.join(keep['followers']))
    if 'writer' in keep['vips']:
        why.append('it holds the writer VIP')
    why.append('it is on timeline %s' % keep['timeline'])
    return {'primaries': entries, 'keep': keep['name'],
            'discard': [e['name'] for e in entries if e is not keep],
            'reason': '; '.join(why)}


def split_brain_lines(report):
    """The split-brain report as lines for the screen (empty when there is none)."""
    if not report:
        return []
    lines = ['SPLIT BRAIN: %d nodes run as primary. Keep %s: %s.'
             % (len(report['primaries']), report['keep'], report['reason'])]
    for e in report['primaries']:
        role = 'KEEP   ' if e['name'] == report['keep'] else 'DISCARD'
        after = ('%s bytes of WAL written after the fork at %s' % (e['bytes_after_fork'], e['fork_lsn'])
                 if e['bytes_after_fork'] is not None else 'fork point unknown (no timeline history)')
        lines.append('  %s %s: timeline %s, lsn %s, %s; followed by %s; VIPs %s'
                     % (role, e['name'], e['timeline'], e['lsn'], after, ', '.join(e['followers']) or 'no replica',
                        ', '.join(e['vips']) or 'none'))
    for name in report['discard']:
        lines.append('  To end it: ansible-playbook -i <inventory> pgha.cluster.rejoin -e rejoin_host=%s '
                     '-e rejoin_split_brain_confirm=true (fences %s, keeps its data directory aside, rewinds it '
                     'onto %s)' % (name, name, report['keep']))
    return lines


def cluster_verdict(nodes, old_primary=None, sync_names=None):
    """One line: HEALTHY, DEGRADED: ..., PRIMARY DOWN: run promote.yml, or SPLIT BRAIN: ...

    With old_primary (the inventory's primary, as promote.yml takes it) and sync_names (the
    synchronous standbys, as the runbook role computes them), PRIMARY DOWN says what promote.yml would do:
    failover_plan's own decision, never a second one."""
    report = split_brain(nodes)
    if report:
        return ('SPLIT BRAIN: %s run as primary; keep %s - run rejoin.yml -e rejoin_host=%s '
                '-e rejoin_split_brain_confirm=true' % (' and '.join(e['name'] for e in report['primaries']),
                                                        report['keep'], report['discard'][0]))
    primaries = primaries_of(nodes)
    if not primaries:
        old = next((n for n in nodes if n['name'] == old_primary), None)
        if old is not None and restarting(old):
            return ('PRIMARY RESTARTING: %s\'s PostgreSQL ended abnormally and systemd is starting it again (%s) - '
                    'wait a few seconds and look again; do not promote' % (old['name'], _restart_text(old)))
        if old is not None and old.get('crash_loop') is not None:
            return ('PRIMARY DOWN: %s is in a crash loop (%s) and stays down - run promote.yml%s; or find the cause '
                    '(journalctl -u %s on %s), remove the crash-loop marker and start it'
                    % (old['name'], _crash_loop_text(old), _promote_hint(nodes, old_primary, sync_names),
                       _get(old['crash_loop'], 'service', 'its PostgreSQL service'), old['name']))
        return 'PRIMARY DOWN: no node runs as primary - run promote.yml' + _promote_hint(nodes, old_primary, sync_names)
    primary = primaries[0]
    problems = []
    for n in nodes:
        if n is primary:
            continue
        if not n['reachable']:
            problems.append('%s unreachable' % n['name'])
        elif n['fenced']:
            problems.append('%s fenced (run rejoin.yml -e rejoin_host=%s)' % (n['name'], n['name']))
        elif not n['running'] and restarting(n):
            problems.append('%s restarting (%s)' % (n['name'], _restart_text(n)))
        elif not n['running'] and n.get('crash_loop') is not None:
            problems.append('%s down: crash loop (%s; remove its marker once the cause is found, then start it)'
                            % (n['name'], _crash_loop_text(n)))
        elif not n['running']:
            problems.append('%s down' % n['name'])
        elif n['role'] == 'standby' and n['receiver'] != 'streaming':
            problems.append('%s not streaming' % n['name'])
        elif n['role'] == 'standby' and n['timeline'] != primary['timeline']:
            problems.append('%s on timeline %s, primary on %s' % (n['name'], n['timeline'], primary['timeline']))
    blocked = writes_blocked(nodes)
    if blocked:
        return ('WRITES BLOCKED: %s waits for %d synchronous standby(s), %d connected%s: every commit hangs - bring a '
                'standby back, or run sync_relax.yml to take writes without one (commits are then on %s alone '
                'until sync_relax.yml -e sync_relax_action=restore)'
                % (blocked['primary'], blocked['required'], len(blocked['connected']),
                   ' (%s)' % '; '.join(problems) if problems else '', blocked['primary']))
    relaxed = sync_relaxed(nodes)
    if relaxed:
        return ('RELAXED: synchronous replication on %s is relaxed since %s (sync_relax.yml): commits acknowledged '
                'since then may be on %s alone; %d standby(s) streaming%s - run sync_relax.yml -e '
                'sync_relax_action=restore once they are back'
                % (relaxed['primary'], relaxed['since'], relaxed['primary'],
                   len([n for n in nodes if n['role'] == 'standby' and n['receiver'] == 'streaming']),
                   ' (%s)' % '; '.join(problems) if problems else ''))
    if problems:
        return 'DEGRADED: ' + '; '.join(problems)
    return 'HEALTHY: %s is the primary on timeline %s, %d replica(s) streaming' % (
        primary['name'], primary['timeline'], len(nodes) - 1)


def restarting(node):
    """Whether systemd is (re)starting a node's PostgreSQL that does not answer yet (after an abnormal end,
    Restart=on-abnormal, or a start under way)."""
    service = node.get('service') or {}
    return (node['reachable'] and not node['running']
            and (service.get('sub_state') == 'auto-restart' or service.get('active_state') == 'activating'))


def _restart_text(node):
    count = (node.get('service') or {}).get('restarts')
    return 'automatic restart %s since its last start by hand' % count if count else 'a start is under way'


def _crash_loop_text(node):
    loop = node.get('crash_loop') or {}
    return '%s abnormal ends within %ss, the last %s, since %s' % (
        _get(loop, 'crashes', '?'), _get(loop, 'window', '?'), _get(loop, 'last', '?'), _get(loop, 'at', '?'))


def writes_blocked(nodes):
    """{primary, required, connected, waiting_for} when the one running primary waits for more synchronous
    standbys than are connected (every commit hangs); None otherwise."""
    primaries = primaries_of(nodes)
    if len(primaries) != 1:
        return None
    sync = primaries[0].get('sync') or {}
    if not sync.get('blocked'):
        return None
    names = list(sync.get('names') or [])
    return {'primary': primaries[0]['name'], 'required': sync.get('required'),
            'connected': list(sync.get('connected') or []),
            'waiting_for': [x for x in names if x not in (sync.get('connected') or [])]}


def sync_relaxed(nodes):
    """{primary, since, timeline, seen_on} from the markers sync_relax.yml leaves on the members while
    synchronous replication is relaxed (the primary's own first); None when no surveyed node has one that
    still counts. A marker counts on the timeline it was left on: a promotion (a new timeline) ends the
    relaxed window, and the promoted node's synchronous_standby_names is the inventory's again."""
    primaries = primaries_of(nodes)
    timelines = [n['timeline'] for n in (primaries or [n for n in nodes if n['running']]) if n.get('timeline')]
    current = max(timelines) if timelines else None
    marked = [n for n in nodes if n.get('sync_relaxed') is not None
              and (current is None or _get(n['sync_relaxed'], 'timeline') in (None, current))]
    if not marked:
        return None
    first = sorted(marked, key=lambda n: n['role'] != 'primary')[0]['sync_relaxed']
    return {'primary': _get(first, 'primary', '?'), 'since': _get(first, 'since', '?'),
            'timeline': _get(first, 'timeline'), 'seen_on': [n['name'] for n in marked]}


def _promote_hint(nodes, old_primary, sync_names):
    """' (it would promote NAME: why)' or ' (it would refuse: why)' from failover_plan with
    promote.yml's defaults; '' without an old primary among the nodes."""
    if not old_primary or old_primary not in [n['name'] for n in nodes]:
        return ''
    plan = failover_plan(nodes, old_primary, sync_names=sync_names)
    if plan['action'] != 'promote':
        return ' (it would refuse: %s)' % plan['reason']
    chosen = next(n for n in nodes if n['name'] == plan['candidate'])
    why = 'newest LSN %s on timeline %s' % (chosen['lsn'], chosen['timeline'])
    tied = [n for n in nodes if n['role'] == 'standby' and _lsn_int(n) == _lsn_int(chosen)]
    if len(tied) > 1 and chosen['name'] in (sync_names or []):
        why += ', a synchronous standby (tied with %s)' % ', '.join(n['name'] for n in tied if n is not chosen)
    elif len(tied) > 1:
        why += ' (tied with %s)' % ', '.join(n['name'] for n in tied if n is not chosen)
    if plan['followers']:
        why += '; %s would follow it' % ', '.join(plan['followers'])
    return ' (it would promote %s: %s)' % (chosen['name'], why)


def sync_hosts(members, mode='off', names=None):
    """The members that synchronous_standby_names lists (postgresql_synchronous_names, or every
    member when empty); [] when synchronous replication is off. members: cluster_members."""
    if str(mode) == 'off':
        return []
    wanted = set(names or [m['slot'] for m in members])
    return [m['name'] for m in members if m['slot'] in wanted]


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
    primaries = primaries_of(nodes)
    standbys = [n for n in nodes if n['role'] == 'standby']

    old = by_name[old_primary]
    if old['role'] == 'standby':
        plan['reason'] = ('The inventory names %s as the primary, but it runs as a replica: the inventory is out '
                          'of date. Put the primary that was lost in group \'primary\' (or pass '
                          'promote_old_primary=NAME).' % old_primary)
        plan['override'] = 'promote_old_primary'
        return plan
    if len(primaries) > 1:
        report = split_brain(nodes)
        plan['reason'] = ('%d nodes run as primary (%s): split brain, not a failover. Keep %s (%s); end it with '
                          'rejoin.yml -e rejoin_host=%s -e rejoin_split_brain_confirm=true, which keeps the other\'s '
                          'data directory aside. status.yml shows what each wrote after the fork.'
                          % (len(primaries), ', '.join(n['name'] for n in primaries), report['keep'],
                             report['reason'], report['discard'][0]))
        plan['override'] = 'rejoin_split_brain_confirm'
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
    relaxed = sync_relaxed(nodes)
    if relaxed and not force:
        plan['reason'] = ('Synchronous replication was relaxed on %s since %s (sync_relax.yml) and not restored: '
                          'commits acknowledged from then until %s was lost may exist on %s alone, and promoting a '
                          'replica loses them. Bring %s back (a crashed PostgreSQL restarts by itself), or set '
                          'promote_force=true to promote anyway and accept losing the commits of that window.'
                          % (relaxed['primary'], relaxed['since'], relaxed['primary'], relaxed['primary'],
                             relaxed['primary']))
        plan['override'] = 'promote_force'
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


def sync_relax_plan(nodes, action='relax', sync_slots=None, count=1, force=False, allowed=True, mode='off'):
    """Decide what sync_relax.yml does.

    nodes: survey_nodes; action: relax (stop making commits wait for standbys while too few are
    connected) or restore (the inventory's synchronous_standby_names again); sync_slots: the
    application_names the inventory's synchronous_standby_names lists; count:
    postgresql_synchronous_count; allowed: postgresql_synchronous_relax_allowed; mode:
    postgresql_synchronous_mode. Returns {action: relax|restore|noop|refuse, reason, override,
    primary, members (the reachable members, which get or lose the marker), streaming (the listed
    standbys that stream), required, relaxed (sync_relaxed's report or null)}.
    """
    plan = {'action': 'refuse', 'reason': '', 'override': None, 'primary': None,
            'members': [n['name'] for n in nodes if n['reachable']], 'streaming': [], 'required': int(count or 0),
            'relaxed': sync_relaxed(nodes), 'timeline': None}
    if str(mode or 'off') == 'off':
        plan['reason'] = ('postgresql_synchronous_mode is off: commits never wait for a standby, there is nothing to '
                          '%s.' % action)
        return plan
    if action == 'relax' and not allowed:
        plan['reason'] = ('postgresql_synchronous_relax_allowed is false for this cluster: commits wait for a '
                          'standby (RPO 0) even when none is connected. Bring a standby back, or set it to true in '
                          'the inventory to let sync_relax.yml trade RPO 0 for availability.')
        plan['override'] = 'postgresql_synchronous_relax_allowed'
        return plan
    primaries = primaries_of(nodes)
    if len(primaries) != 1:
        plan['reason'] = ('%s: sync_relax.yml works on the one running primary. Run status.yml (and promote.yml, '
                          'or rejoin.yml for a split brain) first.'
                          % ('No node runs as primary' if not primaries
                             else '%s run as primary' % ' and '.join(n['name'] for n in primaries)))
        return plan
    primary = primaries[0]
    plan['primary'] = primary['name']
    plan['timeline'] = primary['timeline']
    wanted = set(sync_slots or [])
    plan['streaming'] = sorted(x for x in (primary.get('standbys') or []) if x in wanted)
    sync = primary.get('sync') or {}
    relaxed_now = not sync.get('required')
    if action == 'relax':
        if relaxed_now and plan['relaxed']:
            plan.update(action='noop', reason='Synchronous replication on %s is already relaxed (since %s). Nothing '
                                              'to do.' % (primary['name'], plan['relaxed']['since']))
            return plan
        if not sync.get('blocked') and not force:
            plan['reason'] = ('%s waits for %d synchronous standby(s) and %d stream (%s): commits do not wait, there '
                              'is nothing to relax. sync_relax_force=true relaxes anyway (RPO no longer 0).'
                              % (primary['name'], sync.get('required') or 0, len(sync.get('connected') or []),
                                 ', '.join(sync.get('connected') or []) or 'none'))
            plan['override'] = 'sync_relax_force'
            return plan
        reason = ('Relax synchronous replication on %s: %d of %d standby(s) connected, every commit waits now. '
                  'Commits will no longer wait for a standby (RPO is not 0 until restored).'
                  % (primary['name'], len(sync.get('connected') or []), sync.get('required') or 0))
        plan.update(action='relax', reason=reason)
        return plan
    if not relaxed_now and not plan['relaxed']:
        plan.update(action='noop', reason='Synchronous replication on %s is not relaxed (%s). Nothing to do.'
                    % (primary['name'], sync.get('standby_names') or 'off'))
        return plan
    if len(plan['streaming']) < plan['required'] and not force:
        plan['reason'] = ('Only %d of the %d synchronous standby(s) stream (%s): restoring now would block every '
                          'commit again. Bring the standbys back first, or set sync_relax_force=true.'
                          % (len(plan['streaming']), plan['required'], ', '.join(plan['streaming']) or 'none'))
        plan['override'] = 'sync_relax_force'
        return plan
    reason = ('Restore synchronous replication on %s: %s stream; commits will wait for %d of them again (RPO 0).'
              % (primary['name'], ', '.join(plan['streaming']) or 'none', plan['required']))
    plan.update(action='restore', reason=reason)
    return plan


def switchover_plan(nodes, candidate=None, max_lag_bytes=16777216, sync_names=None):
    """Decide what switchover.yml does: every node up, one primary, candidate streaming."""
    plan = {'action': 'refuse', 'reason': '', 'override': None, 'candidate': None, 'primary': None,
            'followers': []}
    down = [n['name'] for n in nodes if not n['running']]
    primaries = primaries_of(nodes)
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


def rejoin_plan(nodes, host, hostvars=None, split_brain_confirm=False):
    """Decide what rejoin.yml does for host: rejoin, noop (already a healthy replica) or refuse.

    With two running primaries (split brain) it rejoins the one to discard (see split_brain)
    only with split_brain_confirm; plan['split_brain'] then carries the report, and the
    node's data directory is kept aside before it is rewound."""
    by_name = dict((n['name'], n) for n in nodes)
    plan = {'action': 'refuse', 'reason': '', 'host': host, 'primary': None, 'slot': None,
            'split_brain': None, 'override': None}
    if host not in by_name:
        plan['reason'] = 'rejoin_host=%s is not a cluster member.' % host
        return plan
    target = by_name[host]
    report = split_brain(nodes)
    if report:
        hv = _get(hostvars, host, {}) if hostvars is not None else {}
        plan.update(split_brain=report, primary=report['keep'],
                    slot=_get(hv, 'postgresql_slot_name') or _slot_name(host))
        mine = [e for e in report['primaries'] if e['name'] == host]
        if host == report['keep']:
            plan['reason'] = ('Split brain: %s is the primary to KEEP (%s). Rejoin the other one instead: '
                              'rejoin_host=%s.' % (host, report['reason'], ', '.join(report['discard'])))
            return plan
        if not mine:
            plan['reason'] = ('Split brain between %s: end it first (rejoin_host=%s with '
                              'rejoin_split_brain_confirm=true), then rejoin %s.'
                              % (', '.join(e['name'] for e in report['primaries']), report['discard'][0], host))
            return plan
        after = mine[0]['bytes_after_fork']
        words = ('%s bytes of WAL written after the fork at %s' % (after, mine[0]['fork_lsn'])
                 if after is not None else 'an unknown amount of WAL written after the fork')
        if not split_brain_confirm:
            plan['reason'] = ('Split brain: %s and %s both run as primary. Keep %s (%s). Rejoining %s fences it, '
                              'keeps its data directory aside (it holds %s, which the cluster will not have) and '
                              'rewinds it onto %s. Confirm with rejoin_split_brain_confirm=true.'
                              % (host, report['keep'], report['keep'], report['reason'], host, words,
                                 report['keep']))
            plan['override'] = 'rejoin_split_brain_confirm'
            return plan
        plan.update(action='rejoin', reason='End the split brain: make %s (%s) a replica of %s; its data directory '
                                            'is kept aside first.' % (host, words, report['keep']))
        return plan
    primaries = primaries_of(nodes)
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


def replica_state(local_id, upstream_id=None, marker_id=None, standby_signal=False, fenced=False, timeline=None):
    """What a replica-group host's data directory holds, decided from facts that can be proven.

    local_id: its system identifier ('' when there is no cluster); upstream_id: the primary's
    (None when unknown); marker_id: the postgresql role's initdb marker ('' when absent or
    retired); timeline: its control file's. Returns one of
      absent   - no cluster: clone
      new      - the untouched cluster the postgresql role created here: its identifier is the
                 marker's (and not the primary's, which must be known), timeline 1, no
                 standby.signal, not fenced. Only this is ever removed.
      replica  - a standby of this primary (same identifier, standby.signal): keep
      fenced   - a fence marker: a primary that was replaced; rejoin.yml, never site.yml
      diverged - the primary's identifier without standby.signal: a former primary (or one that
                 runs as a second primary); rejoin.yml, never site.yml
      foreign  - anything else (another cluster's data): only with pg_replica_reclone_allowed,
                 moved aside
    """
    local_id = str(local_id or '').strip()
    upstream_id = str(upstream_id).strip() if upstream_id not in (None, '') else None
    marker_id = str(marker_id or '').strip()
    if fenced:
        return 'fenced'
    if not local_id:
        return 'absent'
    if (marker_id and local_id == marker_id and upstream_id is not None and local_id != upstream_id
            and not standby_signal and str(timeline) == '1'):
        return 'new'
    if upstream_id is None or local_id == upstream_id:
        if standby_signal:
            return 'replica'
        if upstream_id is not None:
            return 'diverged'
    return 'foreign'


# --------------------------------------------------------------------------
# status.yml: one document, shown as a table, as JSON, or as a picture
# --------------------------------------------------------------------------

def vip_holders(names, hostvars, vip, registered=None):
    """Who holds a VIP among hosts whose addresses were gathered (ansible_facts'
    all_ipv4_addresses, e.g. by ansible.builtin.setup's network subset): {vip (no prefix
    length), hosts, holders, unreachable, unknown (no addresses gathered)}; None when vip is
    empty or there are no hosts. registered: the name the gathering task registered (a host
    whose result is unreachable is listed as such)."""
    names = list(names or [])
    if not vip or not names:
        return None
    address = str(vip).split('/', maxsplit=1)[0].strip()
    report = {'vip': address, 'hosts': names, 'holders': [], 'unreachable': [], 'unknown': []}
    for name in names:
        hv = _get(hostvars, name, {})
        result = _get(hv, registered) if registered else None
        held = _get(_get(hv, 'ansible_facts', {}), 'all_ipv4_addresses')
        if _get(result, 'unreachable'):
            report['unreachable'].append(name)
        elif held is None:
            report['unknown'].append(name)
        elif address in held:
            report['holders'].append(name)
    return report


def vip_holder_line(report, label='pgpool VIP'):
    """'pgpool VIP 10.0.0.50: pool1' (with who could not be asked); [] without a report."""
    if not report:
        return []
    holders = report['holders']
    if not holders:
        who = 'NOBODY holds it'
    elif len(holders) > 1:
        who = '%s (HELD BY %d HOSTS AT ONCE)' % (', '.join(holders), len(holders))
    else:
        who = holders[0]
    notes = (['unreachable: ' + ', '.join(report['unreachable'])] if report['unreachable'] else []) + \
        (['not asked: ' + ', '.join(report['unknown'])] if report['unknown'] else [])
    return ['%s %s: %s%s' % (label, report['vip'], who, ' (%s)' % '; '.join(notes) if notes else '')]


def status_document(nodes, old_primary=None, sync_names=None, vips=None, pgpool=None, backup=None,
                    subscribers=None, subscriptions=None, backups=None):
    """Everything status.yml shows, as data: {state (HEALTHY, DEGRADED, PRIMARY DOWN or SPLIT
    BRAIN), verdict (cluster_verdict's line), primary (the reference primary's name or null),
    nodes (status_rows: every column of the table), split_brain (the report or null), vips
    ({writer, reader} addresses), pgpool (vip_holders of the pgpool VIP, or null), backup and
    subscribers (the inventory's hosts of those groups), subscriptions (the logical report's
    lines), backups (filter backup_status: the newest backup of each type, its age, the WAL
    archive's lag; null without a backup host), writes_blocked (the primary waits for more synchronous
    standbys than are connected: {primary, required, connected, waiting_for}, or null), sync_relaxed
    (sync_relax.yml's marker: {primary, since, lsn, seen_on}, or null), crash_loops and restarting (the
    nodes in a crash loop, and those systemd is starting again)}. status_lines, status_dot and to_json all read this one document.

    nodes: survey_nodes; old_primary and sync_names: as promote.yml passes them to
    failover_plan (cluster_verdict names the replica it would promote)."""
    verdict = cluster_verdict(nodes, old_primary, sync_names)
    reference = reference_primary(nodes)
    return {
        'state': verdict.split(':', 1)[0],
        'verdict': verdict,
        'primary': reference['name'] if reference else None,
        'nodes': status_rows(nodes),
        'split_brain': split_brain(nodes),
        'vips': _vip_addresses(vips),
        'pgpool': pgpool or None,
        'backup': list(backup or []),
        'subscribers': list(subscribers or []),
        'subscriptions': list(subscriptions or []),
        'backups': backups or None,
        'writes_blocked': writes_blocked(nodes),
        'sync_relaxed': sync_relaxed(nodes),
        'crash_loops': [n['name'] for n in nodes if n.get('crash_loop') is not None],
        'restarting': [n['name'] for n in nodes if restarting(n)],
    }


def status_lines(document):
    """The screen of status.yml from status_document: the table, the pgpool VIP's holder, the
    verdict, the split-brain report and the subscriptions."""
    return (rows_table(document['nodes']) + vip_holder_line(document.get('pgpool'))
            + backup_status_line(document.get('backups'))
            + ['', 'VERDICT: ' + document['verdict']]
            + split_brain_lines(document.get('split_brain'))
            + ['subscription  : ' + line for line in document.get('subscriptions') or []])


def _dot_escape(text):
    """Text inside a DOT double-quoted string: a backslash or a quote cannot end the string
    nor start an escape sequence (\\N, \\G ...); a line break becomes a blank."""
    return str(text).replace('\\', '\\\\').replace('"', '\\"').replace('\r', ' ').replace('\n', ' ')


def _dot_id(kind, name):
    return '"%s:%s"' % (kind, _dot_escape(name))


def _dot_label(*lines):
    return '"%s"' % '\\n'.join(_dot_escape(line) for line in lines if line not in (None, ''))


def _dot_attrs(**attrs):
    return '[%s]' % ', '.join('%s=%s' % (k, v) for k, v in sorted(attrs.items()))


_GREY = dict(style='"rounded,filled"', fillcolor='"#e6e6e6"', color='"#9a9a9a"', fontcolor='"#7a7a7a"')


def status_dot(document):
    """The cluster as it is, in graphviz's DOT language, from status_document: each member
    labelled with its name, role and timeline (FENCED in red; unreachable or down greyed), an
    arrow from each upstream to its replica labelled with the lag (and the sync state), the
    VIPs as notes attached to their holders (grey, 'no holder', when nobody holds one), the
    pgpool hosts, the backup hosts and the subscribers. Every name is quoted and escaped."""
    out = ['digraph pgha {',
           '  graph %s;' % _dot_attrs(rankdir='TB', labelloc='t', fontname='Helvetica',
                                      label=_dot_label('pgha cluster', document['verdict'])),
           '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica];',
           '  edge [fontname=Helvetica, fontsize=10];']
    rows = document['nodes']
    names = set(r['name'] for r in rows)
    for r in rows:
        role = r['role'].upper() if r['role'] in ('primary', 'standby') else r['role'] if r['reachable'] else None
        timeline = 'timeline %s' % r['timeline'] if r['timeline'] is not None else None
        state = None if r['reachable'] else 'unreachable'
        attrs = {}
        if not r['reachable'] or r['role'] not in ('primary', 'standby'):
            attrs.update(_GREY)
        elif counts_as_primary(r['role'], r['fenced']):
            attrs.update(fillcolor='"#d8f0d8"', penwidth='2')
        else:
            attrs.update(fillcolor='"#dde6f6"')
        if r['fenced']:
            attrs.update(color='"#c00000"', fontcolor='"#c00000"', penwidth='2')
        attrs['label'] = _dot_label(r['name'], role, timeline, 'FENCED' if r['fenced'] else None, state)
        out.append('  %s %s;' % (_dot_id('member', r['name']), _dot_attrs(**attrs)))
    for r in rows:
        source = None
        if r['upstream_node'] in names:
            source = _dot_id('member', r['upstream_node'])
        elif r['upstream']:
            source = _dot_id('upstream', r['upstream'])
            attrs = dict(_GREY, label=_dot_label(r['upstream'], 'not a member'))
            out.append('  %s %s;' % (source, _dot_attrs(**attrs)))
        if source is None:
            continue
        lag = human_bytes(r['lag_bytes'])
        seconds = _seconds(r['lag_seconds'])
        label = _dot_label('lag %s%s' % (lag, (' / %ss' % seconds) if seconds else '') if lag else None,
                           r['sync_state'], r['receiver'] if r['receiver'] not in (None, 'streaming') else None)
        attrs = dict(label=label)
        if r['receiver'] != 'streaming':
            attrs.update(style='dashed', color='"#9a9a9a"')
        out.append('  %s -> %s %s;' % (source, _dot_id('member', r['name']), _dot_attrs(**attrs)))
    for kind, address in sorted((document.get('vips') or {}).items()):
        holders = [r['name'] for r in rows if kind in r['vips']]
        attrs = dict(shape='note', label=_dot_label('%s VIP' % kind, address, None if holders else 'no holder'),
                     fillcolor='"#fff6d5"')
        if not holders:
            attrs.update(_GREY, shape='note')
        out.append('  %s %s;' % (_dot_id('vip', kind), _dot_attrs(**attrs)))
        for name in holders:
            out.append('  %s -> %s [style=dotted, arrowhead=none];' % (_dot_id('vip', kind), _dot_id('member', name)))
    pgpool = document.get('pgpool')
    if pgpool:
        for name in pgpool['hosts']:
            attrs = dict(label=_dot_label(name, 'pgpool', 'unreachable' if name in pgpool['unreachable'] else None),
                         fillcolor='"#f3e6f7"')
            if name in pgpool['unreachable']:
                attrs.update(_GREY)
            out.append('  %s %s;' % (_dot_id('pgpool', name), _dot_attrs(**attrs)))
        attrs = dict(shape='note', fillcolor='"#fff6d5"',
                     label=_dot_label('pgpool VIP', pgpool['vip'], None if pgpool['holders'] else 'no holder'))
        if not pgpool['holders']:
            attrs.update(_GREY, shape='note')
        out.append('  %s %s;' % (_dot_id('vip', 'pgpool'), _dot_attrs(**attrs)))
        for name in pgpool['holders']:
            out.append('  %s -> %s [style=dotted, arrowhead=none];' % (_dot_id('vip', 'pgpool'),
                                                                       _dot_id('pgpool', name)))
    primary = _dot_id('member', document['primary']) if document.get('primary') else None
    others = (('backup', document.get('backup'), 'cylinder', 'backups', 'backups'),
              ('subscriber', document.get('subscribers'), 'box', 'subscriber', 'logical'))
    for kind, hosts, shape, what, edge in others:
        for name in hosts or []:
            attrs = dict(shape=shape, fillcolor='"#eeeeee"', label=_dot_label(name, what))
            out.append('  %s %s;' % (_dot_id(kind, name), _dot_attrs(**attrs)))
            if primary:
                out.append('  %s -> %s %s;' % (primary, _dot_id(kind, name),
                                               _dot_attrs(style='dashed', label=_dot_label(edge))))
    out.append('}')
    return '\n'.join(out) + '\n'


def _slot_name(host):
    from ansible_collections.pgha.cluster.plugins.filter.slot_name import slot_name
    return slot_name(host)


def mark_durations(marks):
    """'survey 3.1, decide 0.2, ...': the seconds from each runbook mark to the next.

    marks: [[name, unix time], ...] in the order the steps began (roles/runbook/tasks/mark.yml);
    the last mark only closes the one before it."""
    if not isinstance(marks, (list, tuple)):
        raise AnsibleFilterError('mark_durations expects a list of [name, time] pairs, got %r' % (marks,))
    parsed = []
    for mark in marks:
        try:
            name, at = mark
            parsed.append((str(name), float(at)))
        except (TypeError, ValueError):
            raise AnsibleFilterError('mark_durations: %r is not a [name, time] pair' % (mark,))
    parts = ['%s %.1f' % (name, max(nxt - at, 0.0)) for (name, at), (_n, nxt) in zip(parsed, parsed[1:])]
    return ', '.join(parts) or 'not measured'


class FilterModule(object):
    def filters(self):
        return {
            'survey_nodes': survey_nodes,
            'node_table': node_table,
            'failover_plan': failover_plan,
            'switchover_plan': switchover_plan,
            'sync_relax_plan': sync_relax_plan,
            'rejoin_plan': rejoin_plan,
            'replica_state': replica_state,
            'split_brain': split_brain,
            'split_brain_lines': split_brain_lines,
            'cluster_verdict': cluster_verdict,
            'status_document': status_document,
            'status_lines': status_lines,
            'status_dot': status_dot,
            'vip_holders': vip_holders,
            'sync_hosts': sync_hosts,
            'mark_durations': mark_durations,
        }

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the backup role and the backup runbooks.

backup_cron_jobs / backup_timers: the pg_cron jobs and systemd timers a
backup_schedule asks for. backup_table: `pgbackrest info --output=json` as
aligned text lines. restore_plan: what restore.yml does (which node, which
backup set, which pgBackRest arguments), or why it refuses, in words an
operator reads at 3 a.m. Pure functions: unit-tested in
tests/unit/plugins/filter/test_backup.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import re
import time

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.cron import cron_to_oncalendar
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import format_table

KINDS = ('full', 'diff', 'incr', 'dump')
RESTORE_TYPES = ('latest', 'time', 'lsn', 'name', 'xid', 'immediate')
_TIME = re.compile(r'^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$',
                   re.IGNORECASE)
_LSN = re.compile(r'^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$')


def _kinds_on(schedule, logical_databases):
    schedule = schedule or {}
    return [k for k in KINDS if schedule.get(k) and (k != 'dump' or logical_databases)]


def backup_cron_jobs(schedule, wrapper, database, role, logical_databases=None, history_days=0):
    """The pg_cron jobs for a backup_schedule: [{name, schedule, command, database, username}]."""
    jobs = []
    for kind in _kinds_on(schedule, logical_databases):
        jobs.append({
            'name': 'pgha-dump' if kind == 'dump' else 'pgha-backup-' + kind,
            'schedule': schedule[kind],
            'command': "COPY (SELECT 1) TO PROGRAM '%s %s'" % (wrapper, kind),
            'database': database,
            'username': role,
        })
    if int(history_days or 0) > 0:
        jobs.append({
            'name': 'pgha-cron-history-purge',
            'schedule': '17 3 * * *',
            'command': "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '%d days'"
                       % int(history_days),
            'database': database,
            'username': 'postgres',
        })
    return jobs


def backup_timers(schedule, logical_databases=None):
    """{kind: OnCalendar} for the systemd timers a backup_schedule asks for."""
    return dict((k, cron_to_oncalendar(schedule[k])) for k in _kinds_on(schedule, logical_databases))


def _ts(epoch):
    if epoch is None:
        return '-'
    return time.strftime('%Y-%m-%d %H:%M:%S+00', time.gmtime(int(epoch)))


def _size(n):
    if n is None:
        return '-'
    n = float(n)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if n < 1024 or unit == 'TiB':
            return ('%d %s' % (n, unit)) if unit == 'B' else ('%.1f %s' % (n, unit))
        n /= 1024.0


def backups_of(info):
    """The backups of the first stanza of `pgbackrest info --output=json`, oldest first, normalized."""
    if not isinstance(info, list) or not info:
        return []
    out = []
    for b in info[0].get('backup') or []:
        ts = b.get('timestamp') or {}
        lsn = b.get('lsn') or {}
        arch = b.get('archive') or {}
        size = (b.get('info') or {})
        out.append({
            'label': b.get('label'),
            'type': b.get('type'),
            'start': ts.get('start'),
            'stop': ts.get('stop'),
            'lsn_start': lsn.get('start'),
            'lsn_stop': lsn.get('stop'),
            'wal_start': arch.get('start'),
            'wal_stop': arch.get('stop'),
            'size': size.get('size'),
            'repo_size': (size.get('repository') or {}).get('delta'),
            'error': b.get('error', False),
        })
    return out


def backup_table(info):
    """Aligned lines: one per backup (label, type, started, finished, LSN range, size, stored)."""
    rows = []
    for b in backups_of(info):
        rows.append([b['label'] or '-', b['type'] or '-', _ts(b['start']), _ts(b['stop']),
                     '%s..%s' % (b['lsn_start'] or '?', b['lsn_stop'] or '?'), _size(b['size']),
                     _size(b['repo_size'])])
    if not rows:
        return ['(no backup in the repository)']
    return format_table(['backup', 'type', 'started', 'finished', 'lsn', 'size', 'stored'], rows).splitlines()


def parse_time(text):
    """'2026-01-02 03:04:05[.ffffff][+HH[:MM]|Z|UTC]' -> (normalized text, epoch seconds, zone given?)."""
    m = _TIME.match(str(text).strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        epoch = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
        time.strptime('%s-%s-%s %s:%s:%s' % (y, mo, d, h, mi, s), '%Y-%m-%d %H:%M:%S')
    except ValueError:
        return None
    offset = 0
    given = zone is not None
    if zone and zone.upper() not in ('Z', 'UTC'):
        sign = -1 if zone[0] == '-' else 1
        digits = zone[1:].replace(':', '')
        offset = sign * (int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0))
    zone_text = '+00' if not zone or zone.upper() in ('Z', 'UTC') else zone
    normalized = '%s-%s-%s %s:%s:%s%s%s' % (y, mo, d, h, mi, s, frac or '', zone_text)
    return normalized, epoch - offset + (float(frac) if frac else 0.0), given


def _lsn_int(text):
    hi, lo = text.split('/')
    return (int(hi, 16) << 32) + int(lo, 16)


def restore_plan(nodes, info, restore_type='latest', target='', backup_set='', host='', exclusive=False,
                 inventory_primary='', stanza='main', timeline=''):
    """Decide what restore.yml does.

    nodes: the list from survey_nodes (the cluster members); info: the parsed
    `pgbackrest info --output=json` of the backup host (None when it did not
    answer). Returns {action: restore|refuse, reason, override, host,
    replicas, unreachable, primary_running, type, target, target_words,
    backup, args}. timeline: follow this timeline (default: pgBackRest's and
    PostgreSQL's, the latest one in the archive).
    """
    if not isinstance(nodes, list) or not nodes:
        raise AnsibleFilterError('restore_plan expects the list from survey_nodes')
    plan = {'action': 'refuse', 'reason': '', 'override': None, 'host': None, 'replicas': [], 'unreachable': [],
            'primary_running': None, 'type': restore_type, 'target': target, 'target_words': '', 'backup': None,
            'args': []}

    def refuse(reason, override=None):
        plan.update(reason=reason, override=override)
        return plan

    restore_type = (restore_type or 'latest').strip()
    target = ('%s' % (target if target is not None else '')).strip()
    if restore_type == 'default':
        restore_type = 'latest'
    plan['type'] = restore_type
    if restore_type not in RESTORE_TYPES:
        return refuse('restore_type=%s is not one of %s.' % (restore_type, ', '.join(RESTORE_TYPES)), 'restore_type')
    needs_target = restore_type in ('time', 'lsn', 'name', 'xid')
    if needs_target and not target:
        return refuse('restore_type=%s needs restore_target (%s).' % (restore_type, {
            'time': "a time, e.g. -e \"restore_target='2026-11-25 10:00:00+00'\"",
            'lsn': 'a WAL position, e.g. -e restore_target=0/5000028',
            'name': 'the name given to pg_create_restore_point()',
            'xid': 'a transaction id, e.g. -e restore_target=7421'}[restore_type]), 'restore_target')
    timeline = ('%s' % (timeline if timeline is not None else '')).strip()
    if timeline and not (timeline.isdigit() or timeline in ('current', 'latest')):
        return refuse('restore_timeline=%s must be a timeline number, current or latest.' % timeline,
                      'restore_timeline')
    if not needs_target and target:
        return refuse('restore_target=%s is set but restore_type=%s ignores it: say restore_type=time, lsn, name '
                      'or xid, or drop restore_target.' % (target, restore_type), 'restore_type')

    target_epoch = target_lsn = None
    if restore_type == 'time':
        parsed = parse_time(target)
        if not parsed:
            return refuse("restore_target='%s' is not a time. Use 'YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]', "
                          "e.g. '2026-11-25 10:00:00+00' (UTC when no zone is given)." % target, 'restore_target')
        target, target_epoch, zone_given = parsed
        plan['target_words'] = 'to %s (%s%s)' % (target, 'exclusive: stops just before it' if exclusive else 'inclusive',
                                                 '' if zone_given else '; no zone given, read as UTC')
    elif restore_type == 'lsn':
        if not _LSN.match(target):
            return refuse("restore_target='%s' is not a WAL position (LSN) like 0/5000028." % target, 'restore_target')
        target_lsn = _lsn_int(target)
        plan['target_words'] = 'to WAL position %s (%s)' % (target, 'exclusive' if exclusive else 'inclusive')
    elif restore_type == 'xid':
        if not target.isdigit():
            return refuse("restore_target='%s' is not a transaction id (a number)." % target, 'restore_target')
        plan['target_words'] = 'to transaction %s (%s)' % (target, 'exclusive' if exclusive else 'inclusive')
    elif restore_type == 'name':
        if len(target) > 63:
            return refuse("restore_target='%s' is longer than a restore point name can be (63)." % target,
                          'restore_target')
        plan['target_words'] = "to the restore point '%s'" % target
    elif restore_type == 'immediate':
        plan['target_words'] = 'to the end of the backup only (immediate: the first consistent point)'
    else:
        plan['target_words'] = 'to the end of the archived WAL (latest)'
    plan['target'] = target

    # The repository.
    if info is None:
        return refuse('The backup host did not answer `pgbackrest info`: nothing can be restored without it.')
    if not isinstance(info, list) or not info:
        return refuse('The backup host knows no stanza %s.' % stanza)
    backups = [b for b in backups_of(info) if not b['error']]
    if not backups:
        return refuse('The repository of stanza %s holds no backup (%s). Take one first: backup.yml.' % (
            stanza, ((info[0].get('status') or {}).get('message') or 'no status')))

    chosen = None
    if backup_set:
        chosen = next((b for b in backups if b['label'] == backup_set), None)
        if chosen is None:
            return refuse('restore_set=%s is not a backup of stanza %s. Available: %s.' % (
                backup_set, stanza, ', '.join(b['label'] for b in backups)), 'restore_set')
        if target_epoch is not None and (chosen['stop'] or 0) > target_epoch:
            return refuse('Backup %s finished at %s, after the target %s: it cannot be recovered to that point. '
                          'Choose an older restore_set, or leave it empty.' % (
                              backup_set, _ts(chosen['stop']), target), 'restore_set')
    elif target_epoch is not None:
        before = [b for b in backups if b['stop'] is not None and b['stop'] <= target_epoch]
        if not before:
            return refuse('No backup finished before %s: the oldest, %s, finished at %s. Choose a later '
                          'restore_target.' % (target, backups[0]['label'], _ts(backups[0]['stop'])),
                          'restore_target')
        chosen = before[-1]
    elif target_lsn is not None:
        before = [b for b in backups if b['lsn_stop'] and _lsn_int(b['lsn_stop']) <= target_lsn]
        if not before:
            return refuse('No backup ends before WAL position %s: the oldest, %s, ends at %s. Choose a later '
                          'restore_target.' % (target, backups[0]['label'], backups[0]['lsn_stop']),
                          'restore_target')
        chosen = before[-1]
    else:
        chosen = backups[-1]
    plan['backup'] = chosen

    # The cluster.
    by_name = dict((n['name'], n) for n in nodes)
    primaries = [n for n in nodes if n['role'] == 'primary' and not n['fenced']]
    if len(primaries) > 1:
        return refuse('%d nodes run as primary (%s): split brain. Decide by hand which one is the primary first; '
                      'nothing was changed.' % (len(primaries), ', '.join(n['name'] for n in primaries)))
    plan['primary_running'] = primaries[0]['name'] if primaries else None
    if host:
        if host not in by_name:
            return refuse('restore_host=%s is not a cluster member (%s).' % (host, ', '.join(sorted(by_name))),
                          'restore_host')
        chosen_host = host
    elif primaries:
        chosen_host = primaries[0]['name']
    else:
        chosen_host = inventory_primary if inventory_primary in by_name else None
        if not chosen_host:
            return refuse('No node runs as a primary and the inventory names none: say which node to restore '
                          'with restore_host=NAME.', 'restore_host')
    node = by_name[chosen_host]
    if not node['reachable']:
        return refuse('%s, the node to restore, cannot be reached (%s). Bring it back or choose another with '
                      'restore_host=NAME.' % (chosen_host, node.get('error') or 'unreachable'), 'restore_host')
    if node['fenced']:
        return refuse('%s is fenced: a replica was promoted in its place. Restore the current primary instead '
                      '(restore_host=NAME), or rejoin %s first.' % (chosen_host, chosen_host), 'restore_host')
    plan['host'] = chosen_host
    plan['replicas'] = sorted(n['name'] for n in nodes if n['name'] != chosen_host and n['reachable'])
    plan['unreachable'] = sorted(n['name'] for n in nodes if n['name'] != chosen_host and not n['reachable'])

    args = ['--stanza=%s' % stanza, '--delta', '--set=%s' % chosen['label']]
    if restore_type == 'latest':
        args.append('--type=default')
    else:
        args.append('--type=%s' % restore_type)
        if needs_target:
            args.append('--target=%s' % target)
        args.append('--target-action=promote')
        if exclusive and restore_type in ('time', 'lsn', 'xid'):
            args.append('--target-exclusive')
    if timeline and restore_type != 'immediate':
        args.append('--target-timeline=%s' % timeline)
    plan['args'] = args
    plan.update(action='restore', reason='restore %s from backup %s (%s, finished %s) %s; every commit after that '
                                         'is discarded on every node.' % (
                                             chosen_host, chosen['label'], chosen['type'], _ts(chosen['stop']),
                                             plan['target_words']))
    return plan


class FilterModule(object):
    def filters(self):
        return {
            'backup_cron_jobs': backup_cron_jobs,
            'backup_timers': backup_timers,
            'backup_table': backup_table,
            'restore_plan': restore_plan,
        }

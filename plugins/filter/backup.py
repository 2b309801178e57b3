# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the backup role and the backup runbooks.

backup_cron_jobs / backup_timers: the pg_cron jobs and systemd timers a
backup_schedule asks for. backup_table: `pgbackrest info --output=json` as
aligned text lines. restore_plan: what restore.yml does (which node, which
backup set, which pgBackRest arguments), or why it refuses, in words an
operator reads at 3 a.m.

The preflight checks of the values the backup role writes into files,
scripts, SQL and certificates (each returns a list of messages that name the
variable and the fix; empty when all is well): backup_path_errors (the
directories, and how they may overlap), backup_name_errors (database and role
names), backup_table_errors (backup_drill_tables), backup_option_errors
(backup_extra_options: names checked, values never shown, they may be
secrets), backup_address_errors (backup_host_address), backup_csr_errors (what
a host's certificate signing request claims), backup_schedule_errors (every
schedule a cron expression both schedulers run, its keys known). backup_conf_value: an option
value as pgbackrest.conf wants it.

Pure functions: unit-tested in tests/unit/plugins/filter/test_backup.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import ipaddress
import json
import posixpath
import re
import time
import unicodedata

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.cron import CronError, cron_error, cron_max_gap, cron_to_oncalendar
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import format_table

KINDS = ('full', 'diff', 'incr', 'dump')
RESTORE_TYPES = ('latest', 'time', 'lsn', 'name', 'xid', 'immediate')
# Every pattern ends with \Z: '$' would also accept a trailing newline.
_TIME = re.compile(r'(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})? ?(Z|UTC|[+-]\d{2}(?::?\d{2})?)?\Z',
                   re.IGNORECASE)
_LSN = re.compile(r'[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}\Z')
_DIGITS = re.compile(r'[0-9]+\Z')
# A restore point name pgBackRest can write into postgresql.auto.conf between single quotes.
_RESTORE_POINT_FORM = ("at most 63 bytes, no quote (' or \"), no backslash, no line break or other control "
                       "character, e.g. before_migration_42")

# Names the role writes into SQL, shell lines and pgbackrest.conf.
_DB_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}\Z')
_DB_NAME_FORM = "letters, digits, '_', '.' and '-', at most 63, not starting with '.' or '-'"
_ROLE_NAME = re.compile(r'[a-z_][a-z0-9_]{0,62}\Z')
_ROLE_NAME_FORM = "a lower-case SQL identifier: a-z, digits and '_', at most 63, not starting with a digit"
_IDENT = r'[A-Za-z_][A-Za-z0-9_]{0,62}'
_TABLE = re.compile(r'%s(?:\.%s)?\Z' % (_IDENT, _IDENT))
# Directories: absolute, normalised, no character a shell or a config file would read twice.
_PATH = re.compile(r'(?:/[A-Za-z0-9_.@+-]+)+\Z')
_OPTION = re.compile(r'[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z')

# Directories none of the backup role's paths may be: it creates its paths, chowns them to postgres, chmods
# them, and the restore drill deletes <backup_drill_path>/<stanza>.
SYSTEM_DIRS = (
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/lost+found', '/media',
    '/mnt', '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/include',
    '/usr/lib', '/usr/lib64', '/usr/libexec', '/usr/local', '/usr/local/bin', '/usr/local/lib', '/usr/local/sbin',
    '/usr/local/share', '/usr/sbin', '/usr/share', '/usr/src', '/var', '/var/backups', '/var/cache', '/var/lib',
    '/var/local', '/var/lock', '/var/log', '/var/mail', '/var/opt', '/var/run', '/var/spool', '/var/tmp',
    '/etc/postgresql', '/etc/postgresql-common', '/etc/ssh', '/etc/ssl', '/etc/systemd', '/usr/lib/postgresql',
    '/var/lib/postgresql', '/var/log/postgresql', '/var/run/postgresql',
)
# Kernel and runtime file systems: nothing of the role's belongs inside them.
VIRTUAL_TREES = ('/dev', '/proc', '/run', '/sys', '/var/run')
PATH_VARIABLES = ('backup_repo_path', 'backup_spool_path', 'backup_logical_path', 'backup_drill_path')
PATH_DEFAULTS = {'backup_repo_path': '/var/lib/pgbackrest', 'backup_spool_path': '/var/spool/pgbackrest',
                 'backup_logical_path': '/var/lib/pgbackrest/dump', 'backup_drill_path': '/var/lib/pgbackrest-drill'}
# Options the role itself renders into pgbackrest.conf (or that only make sense on the command line):
# backup_extra_options may not set them (pgBackRest refuses an option set twice).
RESERVED_OPTIONS = {
    'archive-async': None, 'archive-push-queue-max': 'backup_archive_push_queue_max',
    'archive-timeout': 'backup_archive_timeout', 'backup-standby': None, 'compress-level': 'backup_compress_level',
    'compress-type': 'backup_compress_type', 'config': None, 'config-include-path': None, 'config-path': None,
    'io-timeout': 'backup_io_timeout', 'log-level-console': None, 'log-level-file': None, 'log-path': None,
    'process-max': 'backup_process_max', 'repo1-host': 'backup_host_address', 'repo1-host-ca-file': None,
    'repo1-host-cert-file': None, 'repo1-host-key-file': None, 'repo1-host-port': 'backup_tls_port',
    'repo1-host-type': None, 'repo1-path': 'backup_repo_path', 'repo1-retention-full': 'backup_retention_full',
    'repo1-retention-full-type': None, 'spool-path': 'backup_spool_path', 'stanza': 'backup_stanza',
    'start-fast': None, 'tls-server-address': None, 'tls-server-auth': None, 'tls-server-ca-file': None,
    'tls-server-cert-file': None, 'tls-server-key-file': None, 'tls-server-port': 'backup_tls_port',
}
_RESERVED_PATTERNS = ((re.compile(r'pg[0-9]+-'), 'the role writes the pgN-* options of every member'),)


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


def _age(seconds):
    """A short age for the status screen: 45s, 12m, 3h, 2d 5h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return '%ds' % seconds
    if seconds < 3600:
        return '%dm' % (seconds // 60)
    if seconds < 86400:
        return '%dh %dm' % (seconds // 3600, seconds // 60 % 60)
    return '%dd %dh' % (seconds // 86400, seconds // 3600 % 24)


def _wal_index(name):
    """(timeline, segment number) of a 24-hex WAL file name (16 MB segments), or None."""
    if not isinstance(name, str) or not re.match(r'^[0-9A-F]{24}$', name):
        return None
    return int(name[:8], 16), int(name[8:16], 16) * 0x100 + int(name[16:], 16)


def backup_status(info, now, current_walfile=None, host=None):
    """What status.yml shows of the backups, from `pgbackrest info --output=json` (or
    pgha-native's, the same shape) read on the backup host:
    {host, reachable, status (the stanza's message), newest: {full|diff|incr: {label, stop,
    age_seconds, age} or None}, archived_to (the newest WAL file in the archive), waiting (WAL
    segments written before the one being written that are not archived yet, or None when
    unknown)}. info: None when the repository did not answer; now: epoch seconds;
    current_walfile: the WAL file the primary writes now (filter lsn_to_walfile)."""
    report = {'host': host, 'reachable': info is not None, 'status': None,
              'newest': dict((k, None) for k in ('full', 'diff', 'incr')), 'archived_to': None, 'waiting': None}
    if not isinstance(info, list) or not info:
        report['status'] = 'the repository did not answer' if info is None else 'no stanza'
        return report
    stanza = info[0] if isinstance(info[0], dict) else {}
    report['status'] = (stanza.get('status') or {}).get('message')
    for b in backups_of(info):
        if b['type'] in report['newest'] and b['stop'] and not b['error']:
            age = max(0, int(now) - int(b['stop']))
            report['newest'][b['type']] = {'label': b['label'], 'stop': b['stop'], 'age_seconds': age, 'age': _age(age)}
    maxes = [a.get('max') for a in stanza.get('archive') or [] if isinstance(a, dict) and _wal_index(a.get('max'))]
    if maxes:
        report['archived_to'] = max(maxes, key=lambda n: (_wal_index(n)[1], _wal_index(n)[0]))
        current = _wal_index(current_walfile)
        if current:
            report['waiting'] = max(0, current[1] - _wal_index(report['archived_to'])[1] - 1)
    return report


def backup_status_line(report):
    """status.yml's line about the backups ([] without a backup host)."""
    if not report:
        return []
    if not report['reachable']:
        return ['backups       : %s: the repository did not answer' % report['host']]
    kinds = '; '.join('%s %s' % (k, ('%s (%s ago)' % (v['label'], v['age'])) if v else 'none')
                      for k, v in sorted(report['newest'].items()))
    wal = ('WAL archived up to %s' % report['archived_to']) if report['archived_to'] else 'no WAL archived'
    if report['waiting'] is not None:
        wal += ', %d segment(s) waiting' % report['waiting']
    return ['backups       : %s (%s): %s; %s' % (report['host'], report['status'] or '?', kinds, wal)]


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
    backup, args, recovery}. timeline: follow this timeline (default: pgBackRest's and
    PostgreSQL's, the latest one in the archive). args are pgbackrest restore's; recovery
    are the same settings for PostgreSQL itself (the native engine writes them).
    """
    if not isinstance(nodes, list) or not nodes:
        raise AnsibleFilterError('restore_plan expects the list from survey_nodes')
    plan = {'action': 'refuse', 'reason': '', 'override': None, 'host': None, 'replicas': [], 'unreachable': [],
            'primary_running': None, 'type': restore_type, 'target': target, 'target_words': '', 'backup': None,
            'args': [], 'recovery': {}}

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
    if timeline and not ((_DIGITS.match(timeline) and 1 <= int(timeline) < 2 ** 32) or timeline in ('current', 'latest')):
        return refuse('restore_timeline=%s must be a timeline number, current or latest.' % timeline,
                      'restore_timeline')
    if not needs_target and target:
        return refuse('restore_target=%s is set but restore_type=%s ignores it: say restore_type=time, lsn, name '
                      'or xid, or drop restore_target.' % (target, restore_type), 'restore_type')

    target_epoch = target_lsn = None
    if restore_type == 'time':
        parsed = parse_time(target)
        if not parsed:
            return refuse("restore_target=%s is not a time. Use 'YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]', "
                          "e.g. '2026-11-25 10:00:00+00' (UTC when no zone is given)." % _show(target),
                          'restore_target')
        target, target_epoch, zone_given = parsed
        plan['target_words'] = 'to %s (%s%s)' % (target, 'exclusive: stops just before it' if exclusive else 'inclusive',
                                                 '' if zone_given else '; no zone given, read as UTC')
    elif restore_type == 'lsn':
        if not _LSN.match(target):
            return refuse('restore_target=%s is not a WAL position (LSN) like 0/5000028.' % _show(target),
                          'restore_target')
        target_lsn = _lsn_int(target)
        plan['target_words'] = 'to WAL position %s (%s)' % (target, 'exclusive' if exclusive else 'inclusive')
    elif restore_type == 'xid':
        # ASCII digits only: str.isdigit() also takes other scripts' digits, which PostgreSQL refuses
        # (after every node was stopped).
        if not _DIGITS.match(target) or int(target) >= 2 ** 64:
            return refuse('restore_target=%s is not a transaction id: a number made of the digits 0-9, e.g. 7421.'
                          % _show(target), 'restore_target')
        plan['target_words'] = 'to transaction %s (%s)' % (target, 'exclusive' if exclusive else 'inclusive')
    elif restore_type == 'name':
        # pgBackRest writes recovery_target_name = '<name>' into postgresql.auto.conf as it is: a quote,
        # a backslash or a line break there stops PostgreSQL from starting, after every node was stopped.
        if len(target.encode('utf-8')) > 63:
            return refuse('restore_target=%s is longer than a restore point name can be (63 bytes).'
                          % _show(target), 'restore_target')
        if not _text_ok(target) or any(c in target for c in '\'"\\'):
            return refuse('restore_target=%s cannot be given to pgBackRest as a restore point name: it holds a '
                          'quote, a backslash, a line break or another control character. Use the name given to '
                          'pg_create_restore_point(): %s.' % (_show(target), _RESTORE_POINT_FORM), 'restore_target')
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
    recovery = {}
    if restore_type == 'immediate':
        recovery = {'recovery_target': 'immediate', 'recovery_target_action': 'promote'}
    elif needs_target:
        recovery = {'recovery_target_%s' % restore_type: target, 'recovery_target_action': 'promote'}
        if exclusive and restore_type in ('time', 'lsn', 'xid'):
            recovery['recovery_target_inclusive'] = 'off'
    if restore_type != 'immediate':
        recovery['recovery_target_timeline'] = timeline or 'latest'
    plan['recovery'] = recovery
    plan.update(action='restore', reason='restore %s from backup %s (%s, finished %s) %s; every commit after that '
                                         'is discarded on every node.' % (
                                             chosen_host, chosen['label'], chosen['type'], _ts(chosen['stop']),
                                             plan['target_words']))
    return plan


# --------------------------------------------------------------------------
# Preflight checks of what the backup role writes into files, scripts and SQL
# --------------------------------------------------------------------------

def _show(value):
    """A value as text in a message, with line breaks and control characters visible."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _inside(path, parent):
    """True when path is parent or lies below it (by components, not by string prefix)."""
    if parent == '/':
        return True
    return path == parent or path.startswith(parent + '/')


def _path_error(name, value):
    fix = 'Fix: an absolute directory of its own, e.g. %s.' % PATH_DEFAULTS.get(name, '/var/lib/pgbackrest')
    if not isinstance(value, str) or not value:
        return '%s is %s, not a directory. %s' % (name, _show(value), fix)
    if not value.startswith('/'):
        return '%s %s is not an absolute path. %s' % (name, _show(value), fix)
    if value in SYSTEM_DIRS:
        return ('%s %s is a system directory: the role would make it its own (owner postgres, mode 0700 or 0750)%s. '
                '%s' % (name, _show(value), ' and each drill deletes <backup_drill_path>/<stanza>'
                        if name == 'backup_drill_path' else '', fix))
    if not _PATH.match(value) or value != posixpath.normpath(value) or \
            any(part in ('.', '..') for part in value.split('/')):
        return ("%s %s is not a plain normalised path: only letters, digits and '_', '.', '@', '+', '-' between "
                "single slashes; no '.' or '..' component, no trailing slash, no space, quote, line break or other "
                "special character (the role writes it into shell scripts and pgbackrest.conf). %s"
                % (name, _show(value), fix))
    for tree in VIRTUAL_TREES:
        if _inside(value, tree):
            return '%s %s lies in %s, a kernel or runtime file system that loses its content. %s' % (
                name, _show(value), tree, fix)
    return ''


def backup_path_errors(paths, keep_clear=None):
    """Why the backup role's directories are unsafe ([] when they are not).

    paths: {variable: value} for backup_repo_path, backup_spool_path,
    backup_logical_path and backup_drill_path. keep_clear: directories none of
    them may be, lie in or contain (PostgreSQL's data and configuration
    directories, /etc/pgbackrest). The drill deletes <drill path>/<stanza> at
    each run: it may not overlap the repository, the dumps or the spool. The
    dumps may live inside the repository (the default), but not in
    pgBackRest's own archive/ and backup/ directories, not at its root and not
    above it.
    """
    if not isinstance(paths, dict):
        raise AnsibleFilterError('backup_path_errors expects {variable: path}')
    errors = []
    good = {}
    for name in [n for n in PATH_VARIABLES if n in paths] + sorted(n for n in paths if n not in PATH_VARIABLES):
        error = _path_error(name, paths[name])
        if error:
            errors.append(error)
        else:
            good[name] = paths[name]
    for name, value in sorted(good.items(), key=lambda kv: PATH_VARIABLES.index(kv[0]) if kv[0] in PATH_VARIABLES else 9):
        for clear in keep_clear or []:
            if _inside(value, clear) or _inside(clear, value):
                errors.append('%s %s %s %s, which belongs to PostgreSQL or to the role\'s configuration. Fix: a '
                              'directory of its own, e.g. %s.' % (
                                  name, _show(value), 'is' if value == clear else
                                  ('lies in' if _inside(value, clear) else 'contains'), clear,
                                  PATH_DEFAULTS.get(name, '/var/lib/pgbackrest')))
    drill = good.get('backup_drill_path')
    if drill:
        for other in ('backup_repo_path', 'backup_logical_path', 'backup_spool_path'):
            value = good.get(other)
            if not value:
                continue
            if _inside(drill, value) or _inside(value, drill):
                how = 'is' if drill == value else ('lies in' if _inside(drill, value) else 'contains')
                errors.append('backup_drill_path %s %s %s %s: each drill deletes <backup_drill_path>/<stanza> and '
                              'would delete what is kept there. Fix: give the drill a scratch directory of its own, '
                              'outside backup_repo_path, backup_logical_path and backup_spool_path (default %s).'
                              % (_show(drill), how, other, _show(value), PATH_DEFAULTS['backup_drill_path']))
    repo, logical = good.get('backup_repo_path'), good.get('backup_logical_path')
    if repo and logical:
        if _inside(repo, logical):
            errors.append('backup_logical_path %s %s backup_repo_path %s: the dump sets would be mixed with '
                          "pgBackRest's repository and its retention. Fix: a directory inside the repository (as "
                          'the default %s) or outside it.' % (
                              _show(logical), 'is' if repo == logical else 'contains', _show(repo),
                              PATH_DEFAULTS['backup_logical_path']))
        else:
            for own in ('archive', 'backup'):
                if _inside(logical, posixpath.join(repo, own)):
                    errors.append("backup_logical_path %s lies in pgBackRest's own %s/ directory of "
                                  'backup_repo_path %s, where its expiry and the dumps\' retention would delete '
                                  'each other\'s files. Fix: another subdirectory, e.g. %s.' % (
                                      _show(logical), own, _show(repo), posixpath.join(repo, 'dump')))
    return errors


_CONTROL = re.compile('[\\x00-\\x08\\x0a-\\x1f\\x7f]')


def backup_schedule_errors(schedule, kinds, drill_schedule=''):
    """backup_schedule (and backup_drill_schedule): only the known kinds, and
    each schedule set a 5-field cron expression pg_cron and the systemd timers
    both run, without a line break (pg_cron and the timers' unit files take it
    as it is). An empty string disables one."""
    errors = []
    unknown = [k for k in schedule if k not in kinds]
    if unknown:
        errors.append('backup_schedule has unknown keys %s. Fix: use only %s (an empty string disables one).'
                      % (', '.join(unknown), ', '.join(kinds)))
    items = [('backup_schedule.%s' % k, v) for k, v in schedule.items() if v != '']
    if drill_schedule:
        items.append(('backup_schedule.(backup_drill_schedule)', drill_schedule))
    for name, value in items:
        problem = cron_error(value) or ('it holds a line break or another control character'
                                        if _CONTROL.search(str(value)) else '')
        if problem:
            errors.append('%s %s is not a usable schedule: %s. Fix: 5 fields, minute hour day-of-month month'
                          ' day-of-week, in UTC (for example "0 1 * * 0"), or "" to disable.'
                          % (name, json.dumps(value), problem))
    return errors


def backup_name_errors(value, variable, kind='database'):
    """Why names written into SQL and shell lines are refused ([] when they are fine).

    value: one name or a list of names; kind: database or role.
    """
    pattern, form = (_ROLE_NAME, _ROLE_NAME_FORM) if kind == 'role' else (_DB_NAME, _DB_NAME_FORM)
    if isinstance(value, (list, tuple)):
        names, listed = list(value), True
    else:
        names, listed = [value], False
    bad = [n for n in names if not isinstance(n, str) or not pattern.match(n)]
    if not bad:
        return []
    if listed:
        return ['%s holds %s the role refuses (%s): %s. Fix: %s.' % (
            variable, 'a name' if len(bad) == 1 else 'names', 'it goes into SQL and shell lines',
            ', '.join(_show(n) for n in bad), form)]
    return ['%s %s is not a %s name the role accepts (it goes into SQL and shell lines). Fix: %s.' % (
        variable, _show(bad[0]), kind, form)]


def backup_table_errors(tables):
    """Why entries of backup_drill_tables are refused ([] when they are fine)."""
    if not isinstance(tables, (list, tuple)):
        return ['backup_drill_tables is %s, not a list. Fix: a list of {db: NAME, table: [schema.]NAME, '
                'min_rows: N}.' % _show(tables)]
    errors = []
    for i, t in enumerate(tables):
        why = []
        if not isinstance(t, dict):
            why.append('not a dict')
        else:
            unknown = sorted(set(t) - {'db', 'table', 'min_rows'})
            if unknown:
                why.append('unknown keys %s' % ', '.join(unknown))
            if not isinstance(t.get('db'), str) or not _DB_NAME.match(t.get('db')):
                why.append('db %s is not a database name (%s)' % (_show(t.get('db')), _DB_NAME_FORM))
            if not isinstance(t.get('table'), str) or not _TABLE.match(t.get('table')):
                why.append("table %s is not [schema.]name made of letters, digits and '_'" % _show(t.get('table')))
            rows = t.get('min_rows', 1)
            if isinstance(rows, bool) or not (isinstance(rows, int) or (isinstance(rows, str) and _DIGITS.match(rows))):
                why.append('min_rows %s is not a whole number' % _show(rows))
        if why:
            errors.append('backup_drill_tables[%d]: %s. Fix: each entry is {db: NAME, table: [schema.]NAME, '
                          'min_rows: N (optional, default 1)}.' % (i, '; '.join(why)))
    return errors


def _reserved(option):
    if option in RESERVED_OPTIONS:
        variable = RESERVED_OPTIONS[option]
        return ('the role sets it' + (' from %s' % variable if variable else '')) if option not in (
            'config', 'config-include-path', 'config-path') else 'it only makes sense on the command line'
    for pattern, why in _RESERVED_PATTERNS:
        if pattern.match(option):
            return why
    return ''


def _text_ok(text):
    """No control, format or line/paragraph separator character."""
    return not any(unicodedata.category(c)[0] == 'C' or unicodedata.category(c) in ('Zl', 'Zp') for c in text)


def backup_option_errors(options):
    """Why backup_extra_options cannot go into pgbackrest.conf ([] when they can).

    Only option names appear in the messages: the values may be secrets (repo1-cipher-pass, keys).
    """
    if not isinstance(options, dict):
        return ['backup_extra_options is not a dict. Fix: {option-name: value}, e.g. {buffer-size: 4MiB}.']
    errors = []
    for name in sorted(options, key=str):
        value = options[name]
        if not isinstance(name, str) or not _OPTION.match(name):
            errors.append("backup_extra_options has an option named %s: pgBackRest's options are lower-case words "
                          "joined by '-' (e.g. repo1-cipher-type). Fix the name." % _show(name))
            continue
        reserved = _reserved(name)
        if reserved:
            errors.append('backup_extra_options sets %s, but %s. Fix: remove it from backup_extra_options%s.' % (
                name, reserved, (' and set %s' % RESERVED_OPTIONS[name]) if RESERVED_OPTIONS.get(name) else ''))
            continue
        values = value if isinstance(value, list) else [value]
        if not values:
            errors.append('backup_extra_options[%s] is an empty list. Fix: give it a value or remove it.' % name)
            continue
        for v in values:
            if v is None or isinstance(v, (dict, list)) or not isinstance(v, (str, int, float)):
                errors.append('backup_extra_options[%s] is not a string, number, yes/no or list of them (value not '
                              'shown: it may be a secret). Fix the value.' % name)
                break
            text = backup_conf_value(v)
            if not text or not _text_ok(text) or text != text.strip():
                errors.append('backup_extra_options[%s] is empty, has a line break or another control character, or '
                              'leading/trailing blanks (value not shown: it may be a secret); in pgbackrest.conf that '
                              'would break or add options. Fix the value.' % name)
                break
    return errors


def backup_conf_value(value):
    """An option value as pgbackrest.conf wants it: booleans as y/n, the rest as text."""
    if isinstance(value, bool):
        return 'y' if value else 'n'
    return '%s' % (value,)


def backup_address_errors(address, variable='backup_host_address'):
    """Why the address the members reach the backup host at is refused ([] when it is fine).

    It goes into pgbackrest.conf, the members' known_hosts and pgha-backup, and into the backup
    host's certificate as IP:<address>: an IPv4 or IPv6 address, like postgresql_host_address.
    """
    try:
        if isinstance(address, str) and address == address.strip():
            ipaddress.ip_address(address)
            return []
    except ValueError:
        pass
    return ['%s %s is not an IP address (it goes into pgbackrest.conf, the members\' known_hosts, a shell '
            'script and the backup host\'s certificate as IP:...). Fix: set it to the IPv4 or IPv6 address the '
            'members reach the backup host at, or leave it unset (its default IPv4 address).'
            % (variable, _show(address))]


def backup_csr_errors(checks, repo_host=''):
    """Why the CA must not sign the certificate signing requests checked on the backup host.

    checks: the results of `openssl req -noout -verify -subject -nameopt RFC2253` run on the CA host,
    one per host (item = inventory name, rc, stdout, stderr). A request is signed only when its
    self-signature verifies and its subject is exactly CN=<the host it is for>.
    """
    errors = []
    for r in checks or []:
        if not isinstance(r, dict) or r.get('skipped') or 'rc' not in r:
            continue
        host = r.get('item')
        out = '%s' % (r.get('stdout') or '')
        subject = ''
        for line in out.splitlines():
            if line.startswith('subject='):
                subject = line[len('subject='):].strip()
        verified = r.get('rc') == 0 and 'verify OK' in ('%s\n%s' % (out, r.get('stderr') or ''))
        if verified and subject == 'CN=%s' % host:
            continue
        claims = ('subject %s' % _show(subject)) if subject else 'no readable subject'
        why = []
        if subject != 'CN=%s' % host:
            why.append('it claims %s, not CN=%s%s' % (
                claims, host, (' - the backup host, whom every member trusts' if repo_host and
                               subject == 'CN=%s' % repo_host and host != repo_host else '')))
        if not verified:
            why.append('its signature does not verify (%s)' % ' '.join(
                ('%s %s' % (r.get('stderr') or '', out)).split())[:200])
        errors.append('REFUSED to sign the certificate signing request of %s (/etc/pgbackrest/pki/host.csr): %s. '
                      'No certificate was issued for it. Fix: find out who changed it, then on %s remove '
                      '/etc/pgbackrest/pki/host.* and run site.yml again (a new key and request are made).'
                      % (host, '; '.join(why), host))
    return errors


# --------------------------------------------------------------------------
# The native engine (PostgreSQL 17's incremental backups)
# --------------------------------------------------------------------------

_SIZE = re.compile(r'^([0-9]+)\s*([KMGTP]?)(I?B?)$', re.I)
_MINUTES = re.compile(r'^([0-9]+)\s*(min|h|d)?$')


def backup_size_bytes(value):
    """'4GiB', '512MiB', '1024' -> bytes (K, M, G, T, P are powers of 1024, as for pgBackRest)."""
    m = _SIZE.match(str(value).strip())
    if not m:
        raise AnsibleFilterError('backup_size_bytes: %r is not a size such as 4GiB' % (value,))
    return int(m.group(1)) * 1024 ** ' KMGTP'.index(m.group(2).upper() or ' ')


def summary_keep_minutes(value):
    """wal_summary_keep_time as PostgreSQL reads it ('10d', '36h', '600min', 14400) -> minutes, or None."""
    m = _MINUTES.match(str(value).strip())
    if not m:
        return None
    return int(m.group(1)) * {'min': 1, 'h': 60, 'd': 1440}[m.group(2) or 'min']


def native_schedule_errors(schedule, keep_time, variable='backup_wal_summary_keep_time'):
    """The native engine's incremental and differential backups read the WAL summaries back to
    their parent, which is never older than the last full backup: wal_summary_keep_time must
    outlast the longest gap between two scheduled full backups. [] when it does."""
    keep = summary_keep_minutes(keep_time)
    if keep is None or keep < 1:
        return ['%s=%r is not a duration PostgreSQL takes for wal_summary_keep_time. Fix: minutes, or a number with '
                'min, h or d, for example 10d.' % (variable, keep_time)]
    schedule = schedule or {}
    partial = [k for k in ('diff', 'incr') if schedule.get(k)]
    if not partial:
        return []
    if not schedule.get('full'):
        return ['backup_schedule has %s backups but no full one: an incremental backup needs a parent no older than '
                '%s (%s). Fix: schedule full backups too (backup_schedule.full).'
                % (' and '.join(partial), variable, keep_time)]
    try:
        gap = cron_max_gap(schedule['full'])
    except (AnsibleFilterError, CronError):
        return []       # the schedule's own check names that one
    if gap is None:
        return ['backup_schedule.full %r never runs, so the %s backups would have no recent parent. Fix: a schedule '
                'that runs.' % (schedule['full'], ' and '.join(partial))]
    need = (gap + 59) // 60 + 60
    if keep < need:
        return ['%s=%s is shorter than the longest gap between two full backups (backup_schedule.full %r: %s): the '
                '%s backups taken at the end of that gap could not read the WAL summaries back to their parent. Fix: '
                'set %s to %dh or more, or schedule full backups more often.'
                % (variable, keep_time, schedule['full'], _duration(gap), ' and '.join(partial), variable,
                   (need + 59) // 60)]
    return []


def _duration(seconds):
    days, rest = divmod(int(seconds), 86400)
    return ('%d days' % days if days and not rest else
            '%d days %d hours' % (days, rest // 3600) if days else '%d hours' % (rest // 3600))


class FilterModule(object):
    def filters(self):
        return {
            'backup_status': backup_status,
            'backup_status_line': backup_status_line,
            'backup_size_bytes': backup_size_bytes,
            'summary_keep_minutes': summary_keep_minutes,
            'native_schedule_errors': native_schedule_errors,
            'backup_cron_jobs': backup_cron_jobs,
            'backup_timers': backup_timers,
            'backup_table': backup_table,
            'restore_plan': restore_plan,
            'backup_path_errors': backup_path_errors,
            'backup_name_errors': backup_name_errors,
            'backup_schedule_errors': backup_schedule_errors,
            'backup_table_errors': backup_table_errors,
            'backup_option_errors': backup_option_errors,
            'backup_conf_value': backup_conf_value,
            'backup_address_errors': backup_address_errors,
            'backup_csr_errors': backup_csr_errors,
        }

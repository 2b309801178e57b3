# Managed by Ansible (pgha.cluster.backup).
"""pgha-native: the backup host's side of the "native" backup engine, PostgreSQL 17's own tools
(pg_basebackup --incremental, pg_verifybackup, pg_combinebackup, pg_archivecleanup) instead of
pgBackRest. Run as the OS user postgres on the backup host:

  python3 pgha-native backup full|diff|incr   take a backup (one at a time), verify it, then expire
  python3 pgha-native expire                  apply the retention (chains of retention_full fulls), prune WAL
  python3 pgha-native info [--json]           list the backups (JSON shaped like `pgbackrest info --output=json`)
  python3 pgha-native check                   switch WAL on the primary, wait for the segment in <repo>/wal
  python3 pgha-native combine LABEL DEST      rebuild backup LABEL ("latest": the newest) into DEST
  python3 pgha-native restore-stream LABEL    the same, written to stdout as one tar stream
  python3 pgha-native wal-get NAME            a WAL segment or .history file to stdout (restore_command)
  python3 pgha-native wal-put NAME            store stdin as that WAL file (the members' archive_command)
  python3 pgha-native latest                  the label of the newest backup (the drill's; a broken chain fails it)

Exit status: 0 success, 1 failure, 2 usage error or unmet precondition (another backup running, no backup).

Configuration: the JSON file named by $PGHA_NATIVE_CONFIG (default /etc/pgha/native.json):
{stanza, repo, bin_dir, conninfo, slot, retention_full, timeout, log}. Backups live in
<repo>/backup/<label>/ (pg_basebackup's plain format plus pgha-backup.json), WAL in <repo>/wal/,
archived there by the members' archive_command through the SSH trigger (wal-put: written under a
temporary name, then renamed). Labels are the UTC start time and the type: 20261203-101500F|D|I.

Verification: PostgreSQL 17's plain `pg_verifybackup DIR` (checksums of every file in the manifest,
INCREMENTAL.* files included, and a pg_waldump parse of the streamed WAL) accepts incremental backups
too (tested on 17.12), so both full and incremental backups get the full check. It runs before
pgha-backup.json is written: to verify a finished backup again, use `pg_verifybackup -i pgha-backup.json DIR`.
pg_combinebackup copies pgha-backup.json of the newest backup into its output (with a warning) and
lists it in the new backup_manifest: combine removes both (and recomputes the manifest's checksum),
so `pg_verifybackup DEST` passes on the result.
"""
import argparse
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

CONFIG = '/etc/pgha/native.json'
DEFAULTS = {
    'stanza': 'main',
    'slot': 'pgha_backup',
    'retention_full': 2,
    'timeout': 120,
    'log': '/var/log/pgbackrest/pgha-native.log',
}
REQUIRED = ('repo', 'bin_dir', 'conninfo')
TYPES = {'full': 'F', 'diff': 'D', 'incr': 'I'}
LETTERS = {v: k for k, v in TYPES.items()}
LABEL_TIME = '%Y%m%d-%H%M%S'
LABEL_RE = re.compile(r'^(\d{8}-\d{6})([FDI])$')
SEGMENT_RE = re.compile(r'^[0-9A-F]{24}$')
HISTORY_RE = re.compile(r'^[0-9A-F]{8}\.history$')
PARTIAL_RE = re.compile(r'^([0-9A-F]{24})\.partial$')
# a backup history file, archived when a base backup ends (the replicas' clones make them too)
BACKUP_HISTORY_RE = re.compile(r'^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$')
LSN_RE = re.compile(r'^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$')
SEGMENT_SIZE = 16 * 1024 * 1024
BLCKSZ = 8192                      # Debian's PostgreSQL; INCREMENTAL.* files count in blocks
INCREMENTAL_MAGIC = 0xd3ae1f0d
META = 'pgha-backup.json'
APPLICATION = 'pgha_native'
PARTIAL_MAX_AGE = 3600             # a <label>.partial backup directory older than this is debris
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class Failure(Exception):
    """A message for stderr and an exit status."""

    def __init__(self, message, code=EXIT_FAIL):
        super().__init__(message)
        self.code = code


class Interrupted(Exception):
    """A signal asked us to stop (restore-stream and combine clean up, then exit)."""


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------

def validate_config(raw):
    """(config with defaults, [errors]) from the parsed JSON."""
    errors = []
    if not isinstance(raw, dict):
        return None, ['the configuration is not a JSON object']
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    for key in REQUIRED:
        if not isinstance(cfg.get(key), str) or not cfg.get(key):
            errors.append('%s is missing' % key)
    for key, low in (('retention_full', 1), ('timeout', 1)):
        value = cfg.get(key)
        if isinstance(value, str) and value.strip().isdigit():   # a templated "2" is fine
            value = cfg[key] = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            errors.append('%s must be an integer of at least %d, not %r' % (key, low, value))
    if isinstance(cfg.get('repo'), str) and cfg['repo'] and not cfg['repo'].startswith('/'):
        errors.append('repo must be an absolute path')
    return cfg, errors


def make_label(epoch, btype):
    """'20261203-101500F' from a UNIX time and full|diff|incr."""
    stamp = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime(LABEL_TIME)
    return stamp + TYPES[btype]


def next_label(epoch, btype, existing):
    """The label of a new backup: its time is the start time, or one second after the newest existing
    label when that is not earlier (labels must sort in the order the backups were taken)."""
    times = [parsed[0] for parsed in (parse_label(name.split('.')[0]) for name in existing) if parsed]
    epoch = int(epoch)
    if times and epoch <= max(times):
        epoch = max(times) + 1
    return make_label(epoch, btype)


def parse_label(label):
    """(epoch, type) of a label, None for anything else (e.g. a <label>.partial directory)."""
    match = LABEL_RE.match(label or '')
    if not match:
        return None
    try:
        when = datetime.datetime.strptime(match.group(1), LABEL_TIME).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return int(when.timestamp()), LETTERS[match.group(2)]


def missing_references(meta, present):
    """The labels of meta's chain (itself excluded) that are not among present."""
    return [ref for ref in meta.get('reference') or [] if ref != meta.get('label') and ref not in present]


def choose_parent(backups, btype):
    """(parent label or None, type actually taken) for a new backup.

    backups: {label: metadata} of the complete backups. incr builds on the newest backup of any type,
    diff on the newest full, full on nothing; without a full everything becomes a full. Backups whose
    chain is broken are never a parent."""
    usable = sorted(label for label, meta in backups.items() if not missing_references(meta, backups))
    fulls = [label for label in usable if backups[label].get('type') == 'full']
    if not fulls:
        return None, 'full'
    if btype == 'full':
        return None, 'full'
    if btype == 'diff':
        return fulls[-1], 'diff'
    return usable[-1], 'incr'


def reference_chain(parent_meta, label):
    """The labels from the full to the new backup, the new one last."""
    if parent_meta is None:
        return [label]
    return list(parent_meta.get('reference') or [parent_meta['label']]) + [label]


def resolve_chain(label, backups):
    """(chain, missing) of an existing backup: the labels to combine, full first, and the labels that
    are gone. 'latest' is the newest backup whose chain is complete. Raises KeyError for an unknown
    label."""
    if label == 'latest':
        label = newest_usable(backups)
        if label is None:
            raise KeyError('latest')
    meta = backups[label]
    chain = list(meta.get('reference') or [label])
    if chain[-1] != label:
        chain.append(label)
    return chain, missing_references(meta, backups)


def newest_usable(backups):
    """The newest label whose chain is complete, or None."""
    usable = [label for label, meta in backups.items() if not missing_references(meta, backups)]
    return max(usable) if usable else None


def retention(backups, retention_full):
    """The labels to delete, newest first (a child goes before its parent).

    Keeps the newest retention_full full backups and every backup whose chain starts at one of them;
    everything else goes. Asserts that no kept backup references a deleted one."""
    keep_full = max(1, int(retention_full))
    fulls = sorted(label for label, meta in backups.items() if meta.get('type') == 'full')
    kept_fulls = set(fulls[-keep_full:])
    kept = set()
    for label, meta in backups.items():
        chain = meta.get('reference') or [label]
        if chain[0] in kept_fulls:
            kept.add(label)
    delete = set(backups) - kept
    for label in kept:
        gone = delete.intersection(backups[label].get('reference') or [])
        if gone:
            raise AssertionError('kept backup %s references %s' % (label, sorted(gone)))
    return sorted(delete, reverse=True)


def parse_lsn(text):
    """'0/5000028' -> 83886120."""
    match = LSN_RE.match((text or '').strip())
    if not match:
        raise ValueError('not an LSN: %r' % (text,))
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value):
    return '%X/%X' % (value >> 32, value & 0xFFFFFFFF)


def wal_file_name(timeline, lsn, previous=False):
    """The name of the 16 MB WAL segment holding lsn (an int or '0/5000028') on timeline.

    previous=True: the segment holding the byte before lsn, PostgreSQL's rule for a stop location
    (an end exactly on a segment boundary belongs to the segment before it)."""
    if isinstance(lsn, str):
        lsn = parse_lsn(lsn)
    if previous and lsn > 0:
        lsn -= 1
    segno = lsn // SEGMENT_SIZE
    per_id = 0x100000000 // SEGMENT_SIZE
    return '%08X%08X%08X' % (int(timeline), segno // per_id, segno % per_id)


def parse_pg_time(text, near=None):
    """Epoch seconds of a time as PostgreSQL writes it into backup_label ('2026-12-03 12:05:39 UTC').

    The zone is log_timezone's abbreviation: UTC/GMT/Z and numeric offsets are exact; for any other
    abbreviation the offset is the one (a multiple of 15 minutes) that puts the time nearest to `near`
    (the local clock when the backup started), and None comes back when there is no `near`."""
    match = re.match(r'^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.\d+)?\s*(\S*)$', (text or '').strip())
    if not match:
        return None
    naive = datetime.datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S').replace(tzinfo=datetime.timezone.utc)
    as_utc = int(naive.timestamp())
    zone = match.group(2)
    if zone in ('', 'UTC', 'GMT', 'Z', 'UCT'):
        return as_utc
    offset = re.match(r'^([+-])(\d{2}):?(\d{2})?$', zone)
    if offset:
        seconds = int(offset.group(2)) * 3600 + int(offset.group(3) or 0) * 60
        return as_utc - seconds if offset.group(1) == '+' else as_utc + seconds
    if near is None:
        return None
    quarter = round((as_utc - near) / 900.0) * 900
    if abs(quarter) > 14 * 3600:
        return None
    return as_utc - quarter


def parse_backup_label(text, near=None):
    """{start_lsn, start_segment, start_time, timeline, incremental_from} from a backup_label file."""
    fields = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition(': ')
        if sep:
            fields[key.strip()] = value.strip()
    start = fields.get('START WAL LOCATION', '')
    match = re.match(r'^(\S+)(?: \(file ([0-9A-F]{24})\))?', start)
    if not match:
        raise ValueError('backup_label has no START WAL LOCATION')
    return {
        'start_lsn': format_lsn(parse_lsn(match.group(1))),
        'start_segment': match.group(2),
        'start_time': parse_pg_time(fields.get('START TIME'), near),
        'timeline': int(fields.get('START TIMELINE', '1')),
        'incremental_from': fields.get('INCREMENTAL FROM LSN'),
    }


def manifest_wal_end(manifest):
    """(timeline, End-LSN) of the last WAL-Ranges entry of a backup_manifest (parsed JSON)."""
    ranges = manifest.get('WAL-Ranges') or []
    if not ranges:
        raise ValueError('backup_manifest has no WAL-Ranges')
    last = max(ranges, key=lambda r: parse_lsn(r['End-LSN']))
    return int(last['Timeline']), format_lsn(parse_lsn(last['End-LSN']))


def incremental_block_length(header):
    """The length in blocks of the file an INCREMENTAL.* file rebuilds, from its first bytes
    (magic, block count, truncation length, the block numbers), None when it is not one.

    pg_combinebackup makes the file truncation_block_length blocks long, longer when a block
    beyond that was sent."""
    if len(header) < 12:
        return None
    magic, count, truncate = struct.unpack('=III', header[:12])
    if magic != INCREMENTAL_MAGIC or len(header) < 12 + 4 * count:
        return None
    blocks = struct.unpack('=%dI' % count, header[12:12 + 4 * count])
    return max([truncate] + [block + 1 for block in blocks])


def restored_size(manifest, read_header=None):
    """Bytes of the data directory the backup restores to (pg_wal left out): the manifest's sizes,
    with an INCREMENTAL.* file counted as the file it rebuilds (read_header(path) returns its header
    bytes; without it, or when unreadable, the stored size counts)."""
    total = 0
    for entry in manifest.get('Files') or []:
        path = entry.get('Path', '')
        if path.startswith('pg_wal/'):
            continue
        size = int(entry.get('Size', 0))
        if read_header and os.path.basename(path).startswith('INCREMENTAL.'):
            blocks = incremental_block_length(read_header(path) or b'')
            if blocks is not None:
                size = blocks * BLCKSZ
        total += size
    return total


def make_metadata(label, btype, parent_meta, label_info, wal_end, stop_time, size, repo_size):
    """The pgha-backup.json of a new backup."""
    stop_timeline, stop_lsn = wal_end
    timeline = label_info['timeline']
    return {
        'label': label,
        'type': btype,
        'prior': parent_meta['label'] if parent_meta else None,
        'reference': reference_chain(parent_meta, label),
        'timestamp': {'start': label_info['start_time'], 'stop': int(stop_time)},
        'lsn': {'start': label_info['start_lsn'], 'stop': stop_lsn},
        'timeline': timeline,
        'archive': {'start': wal_file_name(timeline, label_info['start_lsn']),
                    'stop': wal_file_name(stop_timeline, stop_lsn, previous=True)},
        'size': int(size),
        'repo_size': int(repo_size),
    }


def manifest_without(data, path):
    """backup_manifest bytes without the Files entry of path and with the Manifest-Checksum (the SHA-256
    of everything before that key) recomputed; None when the entry is absent or the layout unexpected."""
    lines = data.split(b'\n')
    key = b'{ "Path": ' + json.dumps(path).encode() + b','
    found = [i for i, line in enumerate(lines) if line.startswith(key)]
    if len(found) != 1 or found[0] == 0:
        return None
    at = found[0]
    if not lines[at].endswith(b','):          # the last entry of Files: the one before loses its comma
        if not lines[at - 1].endswith(b'},'):
            return None
        lines[at - 1] = lines[at - 1][:-1]
    del lines[at]
    body = b'\n'.join(lines)
    cut = body.rfind(b'"Manifest-Checksum"')
    if cut < 0:
        return None
    digest = hashlib.sha256(body[:cut]).hexdigest().encode()
    tail, count = re.subn(rb'^"Manifest-Checksum": "[0-9a-f]{64}"', b'"Manifest-Checksum": "' + digest + b'"',
                          body[cut:])
    return body[:cut] + tail if count == 1 else None


def valid_wal_name(name):
    """A complete segment or a .history file: what wal-get serves (never .partial, never a path)."""
    return bool(SEGMENT_RE.match(name or '') or HISTORY_RE.match(name or ''))


def wal_range(names):
    """(oldest, newest) complete WAL segment among file names, (None, None) when there is none."""
    segments = sorted(name for name in names if SEGMENT_RE.match(name))
    return (segments[0], segments[-1]) if segments else (None, None)


def wal_cleanup_point(oldest_start, names):
    """The file name to give pg_archivecleanup: the oldest kept backup's start segment, or the
    segment pg_receivewal is still writing (the <name>.partial of the newest timeline) when that one is
    older, so that it is never removed (pg_archivecleanup removes segments and .partial files below the point on any
    timeline and keeps .history files)."""
    partials = [m.group(1) for m in (PARTIAL_RE.match(n) for n in names) if m]
    if partials:
        growing = max(partials)
        # a .partial left on an older timeline by a failover is never completed: it is not the growing one
        newest_timeline = max(n[:8] for n in names if SEGMENT_RE.match(n[:24]) or HISTORY_RE.match(n))
        if growing[:8] == newest_timeline and growing[8:] < oldest_start[8:]:
            return growing
    return oldest_start


def shape_info(stanza, backups, wal_names):
    """`pgbackrest info --output=json` for one stanza, from {label: metadata} and <repo>/wal's names."""
    rows = []
    for label in sorted(backups):
        meta = backups[label]
        missing = missing_references(meta, backups)
        chain = meta.get('reference') or [label]
        row = {
            'label': label,
            'type': meta.get('type'),
            'prior': meta.get('prior'),
            'reference': chain,
            'timestamp': dict(meta.get('timestamp') or {}),
            'lsn': dict(meta.get('lsn') or {}),
            'archive': dict(meta.get('archive') or {}),
            'info': {
                'size': meta.get('size'),
                'delta': meta.get('repo_size'),
                'repository': {
                    'size': sum(backups[ref].get('repo_size') or 0 for ref in chain if ref in backups),
                    'delta': meta.get('repo_size'),
                },
            },
            'error': bool(missing),
            'timeline': meta.get('timeline'),
        }
        if missing:
            row['missing'] = missing
        rows.append(row)
    low, high = wal_range(wal_names)
    if rows:
        status = {'code': 0, 'message': 'ok'}
    else:
        status = {'code': 2, 'message': 'no valid backups'}
    return [{'name': stanza, 'status': status, 'backup': rows, 'archive': [{'min': low, 'max': high}]}]


def human_size(value):
    if value is None:
        return '-'
    value = float(value)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return ('%d%s' % (value, unit)) if unit == 'B' else ('%.1f%s' % (value, unit))
        value /= 1024.0
    return '-'


def info_table(info):
    """The text of `info`: one line per backup, then the WAL range."""
    stanza = info[0]
    lines = ['stanza %s: %s' % (stanza['name'], stanza['status']['message'])]
    header = ('backup', 'type', 'prior', 'started (UTC)', 'lsn', 'size', 'stored', 'state')
    rows = []
    for b in stanza['backup']:
        start = b['timestamp'].get('start')
        started = (datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')
                   if start is not None else '?')
        state = 'missing ' + ','.join(b['missing']) if b['error'] else 'ok'
        rows.append((b['label'], b['type'], b['prior'] or '-', started,
                     '%s..%s' % (b['lsn'].get('start'), b['lsn'].get('stop')),
                     human_size(b['info']['size']), human_size(b['info']['repository']['delta']), state))
    if rows:
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        for row in [header] + rows:
            lines.append('  '.join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    archive = stanza['archive'][0]
    lines.append('wal: %s .. %s' % (archive['min'] or 'none', archive['max'] or 'none'))
    return '\n'.join(lines)


def last_line(text):
    """The last non-empty line of a program's output (its error, usually)."""
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    return lines[-1] if lines else ''


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------

CHILD = []          # the running child process, for the signal handlers


def load_config():
    path = os.environ.get('PGHA_NATIVE_CONFIG', CONFIG)
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise Failure('cannot read the configuration %s (%s): run the backup role to write it' % (path, e),
                      EXIT_USAGE) from e
    cfg, errors = validate_config(raw)
    if errors:
        raise Failure('the configuration %s is invalid (%s): fix it or run the backup role again'
                      % (path, '; '.join(errors)), EXIT_USAGE)
    return cfg


def log(cfg, message):
    """One line appended to the log; a log that cannot be written is not an error."""
    path = cfg.get('log')
    if not path:
        return
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    try:
        os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
        with open(path, 'a') as f:
            f.write('%s pid=%d %s\n' % (stamp, os.getpid(), message.replace('\n', ' | ')))
    except OSError:
        pass


def say(message):
    sys.stderr.write(message.rstrip('\n') + '\n')
    sys.stderr.flush()


def binary(cfg, name):
    return os.path.join(cfg['bin_dir'], name)


def conninfo(cfg, extra):
    return '%s %s' % (cfg['conninfo'], extra)


def backup_dir(cfg, label=''):
    return os.path.join(cfg['repo'], 'backup', label) if label else os.path.join(cfg['repo'], 'backup')


def wal_dir(cfg):
    return os.path.join(cfg['repo'], 'wal')


def read_backups(cfg):
    """{label: metadata} of the complete backups: <repo>/backup/<label>/pgha-backup.json."""
    found = {}
    try:
        names = os.listdir(backup_dir(cfg))
    except FileNotFoundError:
        return found
    for name in names:
        if parse_label(name) is None:
            continue
        try:
            with open(os.path.join(backup_dir(cfg, name), META)) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get('label') == name:
            found[name] = meta
    return found


def wal_names(cfg):
    try:
        return os.listdir(wal_dir(cfg))
    except FileNotFoundError:
        return []


def tree_size(path):
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


def run(cmd, stdout=subprocess.PIPE):
    """(returncode, stdout text or None, stderr text) of a program; signals reach it through CHILD."""
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    CHILD.append(proc)
    try:
        out, err = proc.communicate()
    finally:
        CHILD.remove(proc)
    return (proc.returncode,
            out.decode('utf-8', 'replace') if isinstance(out, bytes) else None,
            err.decode('utf-8', 'replace'))


def lock(path, shared=False, wait=False):
    """An flock on path, or None when someone else holds it (and wait is False)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _on_signal(signum, _frame):
    for proc in list(CHILD):
        try:
            proc.terminate()
        except OSError:
            pass
    raise Interrupted('signal %d' % signum)


def catch_signals():
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _on_signal)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

def cmd_backup(cfg, requested):
    os.makedirs(backup_dir(cfg), exist_ok=True)
    fd = lock(os.path.join(cfg['repo'], '.lock'))
    if fd is None:
        raise Failure('another backup is running in %s: wait for it to finish, then try again' % cfg['repo'],
                      EXIT_USAGE)
    catch_signals()
    backups = read_backups(cfg)
    parent, btype = choose_parent(backups, requested)
    if btype != requested:
        say('no full backup in %s yet: taking a full backup instead of %s.' % (backup_dir(cfg), requested))
    started = time.time()
    label = next_label(started, btype, os.listdir(backup_dir(cfg)))
    partial = backup_dir(cfg, label + '.partial')
    cmd = [binary(cfg, 'pg_basebackup'), '-d', conninfo(cfg, 'application_name=' + APPLICATION),
           '-D', partial, '-Fp', '-X', 'stream', '-c', 'fast', '-l', 'pgha-' + label, '--no-password']
    if parent:
        cmd += ['--incremental', os.path.join(backup_dir(cfg, parent), 'backup_manifest')]
    log(cfg, 'backup %s start (%s, parent %s)' % (label, btype, parent or 'none'))
    try:
        rc, _out, err = run(cmd)
        stopped = time.time()
        if rc != 0:
            raise Failure('pg_basebackup failed for backup %s: %s' % (label, last_line(err) or 'rc %d' % rc))
        rc, out, err = run([binary(cfg, 'pg_verifybackup'), '-q', partial])
        if rc != 0:
            raise Failure('pg_verifybackup rejected backup %s: %s' % (label, last_line(err or out) or 'rc %d' % rc))
        with open(os.path.join(partial, 'backup_label')) as f:
            label_info = parse_backup_label(f.read(), near=started)
        if label_info['start_time'] is None:
            label_info['start_time'] = int(started)
        with open(os.path.join(partial, 'backup_manifest')) as f:
            manifest = json.load(f)

        def read_header(path):
            with open(os.path.join(partial, path), 'rb') as hf:
                head = hf.read(12)
                if len(head) == 12:
                    head += hf.read(4 * struct.unpack('=I', head[4:8])[0])
                return head

        size = restored_size(manifest, read_header)
        meta = make_metadata(label, btype, backups.get(parent), label_info, manifest_wal_end(manifest),
                             stopped, size, 0)
        meta['repo_size'] = tree_size(partial) + len(json.dumps(meta, indent=1)) + 1
        tmp = os.path.join(partial, META + '.tmp')
        with open(tmp, 'w') as f:
            json.dump(meta, f, indent=1)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(partial, META))
        os.rename(partial, backup_dir(cfg, label))
        fsync_dir(backup_dir(cfg))
    except (Failure, Interrupted, OSError, ValueError, KeyError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        log(cfg, 'backup %s FAILED: %s' % (label, e))
        if isinstance(e, Failure):
            raise
        raise Failure('backup %s failed: %s' % (label, e)) from e
    seconds = time.time() - started
    line = 'backup %s (%s, parent %s) %s in %.1fs' % (
        label, btype, parent or 'none', human_size(meta['size']), seconds)
    log(cfg, '%s, stored %s' % (line, human_size(meta['repo_size'])))
    print(line)
    sys.stdout.flush()
    expire(cfg, standalone=False)
    return EXIT_OK


def expire(cfg, standalone=True):  # pylint: disable=too-many-locals,too-many-branches
    """Apply the retention; the caller holds <repo>/.lock (or standalone: take it here)."""
    if standalone:
        fd = lock(os.path.join(cfg['repo'], '.lock'))
        if fd is None:
            raise Failure('a backup is running in %s: run expire again when it has finished' % cfg['repo'],
                          EXIT_USAGE)
    readers = lock(os.path.join(cfg['repo'], '.lock-restore'))
    if readers is None:
        message = 'a restore is reading %s: nothing expired; expire runs again after the next backup' % cfg['repo']
        say(message)
        log(cfg, 'expire skipped: a restore is reading the repository')
        if standalone:
            raise Failure('a restore is reading %s: run expire again when it has finished' % cfg['repo'], EXIT_USAGE)
        return EXIT_OK
    removed = []
    backups = read_backups(cfg)
    for label in retention(backups, cfg['retention_full']):
        shutil.rmtree(backup_dir(cfg, label))
        removed.append(label)
        del backups[label]
    now = time.time()
    try:
        names = os.listdir(backup_dir(cfg))
    except FileNotFoundError:
        names = []
    for name in names:
        path = backup_dir(cfg, name)
        if name.endswith('.partial') and os.path.isdir(path):
            try:
                old = now - os.stat(path).st_mtime > PARTIAL_MAX_AGE
            except OSError:
                old = False
            if old:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
    for name in os.listdir(cfg['repo']):
        match = re.match(r'^\.restore-(\d+)$', name)
        if match and not pid_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(cfg['repo'], name), ignore_errors=True)
            removed.append(name)
    wal_removed = 0
    point = None
    if backups and os.path.isdir(wal_dir(cfg)):
        oldest = backups[min(backups)]
        point = wal_cleanup_point(oldest['archive']['start'], wal_names(cfg))
        rc, _out, err = run([binary(cfg, 'pg_archivecleanup'), '-d', wal_dir(cfg), point])
        if rc != 0:
            raise Failure('pg_archivecleanup failed in %s: %s' % (wal_dir(cfg), last_line(err)))
        wal_removed = sum(1 for line in err.splitlines() if 'removing file' in line)
    os.close(readers)
    line = 'expire: removed %s; WAL: %d file(s) before %s removed' % (
        ', '.join(removed) if removed else 'no backup', wal_removed, point or '-')
    if standalone or removed or wal_removed:
        print(line)
    log(cfg, line)
    return EXIT_OK


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmd_info(cfg, as_json):
    info = shape_info(cfg['stanza'], read_backups(cfg), wal_names(cfg))
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        print(info_table(info))
    return EXIT_OK


def cmd_latest(cfg):
    """The newest backup, whole or not: the drill restores it, so that a broken chain fails the drill instead
    of an older backup passing it."""
    backups = read_backups(cfg)
    if not backups:
        raise Failure('no backup in %s: take a full backup (backup.yml -e backup_type=full)'
                      % backup_dir(cfg), EXIT_USAGE)
    print(max(backups))
    return EXIT_OK


def cmd_check(cfg):
    started = time.time()
    rc, out, err = run([binary(cfg, 'psql'), '-X', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1',
                        '-d', conninfo(cfg, 'dbname=postgres application_name=' + APPLICATION),
                        # a transaction with an xid writes a commit record: the switch is never a no-op
                        '-c', 'SELECT pg_current_xact_id()',
                        '-c', 'SELECT pg_walfile_name(pg_switch_wal())'])
    segment = last_line(out)
    if rc != 0 or not SEGMENT_RE.match(segment):
        raise Failure('the WAL switch on the primary failed: %s; check the conninfo, ~postgres/.pgpass and the '
                      'grant of pg_switch_wal() to the replication role' % (last_line(err) or segment))
    target = os.path.join(wal_dir(cfg), segment)
    deadline = started + cfg['timeout']
    while not os.path.exists(target):
        if time.time() > deadline:
            newest = wal_range(wal_names(cfg))[1]
            message = ('WAL %s did not reach %s within %ds (newest complete segment there: %s): check that '
                       'pg_receivewal is running on slot %s'
                       % (segment, wal_dir(cfg), cfg['timeout'], newest or 'none', cfg['slot']))
            log(cfg, 'check FAILED: ' + message)
            raise Failure(message)
        time.sleep(0.2)
    line = 'WAL %s reached %s in %.1fs' % (segment, wal_dir(cfg), time.time() - started)
    log(cfg, 'check: ' + line)
    print(line)
    return EXIT_OK


def combine_into(cfg, label, dest):
    """Rebuild backup label into dest; returns (label, chain). The caller holds the restore lock."""
    backups = read_backups(cfg)
    try:
        chain, missing = resolve_chain(label, backups)
    except KeyError:
        if label == 'latest':
            raise Failure('no usable backup in %s: take a full backup (backup.yml -e backup_type=full)'
                          % backup_dir(cfg), EXIT_USAGE) from None
        raise Failure('backup %s is not in %s: pick one from `pgha-native info`' % (label, backup_dir(cfg)),
                      EXIT_USAGE) from None
    label = chain[-1]
    if missing:
        raise Failure('backup %s needs %s, which is missing from %s: the chain is broken; take a new full '
                      'backup (backup.yml -e backup_type=full)' % (label, missing[0], backup_dir(cfg)))
    rc, _out, err = run([binary(cfg, 'pg_combinebackup'), '-o', dest] + [backup_dir(cfg, ref) for ref in chain],
                        stdout=sys.stderr.fileno())
    noise = 'contains no entry for file "%s"' % META
    for line in err.splitlines():
        if line.strip() and noise not in line:
            say(line)
    if rc != 0:
        raise Failure('pg_combinebackup failed for backup %s: %s' % (label, last_line(err) or 'rc %d' % rc))
    strip_meta(dest)
    # pg_combinebackup leaves the mode of a DEST that existed (empty) alone; PostgreSQL wants 0700/0750
    try:
        os.chmod(dest, os.stat(backup_dir(cfg, label)).st_mode & 0o750)
    except OSError:
        pass
    return label, chain


def strip_meta(dest):
    """Remove pgha-backup.json from a pg_combinebackup output and from its manifest."""
    manifest = os.path.join(dest, 'backup_manifest')
    try:
        with open(manifest, 'rb') as f:
            data = manifest_without(f.read(), META)
    except FileNotFoundError:
        data = None
    if data is None:
        return
    with open(manifest + '.tmp', 'wb') as f:
        f.write(data)
    os.rename(manifest + '.tmp', manifest)
    try:
        os.unlink(os.path.join(dest, META))
    except FileNotFoundError:
        pass


def cmd_combine(cfg, label, dest):
    dest = os.path.abspath(dest)
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise Failure('%s exists and is not an empty directory: give a new or empty directory' % dest, EXIT_USAGE)
    catch_signals()
    readers = lock(os.path.join(cfg['repo'], '.lock-restore'), shared=True, wait=True)
    started = time.time()
    try:
        label, chain = combine_into(cfg, label, dest)
    except (Failure, Interrupted):
        log(cfg, 'combine %s into %s FAILED' % (label, dest))
        raise
    finally:
        os.close(readers)
    line = 'combined %s into %s from %s in %.1fs' % (label, dest, ' + '.join(chain), time.time() - started)
    log(cfg, line)
    print(line)
    return EXIT_OK


def cmd_restore_stream(cfg, label):
    tmp = os.path.join(cfg['repo'], '.restore-%d' % os.getpid())
    catch_signals()
    readers = lock(os.path.join(cfg['repo'], '.lock-restore'), shared=True, wait=True)
    started = time.time()
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        label, chain = combine_into(cfg, label, tmp)
        sys.stdout.flush()
        rc, _out, err = run(['tar', '-C', tmp, '-cf', '-', '.'], stdout=sys.stdout.fileno())
        if rc != 0:
            raise Failure('tar of backup %s to stdout failed: %s' % (
                label, last_line(err) or ('the reader went away (signal %d)' % -rc if rc < 0 else 'rc %d' % rc)))
    except (Failure, Interrupted) as e:
        log(cfg, 'restore-stream %s FAILED: %s' % (label, e))
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(readers)
    line = 'restore-stream %s (%s) in %.1fs' % (label, ' + '.join(chain), time.time() - started)
    log(cfg, line)
    say(line)
    return EXIT_OK


def cmd_wal_get(cfg, name):
    if not valid_wal_name(name):
        raise Failure('refused: %r is not a WAL segment or .history file name' % name, EXIT_USAGE)
    try:
        f = open(os.path.join(wal_dir(cfg), name), 'rb')
    except FileNotFoundError:
        say('wal-get: %s is not in %s' % (name, wal_dir(cfg)))
        return EXIT_FAIL
    with f:
        shutil.copyfileobj(f, sys.stdout.buffer, 1024 * 1024)
    sys.stdout.buffer.flush()
    return EXIT_OK


def same_content(path, data):
    """Whether the file at path holds exactly data."""
    try:
        with open(path, 'rb') as f:
            return f.read() == data
    except FileNotFoundError:
        return False


def cmd_wal_put(cfg, name, source=None):
    """Store stdin as the WAL file NAME (the members' archive_command, through the SSH trigger): written to a
    temporary name, flushed, then renamed, so that check and wal-get never see half a segment. A file already
    there with the same content is fine (the archiver retries after a lost answer); a different one is refused,
    as PostgreSQL's documentation asks of an archive_command."""
    if not (valid_wal_name(name) or BACKUP_HISTORY_RE.match(name or '')):
        raise Failure('refused: %r is not a WAL segment, .history or .backup file name' % name, EXIT_USAGE)
    data = (source or sys.stdin.buffer).read()
    if SEGMENT_RE.match(name) and len(data) != SEGMENT_SIZE:
        raise Failure('wal-put %s: %d bytes is not a WAL segment of %d (interrupted?); nothing stored'
                      % (name, len(data), SEGMENT_SIZE))
    if not data:
        raise Failure('wal-put %s: empty input; nothing stored' % name)
    final = os.path.join(wal_dir(cfg), name)
    if os.path.exists(final):
        if same_content(final, data):
            return EXIT_OK
        raise Failure('wal-put %s: the archive already holds a different %s; refusing to overwrite it (two primaries '
                      'archiving the same timeline?)' % (name, name))
    tmp = os.path.join(wal_dir(cfg), '.%s.%d.tmp' % (name, os.getpid()))
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(wal_dir(cfg))
    return EXIT_OK


def parser():
    p = argparse.ArgumentParser(prog='pgha-native', description='Native PostgreSQL 17 backups on the backup host.')
    sub = p.add_subparsers(dest='command', required=True, metavar='COMMAND')
    b = sub.add_parser('backup', help='take a backup')
    b.add_argument('type', choices=sorted(TYPES))
    sub.add_parser('expire', help='apply the retention')
    i = sub.add_parser('info', help='list the backups')
    i.add_argument('--json', action='store_true')
    sub.add_parser('check', help='switch WAL and wait for it in the repository')
    c = sub.add_parser('combine', help='rebuild a backup into a directory')
    c.add_argument('label')
    c.add_argument('dest')
    r = sub.add_parser('restore-stream', help='rebuild a backup as a tar stream on stdout')
    r.add_argument('label')
    w = sub.add_parser('wal-get', help='one WAL file to stdout')
    w.add_argument('name')
    wp = sub.add_parser('wal-put', help='store stdin as one WAL file (the archive command)')
    wp.add_argument('name')
    sub.add_parser('latest', help='the newest backup')
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        cfg = load_config()
        if args.command == 'backup':
            return cmd_backup(cfg, args.type)
        if args.command == 'expire':
            return expire(cfg)
        if args.command == 'info':
            return cmd_info(cfg, args.json)
        if args.command == 'check':
            return cmd_check(cfg)
        if args.command == 'combine':
            return cmd_combine(cfg, args.label, args.dest)
        if args.command == 'restore-stream':
            return cmd_restore_stream(cfg, args.label)
        if args.command == 'wal-get':
            return cmd_wal_get(cfg, args.name)
        if args.command == 'wal-put':
            return cmd_wal_put(cfg, args.name)
        return cmd_latest(cfg)
    except Failure as e:
        say(str(e))
        return e.code
    except Interrupted as e:
        say('pgha-native %s stopped by %s; nothing was left behind' % (args.command, e))
        return EXIT_FAIL
    except BrokenPipeError:
        return EXIT_FAIL
    except OSError as e:
        say('pgha-native %s failed: %s; check the paths in the configuration and the permissions of the '
            'repository' % (args.command, e))
        return EXIT_FAIL


if __name__ == '__main__':
    sys.exit(main())

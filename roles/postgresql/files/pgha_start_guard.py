# Managed by Ansible (pgha.cluster.postgresql); its settings are in /etc/pgha/guard.json.
"""pgha start guard: ExecStartPre and ExecStopPost of the PostgreSQL service, and the fence watch.

Without arguments (ExecStartPre): keeps a node that would start as a primary
from doing so when it is fenced, or when a peer of the same cluster is already
on a newer timeline (someone promoted a replica while this node was away).
Starting as a standby (standby.signal present) is always allowed. Exit 0
allows the start. Before any of that (and also where the split-brain check is
off, start_guard false), a node in a crash loop does not start.

With --stopped (ExecStopPost): systemd restarts PostgreSQL by itself after an
abnormal end (Restart=on-abnormal: killed by a signal, a core dump), never
after a stop or an exit with a status (pg_ctlcluster's stop, systemctl stop,
a refusal of this guard). Each abnormal end is recorded; more than
restart_attempts of them within restart_window seconds leave the crash-loop
marker, and this guard then refuses every start until a person removes it.
A clean stop clears the record.

With --watch (pgha-fence-watch.service): every watch_interval seconds, while
the local server runs as a primary, ask the peers the same question. A peer of
the same cluster on a newer timeline means this primary was replaced while it
was cut off (a network partition): leave the fence marker and stop PostgreSQL,
so that it stops accepting writes that rejoin.yml would discard. When no peer
answers, keep running: a lone node cannot tell a partition from dead peers.
"""
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time

# "May this node be a primary?": the collection's one answer (plugins/plugin_utils/primary.py), installed
# in /usr/local/lib/pgha
sys.path.insert(0, '/usr/local/lib/pgha')
import pgha_primary  # noqa: E402  pylint: disable=wrong-import-position

CONFIG = '/etc/pgha/guard.json'


def log(msg):
    print('pgha-start-guard: ' + msg, flush=True)


def controldata(cfg):
    """(system identifier, timeline) of the local data directory. The timeline is the newer of
    the control file's (its last checkpoint's) and the newest history file in pg_wal: right after
    a promotion, until the next checkpoint, only the history file knows the new timeline."""
    out = subprocess.run([os.path.join(cfg['bin_dir'], 'pg_controldata'), cfg['data_dir']],
                         env={'LC_ALL': 'C', 'PATH': '/usr/bin:/bin'}, capture_output=True,
                         text=True, check=True).stdout
    system_id = re.search(r'^Database system identifier:\s+(\d+)', out, re.M).group(1)
    timeline = int(re.search(r"^Latest checkpoint's TimeLineID:\s+(\d+)", out, re.M).group(1))
    wal = os.path.join(cfg['data_dir'], 'pg_wal')
    histories = [int(f[:8], 16) for f in os.listdir(wal) if re.match(r'^[0-9A-F]{8}\.history$', f)]
    return system_id, max([timeline] + histories)


def identify(cfg, peer):
    """Ask a peer through the replication protocol.

    Returns (system identifier, timeline) when it answers, 'down' when its host
    answers but no PostgreSQL listens (connection refused: it cannot be a
    primary), or None when the host does not answer at all.
    """
    conninfo = ('host={host} port={port} user={user} dbname=replication replication=true '
                'connect_timeout=2 sslmode=require').format(user=cfg['user'], **peer)
    try:
        proc = subprocess.run([os.path.join(cfg['bin_dir'], 'psql'), '-XAtq', '-d', conninfo, '-c', 'IDENTIFY_SYSTEM'],
                              env={'PGPASSFILE': cfg['passfile'], 'PATH': '/usr/bin:/bin'},
                              capture_output=True, text=True, timeout=3, check=False)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode == 0 and '|' in proc.stdout:
        fields = proc.stdout.strip().split('|')
        return fields[0], int(fields[1])
    if 'Connection refused' in proc.stderr:
        return 'down'
    return None


def local_state(cfg):
    """(in_recovery, system identifier, current timeline) of the local server, or None when it
    does not answer. A primary's timeline is read from its current WAL file name, which is exact
    from the moment of promotion (the control file lags until the next checkpoint)."""
    sql = ("SELECT pg_is_in_recovery(), (SELECT system_identifier FROM pg_control_system()), "
           "CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(pg_current_wal_lsn()) END")
    try:
        # as postgres (peer authentication on the socket), without a login session to log
        proc = subprocess.run([os.path.join(cfg['bin_dir'], 'psql'), '-XAtq', '-h', cfg['socket_dir'],
                               '-p', str(cfg['port']), '-d', 'postgres', '-c', sql],
                              env={'PATH': '/usr/bin:/bin', 'PGCONNECT_TIMEOUT': '2', 'HOME': cfg['home']},
                              user='postgres', group='postgres', extra_groups=[], capture_output=True, text=True,
                              timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0 or '|' not in proc.stdout:
        return None
    in_recovery, system_id, walfile = proc.stdout.strip().split('|')
    timeline = int(walfile[:8], 16) if walfile else None
    return in_recovery == 't', system_id, timeline


def ask_peers(cfg):
    """[(peer, answer of identify())] for every peer, asked at the same time."""
    peers = cfg['peers']
    if not peers:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(peers)) as pool:
        return list(zip(peers, pool.map(lambda p: identify(cfg, p), peers)))


def watch_once(cfg):
    """One round of the fence watch. Returns True when it fenced this node."""
    state = local_state(cfg)
    if state is None or state[2] is None or not pgha_primary.counts_as_primary(
            'standby' if state[0] else 'primary', os.path.exists(cfg['fence_marker'])):
        return False  # down, or a standby: nothing to watch
    system_id, timeline = state[1], state[2]
    found = pgha_primary.newer_peer(system_id, timeline, ask_peers(cfg))
    if found is None:
        return False
    peer, peer_tl = found
    reason = ('peer %s is on timeline %d, newer than this running primary\'s %d: a replica was promoted '
              'while this node was cut off' % (peer['name'], peer_tl, timeline))
    fence(cfg, reason)
    log('FENCING this running primary: ' + reason)
    proc = stop_service(cfg)
    log('Fenced (%s) and stopped %s (rc %d). Writes it accepted after the fork are not on the new primary. '
        'Make it a replica with rejoin.yml -e rejoin_host=%s' % (cfg['fence_marker'], cfg['service'],
                                                                 proc.returncode, cfg.get('name', 'THIS_HOST')))
    return True


def stop_service(cfg, grace=10):
    """systemctl stop. A primary whose clean shutdown does not finish within grace seconds gets an
    immediate one (SIGQUIT to the postmaster): a logical WAL sender that waits for standbys it cannot
    reach (synchronized_standby_slots) would hold a clean shutdown forever, and this node must send
    nothing more. rejoin.yml rewinds it after crash recovery."""
    env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin'}
    stop = ['systemctl', 'stop', cfg['service']]
    try:
        return subprocess.run(stop, capture_output=True, text=True, check=False, env=env, timeout=grace)
    except subprocess.TimeoutExpired:
        log('the clean shutdown did not finish within %ds (a WAL sender waiting for standbys it cannot reach): '
            'immediate shutdown' % grace)
        subprocess.run(['systemctl', 'kill', '--kill-whom=main', '--signal=SIGQUIT', cfg['service']],
                       capture_output=True, text=True, check=False, env=env)
        return subprocess.run(stop, capture_output=True, text=True, check=False, env=env)


def watch(cfg):
    interval = float(cfg.get('watch_interval', 2))
    log('fence watch: asking %d peer(s) every %ss while this node runs as a primary'
        % (len(cfg['peers']), interval))
    while True:
        try:
            watch_once(cfg)
        except Exception as exc:  # pylint: disable=broad-except
            log('fence watch: round failed: %s' % exc)
        time.sleep(interval)


def fence(cfg, reason):
    with open(cfg['fence_marker'], 'w') as f:
        f.write(json.dumps({'at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                            'by': 'start guard', 'reason': reason}) + '\n')
    os.chmod(cfg['fence_marker'], 0o644)


# --------------------------------------------------------------------------
# Crashes and the crash loop
# --------------------------------------------------------------------------

#: How systemd names the result of a service that ended abnormally ($SERVICE_RESULT in ExecStopPost):
#: the ends Restart=on-abnormal restarts.
ABNORMAL = ('signal', 'core-dump', 'watchdog')


def _read_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        return default


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(json.dumps(data, sort_keys=True) + '\n')
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def record_stop(cfg, environ, now):
    """ExecStopPost: note an abnormal end; leave the crash-loop marker after too many. Returns
    what happened: 'crash', 'crash loop', 'cleared' or 'kept'."""
    result = environ.get('SERVICE_RESULT', '')
    crashes = [c for c in _read_json(cfg['crash_record'], []) if isinstance(c, dict)
               and now - float(c.get('at', 0)) <= float(cfg['restart_window'])]
    if result == 'success':
        if os.path.exists(cfg['crash_record']):
            os.remove(cfg['crash_record'])
        return 'cleared'
    if result not in ABNORMAL:
        return 'kept'    # a start this guard refused, a timeout: not a crash
    crashes.append({'at': now, 'result': result, 'code': environ.get('EXIT_CODE', ''),
                    'status': environ.get('EXIT_STATUS', '')})
    _write_json(cfg['crash_record'], crashes)
    if len(crashes) > int(cfg['restart_attempts']):
        _write_json(cfg['crashloop_marker'], {
            'at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now)), 'crashes': len(crashes),
            'window': int(cfg['restart_window']), 'last': '%s %s' % (crashes[-1]['code'], crashes[-1]['status']),
            'service': cfg['service']})
        # the marker holds the story now; once a person removes it, the count starts again
        os.remove(cfg['crash_record'])
        log('CRASH LOOP: PostgreSQL ended abnormally %d times within %ss (last: %s %s); it is not started again. '
            'Find the cause in journalctl -u %s, then remove %s and start it (systemctl start %s).'
            % (len(crashes), cfg['restart_window'], crashes[-1]['code'], crashes[-1]['status'], cfg['service'],
               cfg['crashloop_marker'], cfg['service']))
        return 'crash loop'
    log('PostgreSQL ended abnormally (%s %s): systemd starts it again (%d of %s within %ss).'
        % (environ.get('EXIT_CODE', ''), environ.get('EXIT_STATUS', ''), len(crashes), cfg['restart_attempts'],
           cfg['restart_window']))
    return 'crash'


def crash_loop_refusal(cfg):
    """The reason not to start (a crash-loop marker), or None."""
    marker = cfg.get('crashloop_marker')
    if not marker or not os.path.exists(marker):
        return None
    info = _read_json(marker, {})
    return ('REFUSING to start: PostgreSQL is in a crash loop (%s abnormal ends within %ss, the last %s; marker %s). '
            'Find the cause in journalctl -u %s, then remove the marker and start it again.'
            % (info.get('crashes', '?'), info.get('window', '?'), info.get('last', '?'), marker, cfg['service']))


def main(argv=None, environ=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(CONFIG) as f:
        cfg = json.load(f)
    if argv == ['--watch']:
        watch(cfg)
        return 0
    if argv == ['--stopped']:
        record_stop(cfg, os.environ if environ is None else environ, time.time())
        return 0
    refusal = crash_loop_refusal(cfg)
    if refusal:
        log(refusal)
        return 1
    if not cfg.get('start_guard', True):
        return 0
    return guard(cfg)


def guard(cfg):
    """The split-brain start check: 0 allows the start (pgha_primary.start_decision decides)."""
    fenced = os.path.exists(cfg['fence_marker'])
    standby = os.path.exists(os.path.join(cfg['data_dir'], 'standby.signal'))
    if fenced:
        with open(cfg['fence_marker']) as f:
            log('REFUSING to start: this node is fenced (%s): %s' % (cfg['fence_marker'], f.read().strip()))
        log('Make it a replica of the current primary with rejoin.yml, which lifts the fence.')
        return 1
    if standby:
        return 0
    if not os.path.exists(os.path.join(cfg['data_dir'], 'global', 'pg_control')):
        return 0  # nothing to start yet; PostgreSQL itself will complain
    system_id, timeline = controldata(cfg)
    deadline = time.monotonic() + cfg['wait_seconds']
    while True:
        answers = ask_peers(cfg)
        decision, reason = pgha_primary.start_decision(False, False, answers, system_id, timeline,
                                                       cfg.get('when_alone', 'start'), bool(cfg['peers']))
        if decision == 'fence':
            fence(cfg, reason)
            log('REFUSING to start as a primary: ' + reason)
            log('Fenced (%s). Run rejoin.yml -e rejoin_host=%s to make this node a replica.'
                % (cfg['fence_marker'], cfg.get('name', 'THIS_HOST')))
            return 1
        answered = [a for _peer, a in answers if a is not None]
        if answered or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if decision == 'refuse':
        log('REFUSING to start as a primary: no peer answered within %ss, so this node cannot know '
            'whether a replica was promoted (postgresql_start_guard_when_alone=refuse).' % cfg['wait_seconds'])
        return 1
    if not answered and cfg['peers']:
        log('WARNING: no peer answered within %ss; starting on timeline %d without a check'
            % (cfg['wait_seconds'], timeline))
    return 0


if __name__ == '__main__':
    sys.exit(main())

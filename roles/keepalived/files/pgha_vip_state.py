# Managed by Ansible (pgha.cluster.keepalived).
"""pgha-vip-state: what keepalived needs to know about the local PostgreSQL, as files.

Every `interval` seconds it asks the local server, over one persistent connection
(the unprivileged check role, peer authentication on the socket), whether it is a
primary or a streaming replica, looks for the fence marker, and writes the
verdicts into `state_dir`, where keepalived's track_file entries pick them up the
moment they change (inotify): a new primary claims the writer VIP a fraction of a
second after its promotion, with no check script to wait for.

  writer   0 a running, unfenced primary (VRRP priority 100)
          50 PostgreSQL stopped or silent on the node that was the primary when it last
             answered: it keeps the VIP at a lower priority (50) until a new primary
             (100) takes it over, so clients are refused at once instead of waiting for
             a timeout; a fence marker or a restart of this daemon ends that
         254 anything else: the writer instance is in FAULT and never holds the VIP
  up       0 PostgreSQL answers and the node is not fenced, 1 otherwise (reader FAULT)
  reader   1 a streaming replica less than reader_max_lag_bytes behind (+50), else 0
  primary  1 a running, unfenced primary (+25 for the reader VIP), else 0

  python3 pgha-vip-state --once     print one verdict as JSON and exit (writes nothing)
  python3 pgha-vip-state --stopped  what systemd runs after the daemon stops: FAULT, or
                                    hold for a node that was the primary
"""
import json
import os
import socket
import sys
import time

# "May this node be a primary?": the collection's one answer (plugins/plugin_utils/primary.py), installed
# beside this program
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgha_primary  # noqa: E402  pylint: disable=wrong-import-position

CONFIG = '/etc/pgha/vip-state.json'
FAULT = 254
HOLD = 50
FILES = ('writer', 'up', 'reader', 'primary')

SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false) AS streaming,
       CASE WHEN pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) END AS replay_lag
"""


def decide(answer, fenced, was_primary, max_lag_bytes):
    """({file: value}, was_primary) from one look at the node.

    answer: None when PostgreSQL did not answer, else {in_recovery, streaming, replay_lag};
    was_primary: whether the node was a running primary at its last answer."""
    role = None if answer is None else ('standby' if answer['in_recovery'] else 'primary')
    writer = pgha_primary.writer_vip_priority(role, fenced, was_primary, FAULT, HOLD)
    if fenced:
        return dict(writer=writer, up=1, reader=0, primary=0), False
    if answer is None:
        return dict(writer=writer, up=1, reader=0, primary=0), was_primary
    if pgha_primary.counts_as_primary(role, fenced):
        return dict(writer=writer, up=0, reader=0, primary=1), True
    lag = answer.get('replay_lag')
    healthy = bool(answer.get('streaming')) and lag is not None and float(lag) < max_lag_bytes
    return dict(writer=writer, up=0, reader=1 if healthy else 0, primary=0), False


def stopped_values(current_writer):
    """What the files say once the daemon is gone: nobody knows the state any more, so FAULT,
    except that a node holding the writer VIP keeps it at the hold priority (a restart of the
    daemon does not drop the VIP; a real primary elsewhere takes it over)."""
    return dict(writer=HOLD if current_writer in (0, HOLD) else FAULT, up=1, reader=0, primary=0)


def read_value(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or FAULT)
    except (OSError, ValueError):
        return None


def write_value(state_dir, name, value):
    """Replace the file (rename: keepalived never reads half a value, and a file keepalived
    created itself with init_file is replaced too)."""
    tmp = os.path.join(state_dir, '.%s.tmp' % name)
    with open(tmp, 'w') as f:
        f.write('%d\n' % value)
    os.chmod(tmp, 0o644)
    os.rename(tmp, os.path.join(state_dir, name))


def publish(state_dir, values):
    """Write the values that differ from what the files hold; return the names written."""
    written = []
    for name in FILES:
        if read_value(os.path.join(state_dir, name)) != values[name]:
            write_value(state_dir, name, values[name])
            written.append(name)
    return written


def notify(message):
    """sd_notify without python3-systemd (READY=1, WATCHDOG=1)."""
    address = os.environ.get('NOTIFY_SOCKET')
    if not address:
        return
    if address.startswith('@'):
        address = '\0' + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(address)
        sock.sendall(message.encode())
    except OSError:
        pass
    finally:
        sock.close()


class Server(object):
    """One persistent connection to the local server; ask() returns None when it does not answer."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.conn = None

    def ask(self):
        import psycopg2  # python3-psycopg2, installed by the postgresql role
        try:
            if self.conn is None:
                self.conn = psycopg2.connect(host=self.cfg['socket_dir'], port=self.cfg['port'],
                                             user=self.cfg['user'], dbname='postgres', connect_timeout=2,
                                             application_name='pgha-vip-state',
                                             options='-c statement_timeout=2000')
                self.conn.autocommit = True
            with self.conn.cursor() as cur:
                cur.execute(SQL)
                in_recovery, streaming, lag = cur.fetchone()
            return dict(in_recovery=in_recovery, streaming=streaming, replay_lag=lag)
        except psycopg2.Error:
            self.close()
            return None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # pylint: disable=broad-except
                pass
        self.conn = None


def log(msg):
    print('pgha-vip-state: ' + msg, flush=True)


def run(cfg):
    """Look, decide, publish; the files are read back (and rewritten when someone else changed them, say
    keepalived's init_file after its restart) every second or so, written at once when the verdict changes."""
    server = Server(cfg)
    was_primary = False
    last = None
    every = max(1, int(round(1.0 / cfg['interval'])))
    rounds = 0
    notify('READY=1')
    while True:
        answer = server.ask()
        fenced = os.path.exists(cfg['fence_marker'])
        values, was_primary = decide(answer, fenced, was_primary, cfg['reader_max_lag_bytes'])
        if values != last or rounds % every == 0:
            written = publish(cfg['state_dir'], values)
            if values != last:
                log('%s: %s%s' % (describe(answer, fenced), ' '.join('%s=%d' % (k, values[k]) for k in FILES),
                                  '' if written else ' (files already said so)'))
                last = values
            notify('WATCHDOG=1')
        rounds += 1
        time.sleep(cfg['interval'])


def describe(answer, fenced):
    if fenced:
        return 'fenced'
    if answer is None:
        return 'PostgreSQL does not answer'
    if not answer['in_recovery']:
        return 'primary'
    return 'standby (%s, %s bytes not replayed)' % ('streaming' if answer['streaming'] else 'not streaming',
                                                    answer['replay_lag'])


def main():
    with open(CONFIG) as f:
        cfg = json.load(f)
    if sys.argv[1:] == ['--once']:
        answer = Server(cfg).ask()
        fenced = os.path.exists(cfg['fence_marker'])
        values = decide(answer, fenced, False, cfg['reader_max_lag_bytes'])[0]
        print(json.dumps(dict(values, state=describe(answer, fenced)), sort_keys=True))
        return 0
    if sys.argv[1:] == ['--stopped']:
        values = stopped_values(read_value(os.path.join(cfg['state_dir'], 'writer')))
        publish(cfg['state_dir'], values)
        log('stopped: ' + ' '.join('%s=%d' % (k, values[k]) for k in FILES))
        return 0
    run(cfg)
    return 0


if __name__ == '__main__':
    sys.exit(main())

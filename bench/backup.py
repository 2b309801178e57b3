"""bench/backup: see the shell wrapper. Uses the lab helpers (lab/lib.sh, through benchlib) for the containers
and the collection's own playbooks for provisioning and the point-in-time restore."""

import json
import os
import subprocess
import sys
import time

import benchlib
from benchlib import as_pg, container, run, write_inventory

WORK = os.path.join(os.environ['PGHA_WORK'], 'bench-backup')
NET, SUBNET = 'pgha-bench-bk', '10.89.63.0/24'
NODES = {'bbk1': '10.89.63.11', 'bbkrepo': '10.89.63.20'}
SCALE = int(os.environ.get('BENCH_SCALE', '150'))
PG_PARENT = '/var/lib/postgresql/17'
DATA = PG_PARENT + '/main'
SERVICE = 'postgresql@17-main'
NATIVE = '/usr/local/sbin/pgha-native'
ENGINES = ('pgbackrest', 'native')
TITLE = {'pgbackrest': 'pgBackRest', 'native': 'native'}
# Archived WAL in the repository (pgBackRest: lz4-compressed segments; native: plain 16 MB segments)
WAL_ARCHIVE = {'pgbackrest': '/var/lib/pgbackrest/archive/main', 'native': '/var/lib/pgbackrest/native/main/wal'}
# The fixed change before the incremental backup, and the writes around the restore target: the same
# pgbench transactions (count, clients, seed) for both engines
CLIENTS = 4
CHANGE_TX = 2500        # per client
PITR_TX = 1000          # per client, once before and once after the restore target
SEED = 42


def psql(sql, db='app'):
    return as_pg('bbk1', 'psql', '-XAtq', '-d', db, '-c', sql)


def timed(fn, *args):
    start = time.monotonic()
    fn(*args)
    return time.monotonic() - start


def pgbench(tx_per_client):
    as_pg('bbk1', 'pgbench', '-n', '-c', str(CLIENTS), '-j', str(CLIENTS), '-t', str(tx_per_client),
          '--random-seed=%d' % SEED, 'app')


def wal_lsn():
    return psql('SELECT pg_current_wal_lsn()')


def wal_since(lsn):
    return int(psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')" % lsn).split('.')[0])


def plain_copy(src, parent, dst, dest):
    """What a DBA would type: tar of <parent>/main (without pg_wal's segments) over SSH into <dest> on the
    other host, container to container over the lab network: no compression, SSH's encryption."""
    script = ("tar -C %s --exclude='main/pg_wal/*' -cf - main | ssh -i /root/.ssh/bench_key -o BatchMode=yes "
              "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@%s "
              "'tar -C %s -xf -'; s=(${PIPESTATUS[@]}); [ ${s[0]} -le 1 ] && [ ${s[1]} -eq 0 ]"
              % (parent, NODES[dst], dest))     # tar: 1 = a file changed while read (a live directory)
    run(src, 'bash', '-c', script)


def copy_key():
    for name in NODES:
        subprocess.run(['podman', 'cp', benchlib.KEY, '%s:/root/.ssh/bench_key' % container(name)], check=True)
        run(name, 'chmod', '0600', '/root/.ssh/bench_key')


def inventory(engine):
    variables = {
        'postgresql_replication_password': 'bench-replication-secret',
        'postgresql_settings': {'shared_buffers': '256MB', 'max_wal_size': '4GB'},
        'pg_primary_databases': [{'name': 'app'}],
        'backup_retention_full': 2,
        'backup_process_max': 2,
        'backup_initial_full': False,      # the benchmark times the first full backup itself
    }
    if engine == 'native':
        variables['backup_engine'] = 'native'
    return write_inventory(os.path.join(WORK, 'hosts-%s.yml' % engine), variables, {
        'primary': {'bbk1': NODES['bbk1']}, 'replicas': {}, 'backup': {'bbkrepo': NODES['bbkrepo']}})


def playbook(inv, name, *extra):
    return benchlib.playbook(WORK, inv, name, *extra)


def backup(engine, btype):
    """One backup on the backup host as postgres, the way the schedule takes it."""
    if engine == 'pgbackrest':
        as_pg('bbkrepo', 'pgbackrest', '--stanza=main', 'backup', '--type=' + btype)
    else:
        as_pg('bbkrepo', 'python3', NATIVE, 'backup', btype)


def newest_backup(engine, btype):
    """The newest backup's entry of `info` (the same JSON shape for both engines); it must be of type btype."""
    if engine == 'pgbackrest':
        out = as_pg('bbkrepo', 'pgbackrest', '--stanza=main', '--output=json', 'info')
    else:
        out = as_pg('bbkrepo', 'python3', NATIVE, 'info', '--json')
    newest = json.loads(out)[0]['backup'][-1]
    if newest['type'] != btype:
        sys.exit('%s: the newest backup %s is a %s backup, not %s' % (engine, newest['label'], newest['type'], btype))
    return newest


def wait_open(timeout=120):
    deadline = time.monotonic() + timeout
    while as_pg('bbk1', 'psql', '-XAtq', '-c', 'SELECT pg_is_in_recovery()', check=False) != 'f':
        if time.monotonic() > deadline:
            sys.exit('PostgreSQL on bbk1 did not open within %ds' % timeout)
        time.sleep(1)


def du(name, path):
    return int(run(name, 'du', '-sb', path).split()[0])


def data_bytes():
    """The data directory without pg_wal: what a backup copies (WAL reaches the repository by archiving)."""
    return int(run('bbk1', 'du', '-sb', '--exclude=pg_wal', DATA).split()[0])


def utc_now_seconds():
    """The primary's clock, truncated to the second, as restore_target takes it."""
    return psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'")


def measure_floor(r):
    """A plain copy of the data directory from the primary to the backup host (the same files a backup reads)."""
    run('bbkrepo', 'rm', '-rf', '/var/tmp/plain')
    run('bbkrepo', 'install', '-d', '/var/tmp/plain')
    copy_key()
    seconds = timed(plain_copy, 'bbk1', PG_PARENT, 'bbkrepo', '/var/tmp/plain')
    stored = du('bbkrepo', '/var/tmp/plain')
    run('bbkrepo', 'rm', '-rf', '/var/tmp/plain')
    print('   plain copy (tar over SSH): %.1fs, %.0f MB' % (seconds, stored / 1e6))
    r['floor_s'], r['floor_b'] = seconds, stored


def measure(engine, with_floor):
    """A, B and C for one engine on fresh containers; returns {measure: value}."""
    r = {}
    print('== %s' % TITLE[engine])
    benchlib.fresh_nodes(NODES, NET, SUBNET)
    inv = inventory(engine)
    r['site'] = playbook(inv, 'site.yml')
    print('   provisioning (site.yml): %.1fs' % r['site'])
    t = time.monotonic()
    as_pg('bbk1', 'pgbench', '-i', '-q', '-s', str(SCALE), 'app')
    psql('CHECKPOINT')
    r['data'] = data_bytes()
    print('   pgbench -i -s %d: data directory %.2f GB without pg_wal, in %.1fs'
          % (SCALE, r['data'] / 1e9, time.monotonic() - t))

    # A. full backup
    r['full_s'] = timed(backup, engine, 'full')
    full = newest_backup(engine, 'full')
    r['full_b'] = full['info']['repository']['delta']
    print('   A. full backup %s: %.1fs, stored %.0f MB' % (full['label'], r['full_s'], r['full_b'] / 1e6))
    if with_floor:
        measure_floor(r)

    # B. incremental backup after a fixed change
    lsn = wal_lsn()
    t = time.monotonic()
    pgbench(CHANGE_TX)
    r['change_s'] = time.monotonic() - t
    r['change_wal'] = wal_since(lsn)
    r['incr_s'] = timed(backup, engine, 'incr')
    incr = newest_backup(engine, 'incr')
    r['incr_b'] = incr['info']['repository']['delta']
    r['wal_archive'] = du('bbkrepo', WAL_ARCHIVE[engine])
    print('   B. pgbench %d x %d tx in %.1fs wrote %.0f MB of WAL; incremental backup %s: %.1fs, stored %.1f MB'
          % (CLIENTS, CHANGE_TX, r['change_s'], r['change_wal'] / 1e6, incr['label'], r['incr_s'], r['incr_b'] / 1e6))

    # C. point-in-time restore with restore.yml: writes after the incremental, the target, more writes
    lsn = wal_lsn()
    pgbench(PITR_TX)
    time.sleep(1.1)                     # every commit so far lies before the target (whole seconds)
    target = utc_now_seconds()
    expected = psql('SELECT count(*) FROM pgbench_history')
    time.sleep(1.1)                     # every later commit lies after it
    pgbench(PITR_TX)
    r['pitr_wal'] = wal_since(lsn)
    r['pitr_s'] = playbook(inv, 'restore.yml', '-e', 'restore_type=time', '-e', "restore_target='%s'" % target,
                           '-e', 'restore_confirm=true')
    wait_open()
    got = psql('SELECT count(*) FROM pgbench_history')
    r['pitr_rows'] = 'ok' if got == expected else 'NO: %s rows, %s at the target' % (got, expected)
    print('   C. PITR to %s (incremental + %.0f MB of WAL written since): restore.yml %.1fs; database open, '
          'pgbench_history as at the target: %s' % (target, r['pitr_wal'] / 1e6, r['pitr_s'], r['pitr_rows']))
    return r


def table(res, floor):
    pb, na = res['pgbackrest'], res['native']
    print('\nscale %d: data directory %.2f GB without pg_wal (pgBackRest lab), %.2f GB (native lab)'
          % (SCALE, pb['data'] / 1e9, na['data'] / 1e9))
    print('change before the incremental: pgbench %d clients x %d tx, WAL written %.0f MB (pgBackRest lab), '
          '%.0f MB (native lab)' % (CLIENTS, CHANGE_TX, pb['change_wal'] / 1e6, na['change_wal'] / 1e6))
    print('floor, plain copy of the data directory (tar over SSH): %.1fs, %.0f MB'
          % (floor['floor_s'], floor['floor_b'] / 1e6))
    rows = [
        ('provisioning, site.yml (s)', 'site', 1, '%.1f'),
        ('A. full backup (s)', 'full_s', 1, '%.1f'),
        ('A. full backup stored (MB)', 'full_b', 1e6, '%.0f'),
        ('B. incremental backup (s)', 'incr_s', 1, '%.1f'),
        ('B. incremental stored (MB)', 'incr_b', 1e6, '%.1f'),
        ('   archived WAL in the repository (MB)', 'wal_archive', 1e6, '%.0f'),
        ('C. point-in-time restore, restore.yml (s)', 'pitr_s', 1, '%.1f'),
    ]
    print('\n%-46s %12s %12s %18s' % ('measure', 'pgBackRest', 'native', 'native/pgBackRest'))
    for name, key, unit, fmt in rows:
        print('%-46s %12s %12s %18.2f' % (name, fmt % (pb[key] / unit), fmt % (na[key] / unit), na[key] / pb[key]))
    print('%-46s %12s %12s' % ('C. database opens, rows as at the target', pb['pitr_rows'], na['pitr_rows']))
    ratios = [
        ('full backup time / plain copy time', lambda r: r['full_s'] / floor['floor_s']),
        ('full stored / plain copy bytes', lambda r: r['full_b'] / floor['floor_b']),
        ('incremental stored / full stored', lambda r: r['incr_b'] / r['full_b']),
        ('incremental stored / WAL of the change', lambda r: r['incr_b'] / r['change_wal']),
        ('incremental time / full time', lambda r: r['incr_s'] / r['full_s']),
        ('restore.yml time / full backup time', lambda r: r['pitr_s'] / r['full_s']),
    ]
    print('\n%-46s %12s %12s' % ('ratio', 'pgBackRest', 'native'))
    for name, fn in ratios:
        print('%-46s %12.2f %12.2f' % (name, fn(pb), fn(na)))


def main():
    os.makedirs(WORK, exist_ok=True)
    res = {}
    try:
        for engine in ENGINES:
            res[engine] = measure(engine, with_floor=engine == ENGINES[0])
            benchlib.remove_nodes(NODES, NET)
    finally:
        benchlib.remove_nodes(NODES, NET)
    table(res, res[ENGINES[0]])


if __name__ == '__main__':
    main()

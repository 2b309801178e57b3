"""bench/backup: see the shell wrapper. Uses the lab helpers (lab/lib.sh) for
the containers and the collection's own playbooks for provisioning and the
point-in-time restore."""

import json
import os
import subprocess
import sys
import time

import benchlib
from benchlib import container, write_inventory

WORK = os.path.join(os.environ['PGHA_WORK'], 'bench-backup')
NET, SUBNET = 'pgha-bench-bk', '10.89.63.0/24'
NODES = {'bbk1': '10.89.63.11', 'bbkrepo': '10.89.63.20'}
SCALE = int(os.environ.get('BENCH_SCALE', '150'))
DATA = '/var/lib/postgresql/15/main'


def run(name, *cmd, check=True):
    """A command inside a container; returns stdout."""
    proc = subprocess.run(['podman', 'exec', container(name)] + list(cmd), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        sys.exit('%s on %s failed (rc %d): %s' % (' '.join(cmd), name, proc.returncode, proc.stderr[-2000:]))
    return proc.stdout.strip()


def as_pg(name, *cmd, check=True):
    return run(name, 'runuser', '-u', 'postgres', '--', *cmd, check=check)


def psql(sql, db='app'):
    return as_pg('bbk1', 'psql', '-XAtq', '-d', db, '-c', sql)


def timed(fn, *args):
    start = time.monotonic()
    fn(*args)
    return time.monotonic() - start


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


def inventory():
    return write_inventory(os.path.join(WORK, 'hosts.yml'), {
        'postgresql_replication_password': 'bench-replication-secret',
        'postgresql_settings': {'shared_buffers': '256MB', 'max_wal_size': '4GB'},
        'pg_primary_databases': [{'name': 'app'}],
        'backup_retention_full': 2,
        'backup_process_max': 2,
        'backup_initial_full': False,
    }, {'primary': {'bbk1': NODES['bbk1']}, 'replicas': {}, 'backup': {'bbkrepo': NODES['bbkrepo']}})


def playbook(inv, name, *extra):
    return benchlib.playbook(WORK, inv, name, *extra)


def wait_open(timeout=120):
    deadline = time.monotonic() + timeout
    while as_pg('bbk1', 'psql', '-XAtq', '-c', 'SELECT pg_is_in_recovery()', check=False) != 'f':
        if time.monotonic() > deadline:
            sys.exit('PostgreSQL on bbk1 did not open within %ds' % timeout)
        time.sleep(1)


def data_bytes():
    """The data directory without pg_wal: what a backup copies (WAL reaches the repository by archiving)."""
    return int(run('bbk1', 'du', '-sb', '--exclude=pg_wal', DATA).split()[0])


def main():
    os.makedirs(WORK, exist_ok=True)
    results = []
    try:
        benchlib.fresh_nodes(NODES, NET, SUBNET)
        inv = inventory()
        print('== provisioning with backups (site.yml): %.1fs' % playbook(inv, 'site.yml'))
        t = time.monotonic()
        as_pg('bbk1', 'pgbench', '-i', '-q', '-s', str(SCALE), 'app')
        psql('CHECKPOINT')
        size = data_bytes()
        print('== pgbench -i -s %d: data directory %.2f GB without pg_wal, in %.1fs'
              % (SCALE, size / 1e9, time.monotonic() - t))
        gb = size / 1e9

        # A. full backup (pgBackRest on the backup host, TLS from the primary, lz4) vs plain copy (tar over SSH)
        full = timed(as_pg, 'bbkrepo', 'pgbackrest', '--stanza=main', 'backup', '--type=full')
        info = json.loads(as_pg('bbkrepo', 'pgbackrest', '--stanza=main', '--output=json', 'info'))[0]
        stored = info['backup'][-1]['info']['repository']['delta']
        run('bbkrepo', 'rm', '-rf', '/var/tmp/plain')
        run('bbkrepo', 'install', '-d', '/var/tmp/plain')
        # the same files pgBackRest copies: the data directory without pg_wal's segments
        copy_key()
        plain = timed(plain_copy, 'bbk1', '/var/lib/postgresql/15', 'bbkrepo', '/var/tmp/plain')
        results.append(('full backup, pgBackRest (s)', full, '%.0f MB/s' % (size / 1e6 / full)))
        results.append(('plain copy of the data directory, tar (s)', plain, '%.0f MB/s' % (size / 1e6 / plain)))
        print('== full backup %.1fs (stored %.2f GB), plain copy %.1fs' % (full, stored / 1e9, plain))

        # B. restore into an empty data directory vs the plain copy back
        run('bbk1', 'systemctl', 'stop', 'postgresql@15-main')
        run('bbk1', 'mv', DATA, DATA + '.bench-old')
        restore = timed(as_pg, 'bbk1', 'pgbackrest', '--stanza=main', '--type=immediate', '--target-action=promote',
                        'restore')
        run('bbk1', 'rm', '-rf', '/var/tmp/plain-restore')
        run('bbk1', 'install', '-d', '/var/tmp/plain-restore')
        plain_back = timed(plain_copy, 'bbkrepo', '/var/tmp/plain', 'bbk1', '/var/tmp/plain-restore')
        run('bbk1', 'rm', '-rf', '/var/tmp/plain-restore', DATA + '.bench-old')
        run('bbkrepo', 'rm', '-rf', '/var/tmp/plain')
        results.append(('restore, pgBackRest into an empty directory (s)', restore, '%.0f MB/s' % (size / 1e6 / restore)))
        results.append(('plain copy back, tar (s)', plain_back, '%.0f MB/s' % (size / 1e6 / plain_back)))
        run('bbk1', 'systemctl', 'start', 'postgresql@15-main')
        wait_open()
        run('bbk1', 'systemctl', 'stop', 'postgresql@15-main')
        delta = timed(as_pg, 'bbk1', 'pgbackrest', '--stanza=main', '--delta', '--type=immediate',
                      '--target-action=promote', 'restore')
        run('bbk1', 'systemctl', 'start', 'postgresql@15-main')
        results.append(('restore --delta over an intact data directory (s)', delta, 'checksums only'))
        print('== restore %.1fs, plain copy back %.1fs, delta restore %.1fs' % (restore, plain_back, delta))

        # C. point-in-time restore with restore.yml: 30 s of pgbench writes, target in the middle
        wait_open()
        lsn0 = psql('SELECT pg_current_wal_lsn()')
        writer = subprocess.Popen(['podman', 'exec', container('bbk1'), 'runuser', '-u', 'postgres', '--', 'pgbench',
                                   '-n', '-c', '4', '-T', '30', 'app'], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(15)
        target = psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'")
        writer.wait()
        wal = int(psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')" % lsn0).split('.')[0])
        pitr = playbook(inv, 'restore.yml', '-e', 'restore_type=time', '-e', "restore_target='%s'" % target,
                        '-e', 'restore_confirm=true')
        results.append(('point-in-time restore, restore.yml wall time (s)', pitr,
                        'full + %.0f MB of WAL written meanwhile' % (wal / 1e6)))
        print('== PITR to %s: restore.yml %.1fs' % (target, pitr))

        print('\n%-52s %8s  %s' % ('measure (data %.2f GB without pg_wal, scale %d)' % (gb, SCALE), 'seconds', ''))
        for name, value, note in results:
            print('%-52s %8.1f  %s' % (name, value, note))
        print('ratio full backup / plain copy:        %.2f (stored %.0f%% of the size, lz4)' % (
            full / plain, 100.0 * stored / size))
        print('ratio restore / plain copy back:       %.2f' % (restore / plain_back))
        print('ratio delta restore / full restore:    %.2f' % (delta / restore))
    finally:
        benchlib.remove_nodes(NODES, NET)


if __name__ == '__main__':
    main()

"""bench/upgrade: see the shell wrapper. Lab containers through lab/lib.sh (benchlib), the collection's own
playbooks for provisioning (site.yml) and for the upgrade (upgrade.yml)."""

import os
import re
import subprocess
import sys
import threading
import time

import benchlib
from benchlib import as_pg, container, run, write_inventory

WORK = os.path.join(os.environ['PGHA_WORK'], 'bench-upgrade')
NET, SUBNET = 'pgha-bench-up', '10.89.64.0/24'
OLD, NEW = 'bup15', 'bup17'
NODES = {OLD: '10.89.64.11', NEW: '10.89.64.21'}
IMAGES = {OLD: 'localhost/pgha-debian12:latest', NEW: 'localhost/pgha-debian13:latest'}
VIP = '10.89.64.100'
SCALE = int(os.environ.get('BENCH_SCALE', '150'))
APP_PASSWORD = 'bench-app-secret'
PUBLICATION = {'name': 'pgha_upgrade', 'database': 'app', 'all_tables': True}


def psql(name, sql, db='app'):
    return as_pg(name, 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql)


def fresh_nodes():
    """Debian 12 for the old primary, Debian 13 for the new one (lab_node takes the image from PGHA_IMAGE)."""
    benchlib.sh('lab_rm %s; lab_network %s %s; lab_key; %s; lab_wait_ssh %s' % (
        ' '.join(container(n) for n in NODES), NET, SUBNET,
        '; '.join('PGHA_IMAGE=%s lab_node %s %s %s %s' % (IMAGES[n], container(n), n, NET, ip)
                  for n, ip in NODES.items()),
        ' '.join(NODES.values())))


def inventories():
    common = {
        'postgresql_replication_password': 'bench-replication-secret',
        'postgresql_settings': {'shared_buffers': '256MB', 'max_wal_size': '4GB'},
        'pg_primary_databases': [{'name': 'app'}],
        'pg_primary_users': [{'name': 'app', 'password': APP_PASSWORD, 'db': 'app'}],
        'postgresql_hba_entries': [{'contype': 'hostssl', 'databases': 'app', 'users': 'app', 'source': SUBNET,
                                    'method': 'scram-sha-256'}],
        'keepalived_writer_vip': VIP + '/24', 'keepalived_writer_router_id': 81, 'keepalived_reader_router_id': 82,
        'logical_publications': [PUBLICATION], 'logical_password': 'bench-logical-secret',
    }
    old = write_inventory(os.path.join(WORK, 'old.yml'), dict(
        common, postgresql_version=15, logical_subscriber_sources=[NODES[NEW] + '/32']),
        {'primary': {OLD: NODES[OLD]}, 'replicas': {}})
    new = write_inventory(os.path.join(WORK, 'new.yml'), dict(
        common, postgresql_version=17, logical_subscriber_sources=[NODES[OLD] + '/32']),
        {'primary': {NEW: NODES[NEW]}, 'replicas': {}, 'upgrade_source': {OLD: NODES[OLD]}})
    return old, new


class Client(threading.Thread):
    """One row per commit through the writer VIP; the time of every acknowledged commit."""

    def __init__(self):
        super().__init__(daemon=True)
        self.acked, self.stop, self.next_id = [], threading.Event(), 1

    def run(self):
        import psycopg2
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(host=VIP, user='app', password=APP_PASSWORD, dbname='app',
                                            connect_timeout=2, sslmode='require')
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute('INSERT INTO acked (id) VALUES (%s)', (self.next_id,))
                self.acked.append((self.next_id, time.monotonic()))
            except Exception:  # pylint: disable=broad-except
                conn = None
                time.sleep(0.05)
            self.next_id += 1

    def longest_gap(self):
        times = [at for _id, at in self.acked]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def floor_dump_restore():
    """pg_dump -Fc on the old primary piped over SSH into pg_restore on the new one (a database of its own)."""
    for name in NODES:
        subprocess.run(['podman', 'cp', benchlib.KEY, '%s:/root/.ssh/bench_key' % container(name)], check=True)
        run(name, 'chmod', '0600', '/root/.ssh/bench_key')
    psql(NEW, 'DROP DATABASE IF EXISTS app_floor', db='postgres')
    psql(NEW, 'CREATE DATABASE app_floor OWNER app', db='postgres')
    script = ("runuser -u postgres -- pg_dump -Fc app | ssh -i /root/.ssh/bench_key -o BatchMode=yes "
              "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@%s "
              "'runuser -u postgres -- pg_restore --no-owner -d app_floor'; s=(${PIPESTATUS[@]}); "
              "[ ${s[0]} -eq 0 ] && [ ${s[1]} -eq 0 ]" % NODES[NEW])
    start = time.monotonic()
    run(OLD, 'bash', '-c', script)
    took = time.monotonic() - start
    psql(NEW, 'DROP DATABASE app_floor', db='postgres')
    return took


def main():
    os.makedirs(WORK, exist_ok=True)
    try:
        fresh_nodes()
        old_inv, new_inv = inventories()
        t = benchlib.playbook(WORK, old_inv, 'site.yml')
        print('old primary (Debian 12, PostgreSQL 15) provisioned by site.yml in %.1fs' % t)
        start = time.monotonic()
        as_pg(OLD, 'pgbench', '-i', '-q', '-s', str(SCALE), 'app')
        psql(OLD, 'ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY; '
                  'CREATE TABLE acked (id bigint PRIMARY KEY, at timestamptz DEFAULT now()); '
                  'GRANT INSERT ON acked TO app; CHECKPOINT')
        size = int(psql(OLD, "SELECT pg_database_size('app')"))
        print('pgbench -i -s %d (pgbench_history given a primary key): database app %.2f GB, in %.1fs'
              % (SCALE, size / 1e9, time.monotonic() - start))
        benchlib.playbook(WORK, old_inv, 'site.yml')          # the publication's grants on the new tables
        t = benchlib.playbook(WORK, new_inv, 'site.yml')
        print('new primary (Debian 13, PostgreSQL 17) provisioned by site.yml in %.1fs (writer VIP held back)' % t)

        floor = floor_dump_restore()
        print('floor: pg_dump | pg_restore of database app into the new primary: %.1fs' % floor)

        load = subprocess.Popen(['podman', 'exec', container(OLD), 'runuser', '-u', 'postgres', '--', 'pgbench',
                                 '-n', '-c', '2', '-j', '2', '-T', '3600', 'app'],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Client()
        client.start()
        time.sleep(2)
        took = benchlib.playbook(WORK, new_inv, 'upgrade.yml')
        time.sleep(2)
        client.stop.set()
        client.join(10)
        load.kill()
        with open(benchlib.LAST_LOG['upgrade.yml']) as f:
            log = f.read()
        downtime = float(re.search(r'write downtime: ([0-9.]+) s', log).group(1))
        acked = [i for i, _at in client.acked]
        present = set(int(x) for x in psql(NEW, 'SELECT id FROM acked').split())
        lost = len(set(acked) - present)
        print('upgrade.yml: %.1fs in all; write downtime %.1fs (summary), longest gap between two acknowledged '
              'commits through the VIP %.1fs; %d commits acknowledged, %d missing on 17'
              % (took, downtime, client.longest_gap(), len(acked), lost))
        print('timing (s): %s' % benchlib.timing_line('upgrade.yml'))
        print('\n%-58s %8s' % ('ratio (this run)', 'value'))
        print('%-58s %8.3f' % ('write downtime, upgrade.yml / dump+restore', downtime / floor))
        print('%-58s %8.3f' % ('write gap seen by the client / dump+restore', client.longest_gap() / floor))
        print('%-58s %8.2f' % ('upgrade.yml total / dump+restore', took / floor))
        if lost:
            sys.exit('%d acknowledged commits are missing on the new primary' % lost)
    finally:
        benchlib.remove_nodes(NODES, NET)


if __name__ == '__main__':
    main()

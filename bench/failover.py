"""bench/failover: see the shell wrapper. Uses the lab helpers (lab/lib.sh) for
the containers and the collection's own playbooks for everything else."""

import os
import subprocess
import threading
import time

import psycopg2

import benchlib
from benchlib import container, sh, write_inventory

WORK = os.path.join(os.environ['PGHA_WORK'], 'bench-failover')
NET, SUBNET = 'pgha-bench-fo', '10.89.62.0/24'
NODES = {'bfo1': '10.89.62.11', 'bfo2': '10.89.62.12', 'bfo3': '10.89.62.13'}
VIP = '10.89.62.100'
SCALE = int(os.environ.get('BENCH_SCALE', '150'))


def inventory(primary, engine='manual'):
    return write_inventory(os.path.join(WORK, 'hosts-%s-%s.yml' % (engine, primary)), {
        'postgresql_failover_engine': engine, 'patroni_rto': 'fast', 'patroni_restapi_password': 'bench-api-secret',
        'postgresql_replication_password': 'bench-replication-secret',
        'postgresql_settings': {'shared_buffers': '256MB', 'max_wal_size': '4GB', 'synchronous_commit': 'on'},
        # as the lab: each commit waits for one of the two standbys
        'postgresql_synchronous_mode': 'any', 'postgresql_synchronous_count': 1,
        'pg_primary_databases': [{'name': 'app'}],
        'pg_primary_users': [{'name': 'app', 'password': 'bench-app', 'db': 'app'}],
        'postgresql_hba_entries': [{'contype': 'hostssl', 'databases': 'app', 'users': 'app',
                                    'source': SUBNET, 'method': 'scram-sha-256'}],
        'keepalived_writer_vip': VIP + '/24',
        'keepalived_writer_router_id': 71, 'keepalived_reader_router_id': 72,
    }, {'primary': {primary: NODES[primary]},
        'replicas': dict((r, NODES[r]) for r in NODES if r != primary)})


def playbook(inv, name, *extra):
    return benchlib.playbook(WORK, inv, name, *extra)


class Probe(threading.Thread):
    """Writes one row through the VIP every 50 ms; keeps the times of successes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ok = []
        self.failed = []
        self.stop = threading.Event()

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(host=VIP, user='app', password='bench-app', dbname='app',
                                            connect_timeout=1, sslmode='require')
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute('INSERT INTO probe DEFAULT VALUES')
                self.ok.append(time.monotonic())
            except Exception:  # pylint: disable=broad-except
                self.failed.append(time.monotonic())
                conn = None
            time.sleep(0.05)

    def back_after(self, t):
        """The first successful write after the first failure after t (writes in flight at t may still land)."""
        first_fail = next((x for x in self.failed if x > t), t)
        return next((x for x in self.ok if x > first_fail), None)

    def longest_gap(self, t0, t1):
        pts = [x for x in self.ok if t0 - 1 <= x <= t1]
        return max((b - a for a, b in zip(pts, pts[1:])), default=float('nan'))


def psql(node, sql, db='app'):
    return subprocess.run(['podman', 'exec', container(node), 'runuser', '-u', 'postgres', '--', 'psql', '-XAtq',
                           '-d', db, '-c', sql], check=True, capture_output=True, text=True).stdout.strip()


def keepalived_writer_times(node, since):
    """Wall times at which the node's writer instance left FAULT (its check passed: PostgreSQL is a
    primary) and became MASTER (it holds the VIP), after the wall time since; None when not seen."""
    out = subprocess.run(['podman', 'exec', container(node), 'journalctl', '-u', 'keepalived', '-o', 'short-unix',
                          '--no-pager', '--since', '@%d' % int(since)], capture_output=True, text=True,
                         check=False).stdout
    left_fault = master = None
    for line in out.splitlines():
        at = float(line.split()[0])
        if at < since:
            continue
        if '(pg_writer) Entering BACKUP STATE' in line and left_fault is None:
            left_fault = at
        if '(pg_writer) Entering MASTER STATE' in line and master is None:
            master = at
    return left_fault, master


def patronictl(node, *args):
    return subprocess.run(['podman', 'exec', container(node), 'patronictl', '-c', '/etc/patroni/config.yml'] + list(args),
                          check=True, capture_output=True, text=True).stdout


def patroni_leader(nodes):
    for n in nodes:
        try:
            out = patronictl(n, 'list', '-f', 'json')
        except subprocess.CalledProcessError:
            continue
        import json
        found = [m['Member'] for m in json.loads(out) if m['Role'] == 'Leader']
        if found:
            return found[0]
    return None


def patroni_phase(probe, primary):
    """site.yml with postgresql_failover_engine=patroni on the running cluster, then a postmaster crash, a
    switchover and a killed primary's container, all decided by Patroni; {measure: seconds}."""
    out = {}
    t0 = time.monotonic()
    took = playbook(inventory(primary, 'patroni'), 'site.yml')
    out['hand-over write gap'] = probe.longest_gap(t0, time.monotonic())
    print('== hand-over to Patroni (site.yml): %.1fs, longest write gap %.1fs' % (took, out['hand-over write gap']))
    time.sleep(3)
    pid = subprocess.run(['podman', 'exec', container(primary), 'head', '-1', '/var/lib/postgresql/17/main/postmaster.pid'],
                         check=True, capture_output=True, text=True).stdout.strip()
    t_kill = time.monotonic()
    subprocess.run(['podman', 'exec', container(primary), 'kill', '-9', pid], check=True, capture_output=True)
    while probe.back_after(t_kill) is None and time.monotonic() - t_kill < 90:
        time.sleep(0.1)
    out['postmaster crash -> first write'] = probe.back_after(t_kill) - t_kill
    print('== patroni: postmaster killed: writes back %.1fs after the kill' % out['postmaster crash -> first write'])
    time.sleep(5)
    candidate = next(n for n in NODES if n != primary)
    t0 = time.monotonic()
    patronictl(primary, 'switchover', '--leader', primary, '--candidate', candidate, '--force')
    while patroni_leader(NODES) != candidate and time.monotonic() - t0 < 90:
        time.sleep(0.5)
    time.sleep(3)
    out['switchover write gap'] = probe.longest_gap(t0, time.monotonic())
    print('== patroni: switchover to %s, longest write gap %.1fs' % (candidate, out['switchover write gap']))
    time.sleep(5)
    t_kill = time.monotonic()
    subprocess.run(['podman', 'kill', container(candidate)], check=True, capture_output=True)
    while probe.back_after(t_kill) is None and time.monotonic() - t_kill < 120:
        time.sleep(0.1)
    out['kill -> first write'] = probe.back_after(t_kill) - t_kill
    print('== patroni: primary container killed: writes back %.1fs after the kill (no runbook)' % out['kill -> first write'])
    return out


def main():
    os.makedirs(WORK, exist_ok=True)
    results = []
    breakdown = []
    try:
        benchlib.fresh_nodes(NODES, NET, SUBNET)
        inv = inventory('bfo1')
        print('== provisioning (site.yml): %.1fs' % playbook(inv, 'site.yml'))
        t = time.monotonic()
        subprocess.run(['podman', 'exec', container('bfo1'), 'runuser', '-u', 'postgres', '--', 'pgbench', '-i',
                        '-q', '-s', str(SCALE), 'app'], check=True, capture_output=True)
        psql('bfo1', 'CREATE TABLE probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT now()); '
                     'GRANT INSERT, SELECT ON probe TO app; GRANT USAGE ON SEQUENCE probe_id_seq TO app')
        # steady state: the load is checkpointed, as on a cluster that has been running a while
        psql('bfo1', 'CHECKPOINT')
        size = psql('bfo1', "SELECT pg_size_pretty(pg_database_size('app'))")
        print('== pgbench -i -s %d: %s in %.1fs' % (SCALE, size, time.monotonic() - t))
        probe = Probe()
        probe.start()
        time.sleep(2)

        # 0. the primary's postmaster killed (kill -9): systemd starts it again, no runbook
        t_kill = time.monotonic()
        pid = subprocess.run(['podman', 'exec', container('bfo1'), 'head', '-1', '/var/lib/postgresql/17/main/postmaster.pid'],
                             check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(['podman', 'exec', container('bfo1'), 'kill', '-9', pid], check=True, capture_output=True)
        while probe.back_after(t_kill) is None and time.monotonic() - t_kill < 60:
            time.sleep(0.1)
        first = probe.back_after(t_kill)
        results.append(('postmaster kill -9 -> first write through the VIP', first - t_kill))
        print('== postmaster killed on bfo1: writes back %.1fs after the kill (restarted in place)' % (first - t_kill))
        time.sleep(2)

        # 1. failover: kill the primary, run promote.yml at once
        t_kill, wall_kill = time.monotonic(), time.time()
        subprocess.run(['podman', 'kill', container('bfo1')], check=True, capture_output=True)
        took = playbook(inv, 'promote.yml')
        first = probe.back_after(t_kill)
        results.append(('failover: promote.yml wall time', took))
        results.append(('failover: kill -> first write through the VIP', first - t_kill))
        new = next(n for n in ('bfo2', 'bfo3') if psql(n, 'SELECT pg_is_in_recovery()') == 'f')
        breakdown.append(('failover', benchlib.timing_line('promote.yml')))
        left_fault, master = keepalived_writer_times(new, wall_kill)
        breakdown.append(('failover VIP', 'kill -> writer check passes on %s %s s, -> it holds the VIP %s s' % (
            new, '%.1f' % (left_fault - wall_kill) if left_fault else '?', '%.1f' % (master - wall_kill) if master else '?')))
        print('== failover to %s: promote.yml %.1fs, writes back %.1fs after the kill' % (new, took, first - t_kill))
        print('   promote.yml timing (s): %s' % breakdown[-2][1])
        print('   %s' % breakdown[-1][1])

        # 2. rejoin the killed primary by pg_rewind
        subprocess.run(['podman', 'start', container('bfo1')], check=True, capture_output=True)
        sh('lab_node %s bfo1 %s %s; lab_wait_ssh %s' % (container('bfo1'), NET, NODES['bfo1'], NODES['bfo1']))
        inv = inventory(new)
        rewind = playbook(inv, 'rejoin.yml', '-e', 'rejoin_host=bfo1')
        results.append(('rejoin bfo1 by pg_rewind', rewind))
        print('== rejoin by rewind: %.1fs' % rewind)

        # 3. switchover back to bfo1, writes probed throughout
        t0 = time.monotonic()
        took = playbook(inv, 'switchover.yml', '-e', 'switchover_candidate=bfo1')
        t1 = time.monotonic()
        time.sleep(2)
        results.append(('switchover: switchover.yml wall time', took))
        results.append(('switchover: longest gap between probe writes', probe.longest_gap(t0, t1 + 2)))
        breakdown.append(('switchover', benchlib.timing_line('switchover.yml')))
        print('== switchover to bfo1: %.1fs, longest write gap %.1fs' % (took, probe.longest_gap(t0, t1 + 2)))
        inv = inventory('bfo1')

        # 4. a second failover, then rejoin by a full re-clone
        t_kill = time.monotonic()
        subprocess.run(['podman', 'kill', container('bfo1')], check=True, capture_output=True)
        took = playbook(inv, 'promote.yml')
        first = probe.back_after(t_kill)
        results.append(('failover #2: promote.yml wall time', took))
        results.append(('failover #2: kill -> first write through the VIP', first - t_kill))
        breakdown.append(('failover #2', benchlib.timing_line('promote.yml')))
        new = next(n for n in ('bfo2', 'bfo3') if psql(n, 'SELECT pg_is_in_recovery()') == 'f')
        subprocess.run(['podman', 'start', container('bfo1')], check=True, capture_output=True)
        sh('lab_node %s bfo1 %s %s; lab_wait_ssh %s' % (container('bfo1'), NET, NODES['bfo1'], NODES['bfo1']))
        inv = inventory(new)
        reclone = playbook(inv, 'rejoin.yml', '-e', 'rejoin_host=bfo1', '-e', 'rejoin_method=reclone')
        results.append(('rejoin bfo1 by full re-clone', reclone))
        time.sleep(2)

        # 5. both standbys stopped: commits hang; sync_relax.yml lets them through, then restores
        standbys = [n for n in NODES if n != new]
        for n in standbys:
            subprocess.run(['podman', 'exec', container(n), 'systemctl', 'stop', 'postgresql@17-main'], check=True,
                           capture_output=True)
        time.sleep(2)
        t_relax = time.monotonic()
        took = playbook(inv, 'sync_relax.yml')
        while not [x for x in probe.ok if x > t_relax] and time.monotonic() - t_relax < 60:
            time.sleep(0.1)
        first = next(x for x in probe.ok if x > t_relax)
        results.append(('sync_relax.yml start -> first write through the VIP', first - t_relax))
        breakdown.append(('relax', benchlib.timing_line('sync_relax.yml')))
        print('== both standbys stopped, sync_relax.yml %.1fs: writes back %.1fs after it started' % (took, first - t_relax))
        for n in standbys:
            subprocess.run(['podman', 'exec', container(n), 'systemctl', 'start', 'postgresql@17-main'], check=True,
                           capture_output=True)
        time.sleep(3)
        results.append(('sync_relax.yml restore wall time', playbook(inv, 'sync_relax.yml', '-e',
                                                                     'sync_relax_action=restore')))

        # 6. the same cluster handed over to Patroni (site.yml, no re-clone), then Patroni's own reactions
        patroni = patroni_phase(probe, new)
        probe.stop.set()

        print('\n%-52s %8s' % ('measure (database %s, scale %d)' % (size, SCALE), 'seconds'))
        for name, value in results:
            print('%-52s %8.1f' % (name, value))
        print('ratio re-clone / rewind: %.1f' % (reclone / rewind))
        by_name = dict(results)
        print('ratio kill->writes / 5 s aim: %.2f (promote.yml started right after the kill)'
              % (by_name['failover: kill -> first write through the VIP'] / 5.0))
        print('ratio switchover write gap / 1 s aim: %.2f' % (by_name['switchover: longest gap between probe writes'] / 1.0))
        print('ratio postmaster kill->writes / 10 s bound: %.2f' % (by_name['postmaster kill -9 -> first write through the VIP'] / 10.0))
        print('ratio postmaster kill->writes / host kill + promote.yml: %.2f'
              % (by_name['postmaster kill -9 -> first write through the VIP'] / by_name['failover: kill -> first write through the VIP']))
        print('\nboth engines, one run (s)                              manual   patroni')
        for what, manual_key in (('kill -> first write', 'failover: kill -> first write through the VIP'),
                                 ('switchover write gap', 'switchover: longest gap between probe writes'),
                                 ('postmaster crash -> first write', 'postmaster kill -9 -> first write through the VIP')):
            print('  %-50s %8.1f %8.1f' % (what, by_name[manual_key], patroni[what]))
        print('  %-50s %8s %8.1f' % ('hand-over to Patroni: write gap', '-', patroni['hand-over write gap']))
        print('ratio patroni / manual kill -> first write (no person in the loop vs promote.yml at once): %.2f'
              % (patroni['kill -> first write'] / by_name['failover: kill -> first write through the VIP']))
        print('\nwhere the seconds went (the runbooks\' summaries; before the first step: Ansible\'s start-up)')
        for name, line in breakdown:
            print('  %-12s %s' % (name, line))
    finally:
        benchlib.remove_nodes(NODES, NET)


if __name__ == '__main__':
    main()

"""bench/pgpool: see the shell wrapper. Lab containers through lab/lib.sh (benchlib), the collection's own
site.yml for provisioning."""

import os
import re
import subprocess
import time

import benchlib
from benchlib import as_pg, container, run, write_inventory

WORK = os.path.join(os.environ['PGHA_WORK'], 'bench-pgpool')
NET, SUBNET = 'pgha-bench-pool', '10.89.65.0/24'
NODES = {'bpg1': '10.89.65.11', 'bpg2': '10.89.65.12', 'bpg3': '10.89.65.13',
         'bpool1': '10.89.65.21', 'bpool2': '10.89.65.22', 'bclient': '10.89.65.30'}
POOL_VIP = '10.89.65.50'
SCALE = int(os.environ.get('BENCH_SCALE', '20'))
CLIENTS = int(os.environ.get('BENCH_CLIENTS', '8'))
SECONDS = int(os.environ.get('BENCH_SECONDS', '20'))
APP_PASSWORD = 'bench-app-secret'
PCP = ['env', 'PCPPASSFILE=/root/.pgha-pcppass', '%s', '-h', 'localhost', '-p', '9898', '-U', 'pgha_pcp', '-w']


def pcp(name, command, *args):
    return run(name, *[command if a == '%s' else a for a in PCP] + list(args))


def select_only(host, port):
    """pgbench -S from the client container; its transactions per second."""
    out = run('bclient', 'env', 'PGPASSWORD=' + APP_PASSWORD, '/usr/lib/postgresql/17/bin/pgbench', '-n', '-S',
              '-c', str(CLIENTS), '-j', '2', '-T', str(SECONDS),
              'host=%s port=%d dbname=app user=app sslmode=require' % (host, port))
    return float(re.search(r'tps = ([0-9.]+)', out).group(1))


def answers():
    proc = subprocess.run(['podman', 'exec', container('bclient'), 'env', 'PGPASSWORD=' + APP_PASSWORD, 'psql',
                           '-XAtq', '-c', 'SELECT 1', 'host=%s port=9999 dbname=app user=app sslmode=require '
                           'connect_timeout=1' % POOL_VIP], capture_output=True, text=True, check=False)
    return proc.returncode == 0


def holder():
    for name in ('bpool1', 'bpool2'):
        if (' %s/' % POOL_VIP) in run(name, 'ip', '-o', '-4', 'addr', 'show', check=False):
            return name
    return None


def main():
    os.makedirs(WORK, exist_ok=True)
    benchlib.fresh_nodes(NODES, NET, SUBNET)
    try:
        inv = write_inventory(os.path.join(WORK, 'inventory.yml'), {
            'postgresql_replication_password': 'bench-replication-secret',
            'postgresql_settings': {'shared_buffers': '128MB', 'max_connections': 100},
            'pg_primary_databases': [{'name': 'app'}],
            'pg_primary_users': [{'name': 'app', 'password': APP_PASSWORD, 'db': 'app'}],
            'postgresql_hba_entries': [{'contype': 'hostssl', 'databases': 'app', 'users': 'app', 'source': SUBNET,
                                        'method': 'scram-sha-256'}],
            'keepalived_writer_vip': '10.89.65.100/24', 'keepalived_writer_router_id': 85,
            'keepalived_reader_router_id': 86,
            'pgpool_vip': POOL_VIP + '/24', 'pgpool_vip_router_id': 87, 'pgpool_vip_advert_int': 0.5,
            'pgpool_password': 'bench-check-secret', 'pgpool_pcp_password': 'bench-pcp-secret',
            'pgpool_key': 'bench-pgpool-aes-key-0123456789', 'pgpool_num_init_children': 32,
        }, {'primary': {'bpg1': NODES['bpg1']}, 'replicas': {'bpg2': NODES['bpg2'], 'bpg3': NODES['bpg3']},
            'pgpool': {'bpool1': NODES['bpool1'], 'bpool2': NODES['bpool2']}})
        took = benchlib.playbook(WORK, inv, 'site.yml')
        print('1 primary + 2 replicas + 2 pgpool hosts provisioned by site.yml in %.1fs' % took)
        # pgbench comes with the server package: installed without a cluster
        run('bclient', 'sh', '-c', 'mkdir -p /etc/postgresql-common && echo create_main_cluster = false '
            '>/etc/postgresql-common/createcluster.conf && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq '
            'postgresql-17 >/dev/null')
        as_pg('bpg1', 'pgbench', '-i', '-q', '-s', str(SCALE), 'app')
        as_pg('bpg1', 'psql', '-XAtq', '-d', 'app', '-c', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO app')
        time.sleep(3)   # the replicas replay the load

        direct = select_only(NODES['bpg1'], 5432)
        print('pgbench -S, %d sessions, %ds, scale %d: straight to one server %.0f tps'
              % (CLIENTS, SECONDS, SCALE, direct))
        two = select_only(POOL_VIP, 9999)
        print('through the pgpool VIP, 2 replicas: %.0f tps' % two)
        for name in ('bpool1', 'bpool2'):
            pcp(name, 'pcp_detach_node', '-n', '2')
        one = select_only(POOL_VIP, 9999)
        print('through the pgpool VIP, 1 replica (bpg3 detached): %.0f tps' % one)
        for name in ('bpool1', 'bpool2'):
            pcp(name, 'pcp_attach_node', '-n', '2')

        active = holder()
        subprocess.run(['podman', 'kill', container(active)], check=True, capture_output=True)
        killed = time.monotonic()
        while not answers():
            time.sleep(0.05)
        failover = time.monotonic() - killed
        print('pgpool VIP failover: %s killed, a new session through the VIP answered %.1fs later (on %s)'
              % (active, failover, holder()))

        print('\n%-52s %8s' % ('ratio (this run)', 'value'))
        print('%-52s %8.2f' % ('pgpool, 2 replicas / straight to one server', two / direct))
        print('%-52s %8.2f' % ('pgpool, 1 replica / straight to one server', one / direct))
        print('%-52s %8.2f' % ('pgpool, 2 replicas / pgpool, 1 replica', two / one))
    finally:
        benchlib.remove_nodes(NODES, NET)


if __name__ == '__main__':
    main()

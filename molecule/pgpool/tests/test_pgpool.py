"""Reads and writes split by a redundant pgpool-II pair, in the order a DBA meets them:
bad input refused before any change -> writes to the primary, reads spread over the
replicas, TLS and SCRAM only -> a lagging replica gets no reads -> the active pgpool host
dies: the pgpool VIP moves and clients reconnect to the reserve -> the primary dies:
promote.yml, and writes through the pgpool VIP reach the new primary with nothing lost ->
rejoin.yml: the old primary gets reads again -> switchover.yml back with every node up ->
site.yml changes nothing.

Three networks: Ansible reaches the hosts on the administration network (10.89.77.0/24),
clients, VIPs and pgpool use the service network (10.89.78.0/24), replication the
replication network (10.89.79.0/24), and pg_hba takes replication from there only.

pgpool never promotes: its failover commands are empty; the runbooks bring every pgpool
in line (pgha.cluster.pgpool_sync) and show its view in their summary."""

import glob
import os
import re
import subprocess
import time

import pgha_testlib as lib

NAMES = ['pgpool-pg1', 'pgpool-pg2', 'pgpool-pg3']
POOLS = ['pgpool-pool1', 'pgpool-pool2']
ADMIN, REPLICATION = '10.89.77.', '10.89.79.'
# the service addresses: where pgpool (and every client) reaches the servers
IPS = {'pgpool-pg1': '10.89.78.11', 'pgpool-pg2': '10.89.78.12', 'pgpool-pg3': '10.89.78.13'}
POOL_IPS = {'pgpool-pool1': '10.89.78.21', 'pgpool-pool2': '10.89.78.22'}
POOL_VIP = '10.89.78.50'
ADMIN_IPS = {'pgpool-pg1': '10.89.77.11', 'pgpool-pg2': '10.89.77.12', 'pgpool-pg3': '10.89.77.13'}
WRITER_VIP = '10.89.78.100'
PORT = 9999
APP_PASSWORD = 'pgpool-app-secret'
STATE = {'acked': []}


def node(name):
    return lib.host(name)


def run(playbook, *args, inventory=None, timeout=None):
    return lib.run_playbook_with(inventory or STATE.get('inventory') or lib.inventory_dir(), playbook, *args,
                                 timeout=timeout)


def leave_an_ssh_master(name):
    """An SSH master connection to name with no keepalives, kept 10 minutes, at the control path
    every ansible run here uses by default: what Ansible's default ssh_args (ControlPersist)
    or another tool leave behind. Returns its control socket."""
    args = ('-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR '
            '-o ControlMaster=auto -o ControlPersist=600s')
    proc = subprocess.run(['ansible', name, '-i', lib.inventory_dir(), '-m', 'ansible.builtin.ping',
                           '-e', 'ansible_ssh_common_args="%s"' % args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=lib.ROOT, check=False)
    assert proc.returncode == 0, proc.stdout
    sockets = glob.glob(os.path.join(os.environ['HOME'], '.ansible', 'cp', '%s-22-root' % ADMIN_IPS[name]))
    assert sockets, 'no SSH master socket for %s' % name
    return sockets[0]


def query(sql, address=POOL_VIP, password=APP_PASSWORD, user='app', **kwargs):
    """One statement in a session of its own through pgpool (autocommit), its rows."""
    conn = lib.connect(address, user=user, password=password, port=PORT, **kwargs)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def answers(address=POOL_VIP):
    """Whether a new session through address answers a query within a second or two."""
    try:
        return query('SELECT 1', address=address, timeout=2) == [(1,)]
    except Exception:  # pylint: disable=broad-except
        return False


def read_spread(count=40):
    """{server address: sessions} for count separate sessions reading through the pgpool VIP."""
    seen = {}
    for _session in range(count):
        addr = query('SELECT host(inet_server_addr())')[0][0]
        seen[addr] = seen.get(addr, 0) + 1
    return seen


def pool_nodes(pool):
    """pgpool's own view on one pgpool host: [(host, status, role)] from pcp_node_info."""
    cmd = node(pool).run('PCPPASSFILE=/root/.pgha-pcppass pcp_node_info -h localhost -p 9898 -U pgha_pcp -w')
    assert cmd.rc == 0, cmd.stderr
    return [tuple(line.split()[i] for i in (0, 4, 6)) for line in cmd.stdout.splitlines() if line.strip()]


def vip_holders():
    return [p for p in POOLS if lib.holds_address(node(p), POOL_VIP)]


def assert_site_changes_nothing(what):
    proc = run('site.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.changed_hosts(proc.stdout) == {}, '%s: site.yml changed %s\n%s' % (
        what, lib.changed_hosts(proc.stdout), proc.stdout[-6000:])
    assert set(lib.recap(proc.stdout)) >= set(NAMES + POOLS)


# --------------------------------------------------------------------------
# Bad input, refused before any host changes
# --------------------------------------------------------------------------

def test_bad_pgpool_input_is_refused_before_any_change(tmp_path):
    before = [lib.config_fingerprint(node(n), ('/etc/pgpool2', '/etc/keepalived', '/etc/postgresql'))
              for n in NAMES + POOLS]
    # a pgpool VIP with one pgpool host
    one = lib.edit_inventory(tmp_path, {'pgpool': ['pgpool-pool1']}, name='one-pgpool')
    proc = run('site.yml', inventory=one)
    flat = ' '.join(proc.stdout.split())
    assert proc.returncode != 0
    assert "pgpool_vip is set but the group 'pgpool' has 1 host" in flat, flat[-3000:]
    assert lib.changed_hosts(proc.stdout) == {}
    # a threshold that is not a size, and settings that would let pgpool promote
    proc = run('site.yml', '-e', '{"pgpool_delay_threshold": "fast", "pgpool_settings": '
                                 '{"failover_command": "/usr/local/bin/promote.sh %d", "use_watchdog": "on"}}')
    flat = ' '.join(proc.stdout.split())
    assert proc.returncode != 0
    assert "pgpool_delay_threshold='fast' is not a size" in flat, flat[-3000:]
    assert 'pgpool_settings.failover_command is refused' in flat and 'pgpool_settings.use_watchdog is refused' in flat
    assert lib.changed_hosts(proc.stdout) == {}
    # a VIP outside the service network, and a replication address outside the replication network
    proc = run('site.yml', '-e', 'keepalived_writer_vip=10.89.77.100/24')
    flat = ' '.join(proc.stdout.split())
    assert proc.returncode != 0
    assert 'keepalived_writer_vip=10.89.77.100/24 is outside postgresql_service_network=10.89.78.0/24' in flat, \
        flat[-3000:]
    assert lib.changed_hosts(proc.stdout) == {}
    stray = lib.edit_inventory(tmp_path, host_vars={'pgpool-pg2': {'postgresql_host_address': '10.89.77.12'}},
                               name='stray-address')
    proc = run('site.yml', inventory=stray)
    flat = ' '.join(proc.stdout.split())
    assert proc.returncode != 0
    assert ('postgresql_host_address 10.89.77.12 of pgpool-pg2 is outside '
            'postgresql_replication_network=10.89.79.0/24') in flat, flat[-3000:]
    assert lib.changed_hosts(proc.stdout) == {}
    after = [lib.config_fingerprint(node(n), ('/etc/pgpool2', '/etc/keepalived', '/etc/postgresql'))
             for n in NAMES + POOLS]
    assert after == before


# --------------------------------------------------------------------------
# Three networks
# --------------------------------------------------------------------------

def test_replication_runs_on_the_replication_network_only():
    primary = node('pgpool-pg1')
    clients = lib.psql(primary, 'SELECT host(client_addr) FROM pg_stat_replication ORDER BY 1').split()
    assert clients == [REPLICATION + '12', REPLICATION + '13']
    for name in NAMES[1:]:
        assert lib.psql(node(name), 'SELECT sender_host FROM pg_stat_wal_receiver') == REPLICATION + '11'
    # pg_hba: replication from the members' replication addresses, nothing else
    for name in NAMES:
        sources = lib.psql(node(name), "SELECT address FROM pg_hba_file_rules WHERE 'replication' = ANY(database) "
                                       "AND type <> 'local' ORDER BY 1").split()
        assert sources == [REPLICATION + '11', REPLICATION + '12', REPLICATION + '13'], (name, sources)


def test_vips_live_on_the_service_network_and_ansible_on_the_administration_one():
    primary = node('pgpool-pg1')
    assert lib.holds_address(primary, WRITER_VIP)
    # on the interface of the service address, not on the default route's
    route = primary.run('ip -o -4 addr show').stdout
    vip_iface = [line.split()[1] for line in route.splitlines() if ' %s/' % WRITER_VIP in line]
    svc_iface = [line.split()[1] for line in route.splitlines() if ' %s/' % IPS['pgpool-pg1'] in line]
    assert vip_iface == svc_iface and vip_iface != ['eth0'], route
    holder = lib.wait_for(lambda: [p for p in POOLS if lib.holds_address(node(p), POOL_VIP)], timeout=30,
                          what='the pgpool VIP')
    assert len(holder) == 1
    # VRRP adverts between the members' service addresses
    conf = primary.file('/etc/keepalived/keepalived.conf').content_string
    assert 'unicast_src_ip %s' % IPS['pgpool-pg1'] in conf and IPS['pgpool-pg2'] in conf
    # Ansible: each host's ansible_host is on the administration network, and so is its default route
    inventory = lib.inventory_groups()
    for name in NAMES + POOLS:
        assert name in inventory['all']
        h = node(name)
        assert h.run('ip -o -4 route show default').stdout.split()[2].startswith(ADMIN), name
        sshd_peers = h.run("ss -Htn state established '( sport = :22 )'").stdout
        assert ADMIN + '1:' in sshd_peers or sshd_peers == '', (name, sshd_peers)


# --------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------

def test_pgpool_routes_writes_to_the_primary_and_spreads_reads_over_the_replicas():
    assert lib.current_primary(NAMES) == 'pgpool-pg1'
    lib.wait_for(lambda: len(vip_holders()) == 1, timeout=30, what='the pgpool VIP on one pgpool host')
    # pgpool runs no command of its own when it loses a server
    assert query('PGPOOL SHOW failover_command') == [('',)]
    assert query('PGPOOL SHOW follow_primary_command') == [('',)]
    assert query('PGPOOL SHOW use_watchdog') == [('off',)]
    # a write lands on the primary, and so does a read in the transaction that wrote
    conn = lib.connect(POOL_VIP, password=APP_PASSWORD, port=PORT)
    with conn, conn.cursor() as cur:
        cur.execute('INSERT INTO acked (id) VALUES (-1) RETURNING host(inet_server_addr())')
        assert cur.fetchone()[0] == IPS['pgpool-pg1']
        cur.execute('SELECT host(inet_server_addr())')
        assert cur.fetchone()[0] == IPS['pgpool-pg1']
    conn.close()
    assert lib.psql(node('pgpool-pg1'), 'SELECT count(*) FROM acked WHERE id = -1', db='app') == '1'
    # plain reads, one session each: the replicas only, both of them
    spread = read_spread(40)
    lib.measured('reads over 40 sessions through the pgpool VIP: %s' % spread)
    assert set(spread) == {IPS['pgpool-pg2'], IPS['pgpool-pg3']}, spread
    assert min(spread.values()) >= 5, spread


def test_pgpool_takes_tls_and_scram_only():
    import psycopg2
    for kwargs in ({'sslmode': 'disable'}, {}):
        try:
            conn = psycopg2.connect(host=POOL_VIP, port=PORT, user='app', dbname='app', connect_timeout=3,
                                    password=APP_PASSWORD if kwargs else 'wrong', **(kwargs or {'sslmode': 'require'}))
            conn.close()
            raise AssertionError('pgpool let in %s' % (kwargs or 'a wrong password'))
        except psycopg2.OperationalError as exc:
            assert 'pool_hba' in str(exc) or 'authentication failed' in str(exc), str(exc)
    # pgpool's sessions to the servers are encrypted too
    conn = lib.connect(POOL_VIP, password=APP_PASSWORD, port=PORT)
    with conn.cursor() as cur:
        cur.execute('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
        assert cur.fetchone()[0] is True
    conn.close()


def test_a_lagging_replica_gets_no_reads():
    lagging = node('pgpool-pg2')
    lib.psql(lagging, 'SELECT pg_wal_replay_pause()')
    try:
        # 4 MB of WAL, beyond pgpool_delay_threshold (1MB)
        lib.psql(node('pgpool-pg1'), 'CREATE TABLE IF NOT EXISTS lag_filler (pad text); '
                                     "INSERT INTO lag_filler SELECT repeat('x', 1000) FROM generate_series(1, 4000)",
                 db='app')
        lib.wait_for(lambda: IPS['pgpool-pg2'] not in read_spread(10), timeout=30,
                     what='pgpool to stop sending reads to the lagging replica')
        spread = read_spread(30)
        assert spread == {IPS['pgpool-pg3']: 30}, spread
    finally:
        lib.psql(lagging, 'SELECT pg_wal_replay_resume()')
    lib.wait_for(lambda: IPS['pgpool-pg2'] in read_spread(20), timeout=30,
                 what='reads back on the replica once it caught up')


# --------------------------------------------------------------------------
# The active pgpool host dies
# --------------------------------------------------------------------------

def test_the_pgpool_vip_moves_when_the_active_pgpool_host_dies():
    holders = lib.wait_for(vip_holders, timeout=30, what='a pgpool VIP holder')
    assert len(holders) == 1
    active, reserve = holders[0], [p for p in POOLS if p != holders[0]][0]
    lib.podman('kill', active)
    killed = time.monotonic()
    lib.wait_for(answers, timeout=30, interval=0.1, what='a session through the pgpool VIP on the reserve')
    lib.measured('pgpool VIP: a new session through it %.1f s after the active pgpool host was killed'
                 % (time.monotonic() - killed))
    assert vip_holders() == [reserve]
    query('INSERT INTO acked (id) VALUES (-2)')
    assert lib.psql(node('pgpool-pg1'), 'SELECT count(*) FROM acked WHERE id = -2', db='app') == '1'
    # the killed host comes back and serves again (as the reserve, or as the VIP's holder)
    lib.podman('start', active)
    back = node(active)
    lib.wait_for(lambda: back.run('systemctl is-active pgpool2 keepalived').stdout.split() == ['active', 'active'],
                 timeout=90, what='%s back with pgpool and keepalived' % active)
    lib.wait_for(lambda: answers(POOL_IPS[active]), timeout=60, what='%s serving again' % active)
    lib.wait_for(lambda: len(vip_holders()) == 1, timeout=30, what='one pgpool VIP holder')


# --------------------------------------------------------------------------
# The primary dies: promote.yml, writes through the pgpool VIP, rejoin.yml
# --------------------------------------------------------------------------

def test_promote_through_pgpool_loses_no_acknowledged_write(tmp_path):
    writer = lib.Writer(POOL_VIP, APP_PASSWORD, start_id=1000, port=PORT)
    writer.start()
    lib.wait_for(lambda: len(writer.acked) >= 100, timeout=30, what='100 commits through the pgpool VIP')
    # a master connection to the primary is still open when it dies: without keepalives, a command
    # sent through it would wait for the kernel to give up on the dead peer (about 15 minutes);
    # the runbooks keep masters of their own that notice a dead host in seconds
    master = leave_an_ssh_master('pgpool-pg1')
    lib.podman('kill', 'pgpool-pg1')
    try:
        proc = run('promote.yml', timeout=300)
    finally:
        subprocess.run(['ssh', '-O', 'exit', '-o', 'ControlPath=' + master, ADMIN_IPS['pgpool-pg1']],
                       capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:]
    new = lib.current_primary(NAMES[1:])
    # every pgpool shows the new primary, in its summary and in its own view
    flat = ' '.join(proc.stdout.split())
    for pool in POOLS:
        assert re.search(r'pgpool : %s: (?:[^;]*; )*\d %s up primary' % (pool, new), flat), flat[-3000:]
        assert (IPS[new], 'up', 'primary') in pool_nodes(pool)
        assert (IPS['pgpool-pg1'], 'down', 'standby') in pool_nodes(pool) or \
            (IPS['pgpool-pg1'], 'down', 'primary') in pool_nodes(pool)
    # writes through the pgpool VIP reach the new primary
    before = len(writer.acked)
    lib.wait_for(lambda: len(writer.acked) >= before + 50, timeout=30, what='writes through pgpool after promote.yml')
    writer.stop.set()
    writer.join(30)
    assert query('INSERT INTO acked (id) VALUES (-3) RETURNING host(inet_server_addr())') == [(IPS[new],)]
    lost = lib.missing_ids(node(new), writer.acked)
    assert not lost, 'lost %d of %d acknowledged commits: %s' % (len(lost), len(writer.acked), sorted(lost)[:20])
    lib.measured('promote.yml under writes through pgpool: %d commits acknowledged, write window %.1f s'
                 % (len(writer.acked), writer.window()))
    STATE['primary'] = new
    STATE['inventory'] = lib.inventory_as_summary_says(tmp_path, proc.stdout, NAMES)


def test_rejoin_gives_the_old_primary_reads_again():
    lib.podman('start', 'pgpool-pg1')
    # "when pgpool-pg1 is back": booted, and it answers on SSH from here
    lib.wait_booted('pgpool-pg1', ADMIN_IPS['pgpool-pg1'])
    proc = run('rejoin.yml', '-e', 'rejoin_host=pgpool-pg1')
    assert proc.returncode == 0, proc.stdout[-6000:]
    flat = ' '.join(proc.stdout.split())
    for pool in POOLS:
        # (waiting: attached, no session has used it yet)
        assert re.search(r'pgpool : %s: 0 pgpool-pg1 (up|waiting) standby' % pool, flat), flat[-3000:]

    def spread_with_the_old_primary():
        spread = read_spread(30)
        return spread if IPS['pgpool-pg1'] in spread else None

    spread = lib.wait_for(spread_with_the_old_primary, timeout=30, what='reads on the rejoined old primary')
    assert IPS[STATE['primary']] not in spread, spread


def test_switchover_back_moves_pgpools_writes_with_every_node_up(tmp_path):
    """A role swap with every node up is what pgpool never notices by itself: its view must be
    put right by the runbook (detach the old primary, attach it back as a standby)."""
    writer = lib.Writer(POOL_VIP, APP_PASSWORD, start_id=500000, port=PORT)
    writer.start()
    lib.wait_for(lambda: len(writer.acked) >= 100, timeout=30, what='100 commits through the pgpool VIP')
    proc = run('switchover.yml', '-e', 'switchover_candidate=pgpool-pg1')
    assert proc.returncode == 0, proc.stdout[-6000:]
    before = len(writer.acked)
    lib.wait_for(lambda: len(writer.acked) >= before + 50, timeout=30, what='writes through pgpool after the switchover')
    writer.stop.set()
    writer.join(30)
    assert lib.current_primary(NAMES) == 'pgpool-pg1'
    for pool in POOLS:
        roles = dict((h, (s, r)) for h, s, r in pool_nodes(pool))
        assert roles[IPS['pgpool-pg1']] == ('up', 'primary'), (pool, roles)
        assert roles[IPS[STATE['primary']]][1] == 'standby' and roles[IPS[STATE['primary']]][0] in ('up', 'waiting')
    assert query('INSERT INTO acked (id) VALUES (-4) RETURNING host(inet_server_addr())') == [(IPS['pgpool-pg1'],)]
    lost = lib.missing_ids(node('pgpool-pg1'), writer.acked)
    assert not lost, 'lost %d of %d acknowledged commits: %s' % (len(lost), len(writer.acked), sorted(lost)[:20])
    lib.measured('switchover.yml under writes through pgpool: %d commits acknowledged, write window %.1f s'
                 % (len(writer.acked), writer.window()))
    STATE['primary'] = 'pgpool-pg1'
    STATE['inventory'] = lib.inventory_as_summary_says(tmp_path, proc.stdout, NAMES)


def test_site_after_the_walk_changes_nothing():
    assert_site_changes_nothing('after promote.yml, rejoin.yml and switchover.yml')
    for pool in POOLS:
        roles = dict((h, (s, r)) for h, s, r in pool_nodes(pool))
        assert roles[IPS[STATE['primary']]] == ('up', 'primary'), roles

"""Last in this scenario: the other supported platform, Debian 12 with PostgreSQL 15
(default-old1, default-old2, a cluster with its own writer VIP), then its blue-green
upgrade with upgrade.yml to the PostgreSQL 17 server the scenario provisioned on the
spare host, while a client writes through the writer VIP, and the rollback."""

import re
import time

import pgha_testlib as lib

OLD = ('default-old1', 'default-old2')
NEW = 'default-spare'
VIP = '10.89.74.101'
APP_PASSWORD = 'default-app-secret'
PUBLICATION = {'name': 'pgha_upgrade', 'database': 'app', 'all_tables': True}
COMMON = {'keepalived_writer_vip': VIP + '/24', 'keepalived_writer_router_id': 73,
          'keepalived_reader_router_id': 74, 'logical_publications': [PUBLICATION],
          'logical_password': 'upgrade-logical-secret',
          # the test host (the network's gateway) writes through the VIP
          'postgresql_hba_entries': [{'contype': 'hostssl', 'databases': 'app', 'users': 'app',
                                      'source': '10.89.74.0/24', 'method': 'scram-sha-256'}]}


def old_inventory(tmp_path):
    """The old cluster's own inventory: PostgreSQL 15, its writer VIP, the upgrade's
    publication and the new cluster's address as a subscriber source."""
    hv = dict(COMMON, postgresql_version=15, logical_subscriber_sources=['10.89.74.20/32'])
    return lib.edit_inventory(tmp_path, {'primary': [OLD[0]], 'replicas': [OLD[1]]},
                              host_vars=dict((h, hv) for h in OLD), name='old')


def new_inventory(tmp_path, primary=NEW, source=OLD):
    """The new cluster's inventory: the same writer VIP (held back until the cutover), the
    reverse publication, the old cluster's addresses, and the old hosts in upgrade_source."""
    hv = dict(COMMON, logical_subscriber_sources=['10.89.74.31/32', '10.89.74.32/32'])
    return lib.edit_inventory(tmp_path, {'primary': [primary], 'replicas': [], 'upgrade_source': list(source)},
                              host_vars={primary: hv}, name='new')


def via_vip(sql, fetch=True):
    conn = lib.connect(VIP, password=APP_PASSWORD)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if fetch else None
    finally:
        conn.close()


def test_debian12_refuses_postgresql17_before_any_change(tmp_path):
    """Debian 12 ships PostgreSQL 15 only: the default (17) is refused in preflight, naming
    postgresql_version and the value to set, and nothing is installed."""
    inventory = lib.write_inventory(tmp_path, [OLD[0]], [OLD[1]])
    proc = lib.run_playbook_with(inventory, 'site.yml', '-e', 'keepalived_writer_vip=')
    assert proc.returncode != 0
    assert re.search(r'postgresql_version=17, but default-old\d runs Debian 12 \(bookworm\), which ships PostgreSQL '
                     r'15 only\. Fix: set postgresql_version to 15', proc.stdout), proc.stdout[-3000:]
    assert lib.changed_hosts(proc.stdout) == {}
    for name in OLD:
        assert not lib.host(name).package('postgresql-15').is_installed


def test_debian12_postgresql15_cluster(tmp_path):
    """The same site.yml provisions Debian 12 / PostgreSQL 15: a primary and a streaming replica on
    its slot, its writer VIP, a row written on the primary on the replica, and a re-run that
    changes nothing. Its tables (through the VIP) are the ones the upgrade moves."""
    inventory = old_inventory(tmp_path)
    proc = lib.run_playbook_with(inventory, 'site.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    primary, replica = lib.host(OLD[0]), lib.host(OLD[1])
    assert lib.psql(primary, 'SHOW server_version_num').startswith('15')
    assert primary.service('postgresql@15-main').is_running
    assert lib.role_of(primary) == 'primary' and lib.role_of(replica) == 'standby'
    assert lib.psql(primary, "SELECT state || ' ' || slot_name FROM pg_stat_replication JOIN pg_replication_slots "
                             "ON active_pid = pid") == 'streaming default_old2'
    lib.wait_for(lambda: lib.holds_address(primary, VIP), timeout=20, what='the old writer VIP on old1')
    lib.psql(primary, """
        CREATE TABLE bookworm_probe (v text PRIMARY KEY); INSERT INTO bookworm_probe VALUES ('on 15');
        CREATE TABLE acked (id bigint PRIMARY KEY, at timestamptz DEFAULT now());
        CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL);
        GRANT SELECT, INSERT ON acked, orders TO app; GRANT USAGE ON SEQUENCE orders_id_seq TO app;
        GRANT USAGE ON SCHEMA public TO pgha_logical;
        GRANT SELECT ON bookworm_probe, acked, orders TO pgha_logical""", db='app')
    via_vip("INSERT INTO orders (note) SELECT 'before ' || g FROM generate_series(1, 5) g", fetch=False)
    lib.wait_for(lambda: lib.psql(replica, 'SELECT v FROM bookworm_probe', db='app', check=False).stdout.strip()
                 == 'on 15', timeout=30, what='the row on the Debian 12 replica')
    proc = lib.run_playbook_with(inventory, 'site.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert lib.changed_hosts(proc.stdout) == {}


def test_upgrade_refuses_the_same_or_an_older_version(tmp_path):
    """upgrade.yml goes to a newer major version only: 17 to 17 and 17 to 15 are refused
    before any change, naming the versions."""
    same = new_inventory(tmp_path / 'same', primary=NEW, source=('default-pg1',))
    proc = lib.run_playbook_with(same, 'upgrade.yml')
    assert proc.returncode != 0 and 'REFUSED, nothing was changed' in proc.stdout, proc.stdout[-3000:]
    assert 'are both 17: a blue-green upgrade goes to a newer major version' in proc.stdout
    assert lib.changed_hosts(proc.stdout) == {}
    older = new_inventory(tmp_path / 'older', primary=OLD[0], source=(NEW,))
    proc = lib.run_playbook_with(older, 'upgrade.yml')
    assert proc.returncode != 0 and 'REFUSED, nothing was changed' in proc.stdout, proc.stdout[-3000:]
    assert "postgresql_version=15 is older than the upgrade_source cluster's postgresql_version=17" in proc.stdout
    assert lib.changed_hosts(proc.stdout) == {}


def _downtime(output):
    m = re.search(r'write downtime: ([0-9.]+) s', output)
    assert m, output[-3000:]
    return float(m.group(1))


def test_upgrade_15_to_17_while_a_client_writes_through_the_vip(tmp_path):
    """site.yml provisions the new cluster with the old one's writer VIP held back; --check prints
    the plan and changes nothing; upgrade.yml copies, cuts over and moves the VIP while a client
    writes through it: every acknowledged write is on PostgreSQL 17, the sequences go on without
    collision, the old primary gets the new writes back (the rollback target), the downtime is
    reported; then site.yml changes nothing on the new cluster and refuses the VIP on the old one."""
    old1, new = lib.host(OLD[0]), lib.host(NEW)
    inventory = new_inventory(tmp_path)
    proc = lib.run_playbook_with(inventory, 'site.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert not new.service('keepalived').is_running and not lib.holds_address(new, VIP)
    assert lib.psql(new, 'SHOW wal_level') == 'logical'

    proc = lib.run_playbook_with(inventory, 'upgrade.yml', '--check')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'CUTOVER, write downtime starts' in proc.stdout and 'CHECK MODE - plan only' in proc.stdout
    assert lib.changed_hosts(proc.stdout) == {}
    assert lib.psql(new, 'SELECT count(*) FROM pg_subscription') == '0'

    writer = lib.Writer(VIP, APP_PASSWORD, start_id=1)
    writer.start()
    lib.wait_for(lambda: len(writer.acked) > 20, timeout=30, what='writes through the old VIP')
    proc = lib.run_playbook_with(inventory, 'upgrade.yml')
    time.sleep(2)
    writer.stop.set()
    writer.join(10)
    assert proc.returncode == 0, proc.stdout[-6000:]
    downtime = _downtime(proc.stdout)
    lib.measured('upgrade 15->17: write downtime %.1f s (summary), client saw %d failed writes over %.1f s, %d '
                 'commits acknowledged' % (downtime, len(writer.failures), writer.window(), len(writer.acked)))

    assert lib.holds_address(new, VIP) and not lib.holds_address(old1, VIP)
    assert via_vip('SHOW server_version_num')[0][0].startswith('17')
    assert lib.missing_ids(new, writer.acked) == set()
    # sequences: the old primary's values came along, the next id does not collide
    assert via_vip("INSERT INTO orders (note) VALUES ('after') RETURNING id")[0][0] > 5
    # the reverse replication brings every write made on 17 back to 15
    lib.wait_for(lambda: lib.missing_ids(old1, writer.acked) == set(), timeout=30, what='the writes back on old1')
    lib.wait_for(lambda: lib.table_digest(old1, 'orders') == lib.table_digest(new, 'orders'), timeout=30,
                 what='orders the same on both')
    lib.SHARED['upgrade_acked'] = list(writer.acked)

    proc = lib.run_playbook_with(inventory, 'site.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert lib.changed_hosts(proc.stdout) == {}
    proc = lib.run_playbook_with(inventory, 'upgrade.yml')
    assert proc.returncode == 0 and 'Nothing to do: the cutover is done' in proc.stdout, proc.stdout[-3000:]
    assert lib.changed_hosts(proc.stdout) == {}
    proc = lib.run_playbook_with(old_inventory(tmp_path), 'site.yml')
    assert proc.returncode != 0
    assert 'handed this writer VIP over to a new cluster' in proc.stdout, proc.stdout[-3000:]
    assert lib.changed_hosts(proc.stdout) == {}
    assert not lib.holds_address(old1, VIP)


def test_rollback_moves_writes_back_to_the_old_cluster_with_nothing_lost(tmp_path):
    """upgrade.yml -e upgrade_action=rollback while the client writes through the VIP: every
    write acknowledged before and during the rollback is on PostgreSQL 15, which holds the VIP
    and takes writes again, its sequences ahead of the ids 17 handed out."""
    old1, new = lib.host(OLD[0]), lib.host(NEW)
    inventory = new_inventory(tmp_path)
    writer = lib.Writer(VIP, APP_PASSWORD, start_id=100001)
    writer.start()
    lib.wait_for(lambda: len(writer.acked) > 20, timeout=30, what='writes through the VIP on 17')
    proc = lib.run_playbook_with(inventory, 'upgrade.yml', '-e', 'upgrade_action=rollback')
    time.sleep(2)
    writer.stop.set()
    writer.join(10)
    assert proc.returncode == 0, proc.stdout[-6000:]
    lib.measured('rollback 17->15: write downtime %.1f s (summary), client saw %d failed writes over %.1f s, %d '
                 'commits acknowledged' % (_downtime(proc.stdout), len(writer.failures), writer.window(),
                                           len(writer.acked)))
    print(proc.stdout[-2500:])
    assert lib.holds_address(old1, VIP) and not lib.holds_address(new, VIP)
    assert via_vip('SHOW server_version_num')[0][0].startswith('15')
    assert lib.missing_ids(old1, lib.SHARED['upgrade_acked'] + writer.acked) == set()
    before = int(lib.psql(new, 'SELECT max(id) FROM orders', db='app'))
    assert via_vip("INSERT INTO orders (note) VALUES ('rolled back') RETURNING id")[0][0] > before
    assert lib.psql(old1, 'SELECT count(*) FROM pg_subscription') == '0'

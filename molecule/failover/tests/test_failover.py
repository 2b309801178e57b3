"""Failover end to end on real containers: writes in flight with synchronous
replication, the primary killed hard, promote.yml, the writer VIP on the new
primary, the killed host restarted without becoming a second primary,
rejoin.yml, identical data on all three nodes, and promote.yml's refusals.

The tests run in file order and build on each other (one cluster, one story).
"""

import time

import pytest

import pgha_testlib as lib

WRITER_VIP = '10.89.70.100'
READER_VIP = '10.89.70.101'
IPS = {'failover-pg1': '10.89.70.11', 'failover-pg2': '10.89.70.12', 'failover-pg3': '10.89.70.13'}
APP_PASSWORD = 'failover-app-secret'
STATE = {}


def node(name):
    return lib.host(name)


def names():
    return sorted(IPS)


def vip_holders(address):
    return [n for n in names() if lib.holds_address(node(n), address)]


def test_writer_vip_on_primary_reader_vip_on_a_replica():
    primary = lib.current_primary(IPS)
    assert primary == 'failover-pg1'
    lib.wait_for(lambda: vip_holders(WRITER_VIP) == [primary], timeout=30, what='writer VIP on the primary')
    lib.wait_for(lambda: [h for h in vip_holders(READER_VIP) if h != primary], timeout=30,
                 what='reader VIP on a replica')
    conn = lib.connect(WRITER_VIP, password=APP_PASSWORD)
    with conn.cursor() as cur:
        cur.execute('SELECT host(inet_server_addr()), pg_is_in_recovery(), current_setting(%s)',
                    ('synchronous_standby_names',))
        addr, in_recovery, sync_names = cur.fetchone()
    conn.close()
    assert addr == WRITER_VIP and in_recovery is False
    assert sync_names.startswith('ANY 1 (')


def test_reader_vip_falls_back_to_the_primary():
    """With no healthy replica the primary takes the reader VIP; it goes back once they stream."""
    replicas = ('failover-pg2', 'failover-pg3')
    saved = {}
    for n in replicas:
        saved[n] = lib.psql(node(n), 'SHOW primary_conninfo')
        lib.psql(node(n), "ALTER SYSTEM SET primary_conninfo = ''")
        lib.psql(node(n), 'SELECT pg_reload_conf()')
    try:
        lib.wait_for(lambda: vip_holders(READER_VIP) == ['failover-pg1'], timeout=30,
                     what='reader VIP on the primary')
    finally:
        for n in replicas:
            lib.psql(node(n), "ALTER SYSTEM SET primary_conninfo = '%s'" % saved[n].replace("'", "''"))
            lib.psql(node(n), 'SELECT pg_reload_conf()')
    lib.wait_for(lambda: [h for h in vip_holders(READER_VIP) if h in replicas], timeout=30,
                 what='reader VIP back on a streaming replica')
    for n in replicas:
        lib.wait_for(lambda: lib.psql(node(n), 'SELECT status FROM pg_stat_wal_receiver') == 'streaming',
                     timeout=30, what='%s streaming again' % n)


def test_check_script_runs_unprivileged():
    n = node('failover-pg2')
    rolsuper = lib.psql(node('failover-pg1'), "SELECT rolsuper FROM pg_roles WHERE rolname = 'pgha_check'")
    assert rolsuper == 'f'
    conf = n.file('/etc/keepalived/keepalived.conf').content_string
    assert 'script_user pgha_check' in conf and 'unicast_peer' in conf
    # on a standby the writer check fails, the up check passes
    assert n.run('runuser -u pgha_check -- /usr/local/lib/pgha/pg_vip_check writer').rc != 0
    assert n.run('runuser -u pgha_check -- /usr/local/lib/pgha/pg_vip_check up').rc == 0


def test_promote_refuses_while_the_primary_is_healthy():
    proc = lib.run_playbook('promote.yml')
    assert proc.returncode != 0
    assert 'REFUSED' in proc.stdout and 'promote_force=true' in proc.stdout
    assert 'switchover.yml' in proc.stdout
    assert lib.current_primary(IPS) == 'failover-pg1'
    for n in ('failover-pg2', 'failover-pg3'):
        assert lib.role_of(node(n)) == 'standby'


def test_failover_loses_no_acknowledged_commit():
    primary = node('failover-pg1')
    lib.psql(primary, 'CREATE TABLE acked (id int PRIMARY KEY, at timestamptz DEFAULT now())', db='app')
    lib.psql(primary, 'GRANT INSERT, SELECT ON acked TO app', db='app')
    writer = lib.Writer(WRITER_VIP, APP_PASSWORD)
    writer.start()
    lib.wait_for(lambda: len(writer.acked) >= 200, timeout=30, what='200 acknowledged commits')
    lib.podman('kill', 'failover-pg1')
    STATE['killed_at'] = time.monotonic()
    time.sleep(1.5)
    writer.stop.set()
    writer.join(10)
    STATE['acked'] = list(writer.acked)
    assert writer.failures, 'the writer never noticed the primary died'

    # check mode first: the plan, and nothing changes
    proc = lib.run_playbook('promote.yml', '--check')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'DECISION: PROMOTE' in proc.stdout and 'CHECK MODE' in proc.stdout
    for n in ('failover-pg2', 'failover-pg3'):
        assert lib.role_of(node(n)) == 'standby'

    started = time.monotonic()
    proc = lib.run_playbook('promote.yml')
    STATE['promote_seconds'] = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'PROMOTE SUMMARY' in proc.stdout and 'write probe   : OK via %s' % WRITER_VIP in proc.stdout
    new = lib.current_primary(IPS)
    assert new in ('failover-pg2', 'failover-pg3')
    STATE['new_primary'] = new
    STATE['other'] = ({'failover-pg2', 'failover-pg3'} - {new}).pop()

    # every commit the client saw acknowledged is on the new primary
    acked = STATE['acked']
    lost = lib.missing_ids(node(new), acked)
    assert not lost, 'lost %d of %d acknowledged commits: %s' % (len(lost), len(acked), sorted(lost)[:20])


def test_writer_vip_answers_on_the_new_primary():
    new = STATE['new_primary']
    assert vip_holders(WRITER_VIP) == [new]
    conn = lib.connect(WRITER_VIP, password=APP_PASSWORD)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('INSERT INTO acked (id) VALUES (1000000) RETURNING host(inet_server_addr())')
        assert cur.fetchone()[0] == WRITER_VIP
        cur.execute('SELECT pg_is_in_recovery()')
        assert cur.fetchone()[0] is False
    conn.close()
    print('kill -> writes through the VIP: %.1fs' % (time.monotonic() - STATE['killed_at']))


def test_other_replica_streams_from_the_new_primary():
    new, other = STATE['new_primary'], STATE['other']
    lib.wait_for(lambda: lib.psql(node(other), 'SELECT status, sender_host FROM pg_stat_wal_receiver')
                 == 'streaming|%s' % IPS[new], timeout=60, what='%s streaming from %s' % (other, new))
    slot = other.replace('-', '_')
    assert lib.psql(node(new), "SELECT active FROM pg_replication_slots WHERE slot_name = '%s'" % slot) == 't'
    lib.wait_for(lambda: lib.psql(node(other), 'SELECT count(*) FROM acked WHERE id = 1000000', db='app') == '1',
                 timeout=20, what='the new row on %s' % other)


def test_promote_again_is_a_noop():
    proc = lib.run_playbook('promote.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'NOTHING TO DO' in proc.stdout and STATE['new_primary'] in proc.stdout


def test_killed_primary_restarted_does_not_become_a_second_primary():
    lib.podman('start', 'failover-pg1')
    old = node('failover-pg1')
    lib.wait_for(lambda: old.run('systemctl is-system-running').stdout.strip() in ('running', 'degraded'),
                 timeout=90, what='failover-pg1 booted')
    lib.wait_for(lambda: 'REFUSING' in old.run('journalctl -u postgresql@15-main --no-pager').stdout,
                 timeout=60, what='the start guard refusing on failover-pg1')
    assert not old.service('postgresql@15-main').is_running
    assert old.file('/var/lib/postgresql/15/.pgha-fenced-main').exists
    assert lib.role_of(old) == 'down'
    # for several VRRP rounds it never takes the writer VIP
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert vip_holders(WRITER_VIP) == [STATE['new_primary']]
        time.sleep(1)
    # and nothing on it accepts writes
    with pytest.raises(Exception):
        lib.connect(IPS['failover-pg1'], password=APP_PASSWORD, timeout=2)


def test_rejoin_makes_the_old_primary_stream_and_data_converges(tmp_path):
    new, other = STATE['new_primary'], STATE['other']
    inventory = lib.write_inventory(tmp_path, [new], ['failover-pg1', other])
    STATE['inventory'] = inventory
    proc = lib.run_playbook_with(inventory, 'rejoin.yml', '-e', 'rejoin_host=failover-pg1')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'REJOIN SUMMARY' in proc.stdout and 'method        : pg_rewind' in proc.stdout
    old = node('failover-pg1')
    assert lib.psql(old, 'SELECT status, slot_name, sender_host FROM pg_stat_wal_receiver') == \
        'streaming|failover_pg1|%s' % IPS[new]
    assert not old.file('/var/lib/postgresql/15/.pgha-fenced-main').exists
    # one more write, then all three nodes hold identical data
    lib.psql(node(new), 'INSERT INTO acked (id) VALUES (2000000)', db='app')
    for n in names():
        lib.wait_for(lambda: lib.psql(node(n), 'SELECT count(*) FROM acked WHERE id = 2000000', db='app') == '1',
                     timeout=30, what='the last row on %s' % n)
    digests = {n: lib.table_digest(node(n), 'acked') for n in names()}
    assert len(set(digests.values())) == 1, digests
    # rejoin again: nothing to do
    proc = lib.run_playbook_with(inventory, 'rejoin.yml', '-e', 'rejoin_host=failover-pg1')
    assert proc.returncode == 0 and 'NOTHING TO DO' in proc.stdout, proc.stdout[-3000:]


def test_site_refuses_the_stale_inventory():
    """The scenario's own inventory still names failover-pg1 as the primary."""
    proc = lib.run_playbook('site.yml')
    assert proc.returncode != 0
    flat = ' '.join(proc.stdout.split())
    assert 'failover-pg1 is in group \'primary\' but runs as a replica: the inventory is out of date' in flat, \
        flat[-3000:]
    assert lib.role_of(node('failover-pg1')) == 'standby'


def test_promote_refuses_a_lagging_candidate():
    new, inventory = STATE['new_primary'], STATE['inventory']
    lagging = 'failover-pg1'
    lib.psql(node(lagging), "ALTER SYSTEM SET primary_conninfo = ''")
    lib.psql(node(lagging), 'SELECT pg_reload_conf()')
    lib.wait_for(lambda: lib.psql(node(lagging), 'SELECT count(*) FROM pg_stat_wal_receiver') == '0',
                 timeout=30, what='failover-pg1 stopped streaming')
    lib.psql(node(new), 'INSERT INTO acked (id) SELECT g FROM generate_series(3000000, 3020000) g', db='app')
    lib.podman('kill', new)
    proc = lib.run_playbook_with(inventory, 'promote.yml', '-e', 'promote_candidate=%s' % lagging)
    assert proc.returncode != 0
    assert 'REFUSED' in proc.stdout and 'promote_max_lag_bytes' in proc.stdout, proc.stdout[-4000:]
    assert lib.role_of(node(lagging)) == 'standby'
    assert lib.role_of(node(STATE['other'])) == 'standby'

"""The lifecycle a DBA walks, asserted on the hosts at every step.

Walk 1 (a dead primary): kill the primary under a client writing through the
writer VIP -> promote.yml -> the inventory updated as its summary says ->
site.yml refuses the fenced node (naming rejoin.yml) and touches nothing ->
rejoin.yml -> site.yml changes nothing -> switchover.yml back -> site.yml
changes nothing. No acknowledged write is lost.

Walk 2 (a partition): the primary is cut off from its peers, promote.yml runs
without reaching it, the network heals, and the old primary fences itself
within FENCE_BOUND seconds; nothing it acknowledged is lost.

Walk 3 (a split brain): the same, on a node whose fence watch is off, so two
primaries run after the heal. status.yml names the one to keep, rejoin.yml
refuses without confirmation, then keeps the other's data directory aside and
rejoins it. site.yml changes nothing.

The tests run in file order and build on each other (one cluster, one story).
"""

import json
import re
import time

import pytest

import pgha_testlib as lib

NAMES = ['lifecycle-pg1', 'lifecycle-pg2', 'lifecycle-pg3']
IPS = {'lifecycle-pg1': '10.89.73.11', 'lifecycle-pg2': '10.89.73.12', 'lifecycle-pg3': '10.89.73.13'}
WRITER_VIP = '10.89.73.100'
READER_VIP = '10.89.73.101'
APP_PASSWORD = 'lifecycle-app-secret'
SERVICE = 'postgresql@17-main'
DATA = '/var/lib/postgresql/17/main'
FENCE = '/var/lib/postgresql/17/.pgha-fenced-main'
#: Seconds within which a partitioned former primary fences itself once the network heals
#: (the README states this bound: the fence watch asks its peers every 2 s).
FENCE_BOUND = 10
STATE = {'acked': []}


def node(name):
    return lib.host(name)


def vip_holders(address=WRITER_VIP):
    return [n for n in NAMES if lib.holds_address(node(n), address)]


def run(playbook, *args, inventory=None):
    inventory = inventory or STATE.get('inventory')
    if inventory:
        return lib.run_playbook_with(inventory, playbook, *args)
    return lib.run_playbook(playbook, *args)


def assert_site_changes_nothing(what):
    """site.yml with the inventory as it stands: success, and zero changed on every host
    (the subscriber's too: the logical role's publications and subscription included)."""
    proc = run('site.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.changed_hosts(proc.stdout) == {}, '%s: site.yml changed %s\n%s' % (
        what, lib.changed_hosts(proc.stdout), proc.stdout[-6000:])
    assert set(lib.recap(proc.stdout)) >= set(NAMES + ['lifecycle-sub'])


def start_writer(address):
    writer = lib.Writer(address, APP_PASSWORD, start_id=STATE.get('next_id', 1))
    writer.start()
    return writer


def stop_writer(writer):
    writer.stop.set()
    writer.join(30)
    STATE['acked'] += writer.acked
    STATE['next_id'] = writer.next_id + 1


def assert_nothing_lost(primary):
    lost = lib.missing_ids(node(primary), STATE['acked'])
    assert not lost, 'lost %d of %d acknowledged commits: %s' % (len(lost), len(STATE['acked']), sorted(lost)[:20])


# --------------------------------------------------------------------------
# The cluster site.yml built
# --------------------------------------------------------------------------

def test_provisioned_cluster_with_vips_sync_and_fence_watch():
    assert lib.current_primary(NAMES) == 'lifecycle-pg1'
    lib.wait_for(lambda: vip_holders() == ['lifecycle-pg1'], timeout=30, what='writer VIP on the primary')
    assert lib.psql(node('lifecycle-pg1'), 'SHOW synchronous_standby_names') == \
        'ANY 1 ("lifecycle_pg1", "lifecycle_pg2", "lifecycle_pg3")'
    for n in NAMES:
        assert node(n).service('pgha-fence-watch').is_running, n
        # the node that created the cluster serves as primary: its initdb marker is retired,
        # and the replicas, cloned from it, no longer keep theirs
        assert not node(n).file('/var/lib/postgresql/17/.pgha-initdb-main').exists, n
    # converge.yml created the application's tables
    assert lib.psql(node('lifecycle-pg1'), "SELECT to_regclass('acked') IS NOT NULL", db='app') == 't'


def test_reader_vip_falls_back_to_the_primary():
    """With no healthy replica the primary takes the reader VIP; it goes back once they stream."""
    replicas = NAMES[1:]
    lib.wait_for(lambda: [h for h in vip_holders(READER_VIP) if h in replicas], timeout=30,
                 what='reader VIP on a replica')
    saved = {}
    for n in replicas:
        saved[n] = lib.psql(node(n), 'SHOW primary_conninfo')
        lib.psql(node(n), "ALTER SYSTEM SET primary_conninfo = ''")
        lib.psql(node(n), 'SELECT pg_reload_conf()')
    try:
        lib.wait_for(lambda: vip_holders(READER_VIP) == ['lifecycle-pg1'], timeout=30,
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


def test_vip_state_runs_unprivileged():
    n = node('lifecycle-pg2')
    assert lib.psql(node('lifecycle-pg1'), "SELECT rolsuper FROM pg_roles WHERE rolname = 'pgha_check'") == 'f'
    conf = n.file('/etc/keepalived/keepalived.conf')
    assert 'track_file' in conf.content_string and 'check_unicast_src' in conf.content_string
    assert 'vrrp_script' not in conf.content_string and 'authentication' not in conf.content_string
    state = n.service('pgha-vip-state')
    assert state.is_running and state.is_enabled
    pid = n.check_output('systemctl show -p MainPID --value pgha-vip-state')
    assert n.check_output('ps -o user= -p %s' % pid) == 'pgha_check'
    # a streaming replica: FAULT for the writer VIP, healthy for the reader VIP; the files say the same
    verdict = json.loads(n.check_output('runuser -u pgha_check -- python3 /usr/local/lib/pgha/pgha-vip-state --once'))
    assert (verdict['writer'], verdict['up'], verdict['reader']) == (254, 0, 1), verdict
    assert n.file('/run/pgha-vip/writer').content_string.strip() == '254'
    assert node('lifecycle-pg1').file('/run/pgha-vip/writer').content_string.strip() == '0'


def test_promote_refuses_while_the_primary_is_healthy():
    proc = run('promote.yml')
    assert proc.returncode != 0
    assert 'REFUSED' in proc.stdout and 'promote_force=true' in proc.stdout and 'switchover.yml' in proc.stdout
    assert lib.current_primary(NAMES) == 'lifecycle-pg1'


# --------------------------------------------------------------------------
# Walk 1: a dead primary
# --------------------------------------------------------------------------

def test_walk1_kill_the_primary_under_load_and_promote(tmp_path):
    writer = start_writer(WRITER_VIP)
    lib.wait_for(lambda: len(writer.acked) >= 150, timeout=30, what='150 acknowledged commits')
    lib.podman('kill', 'lifecycle-pg1')
    time.sleep(1.5)
    stop_writer(writer)
    assert writer.failures, 'the writer never noticed the primary died'

    proc = run('promote.yml', '--check')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'DECISION: PROMOTE' in proc.stdout and 'CHECK MODE' in proc.stdout
    assert lib.changed_hosts(proc.stdout) == {}
    assert [lib.role_of(node(n)) for n in NAMES[1:]] == ['standby', 'standby']

    proc = run('promote.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'write probe   : OK via %s' % WRITER_VIP in proc.stdout
    # the subscriber's failover slot is on the promoted node (logical.report)
    assert re.search(r'subscription  : app_sub on lifecycle-sub: slot app_sub on lifecycle-pg[23] ', proc.stdout), \
        proc.stdout[-3000:]
    lib.measured('walk 1: promote.yml took %s s' % re.search(r'PROMOTE SUMMARY \(([0-9.]+) s\)', proc.stdout).group(1))
    new = lib.current_primary(NAMES[1:])
    assert lib.summary_moves(proc.stdout) == (new, 'lifecycle-pg1')
    STATE['inventory'] = lib.inventory_as_summary_says(tmp_path, proc.stdout, NAMES)
    STATE['primary'] = new
    assert_nothing_lost(new)
    # run again (the scenario's own inventory still names the lost primary): nothing to do
    proc = run('promote.yml', inventory=lib.inventory_dir())
    assert proc.returncode == 0 and 'NOTHING TO DO' in proc.stdout, proc.stdout[-3000:]


def subscriber_matches(primary, what):
    """The logical subscriber (test_logical.py subscribed it) holds exactly the primary's rows of
    acked: a lost row or a row applied twice (the primary key stops the apply) never matches."""
    sub = node('lifecycle-sub')
    lib.wait_for(lambda: lib.table_digest(sub, 'acked') == lib.table_digest(node(primary), 'acked'), timeout=60,
                 what='%s: acked on the subscriber equal to %s' % (what, primary))
    assert lib.psql(sub, "SELECT oid FROM pg_subscription WHERE subname = 'app_sub'") == \
        lib.SHARED['subscription_oid'], 'the subscription was re-created'


def test_walk1_subscriber_follows_the_promoted_node():
    """PostgreSQL 17 failover slots: the subscription goes on from the promoted node through the
    writer VIP, with the same subscription and slot, and is not held back by the dead old primary."""
    new = STATE['primary']
    other = [n for n in NAMES[1:] if n != new][0]
    assert lib.psql(node(new), 'SHOW synchronized_standby_slots') == other.replace('-', '_')
    lib.psql(node(new), 'INSERT INTO acked (id) SELECT g FROM generate_series(800001, 800050) g', db='app')
    subscriber_matches(new, 'after promote.yml')
    assert lib.psql(node(new), "SELECT failover, active FROM pg_replication_slots WHERE slot_name = 'app_sub'") == \
        't|t'


def test_walk1_status_shows_the_new_timeline_at_once():
    """status.yml reads the current timeline, not the last checkpoint's."""
    new = STATE['primary']
    timeline = int(lib.psql(node(new), 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), 16)
    assert timeline >= 2
    proc = run('status.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    row = [line.split() for line in proc.stdout.splitlines() if re.search(r'\b%s\s+yes\s+PRIMARY' % new, line)]
    assert row and row[0][row[0].index('PRIMARY') + 1] == str(timeline), proc.stdout[-3000:]
    assert 'DEGRADED' in proc.stdout and 'lifecycle-pg1 unreachable' in proc.stdout
    assert 'subscription  : app_sub on lifecycle-sub: slot app_sub on %s' % new in proc.stdout, proc.stdout[-3000:]


def test_walk1_killed_primary_comes_back_fenced():
    lib.podman('start', 'lifecycle-pg1')
    old = node('lifecycle-pg1')
    lib.wait_booted('lifecycle-pg1', IPS['lifecycle-pg1'])
    lib.wait_for(lambda: 'REFUSING' in old.run('journalctl -u %s --no-pager' % SERVICE).stdout,
                 timeout=60, what='the start guard refusing')
    assert old.file(FENCE).exists and lib.role_of(old) == 'down'
    # for several VRRP rounds it never takes the writer VIP
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert vip_holders() == [STATE['primary']]
        time.sleep(1)


def test_walk1_site_refuses_the_fenced_node_and_touches_nothing():
    old = node('lifecycle-pg1')
    before = (lib.tree_fingerprint(old, DATA), [lib.config_fingerprint(node(n)) for n in NAMES],
              [lib.postmaster_started(node(n)) for n in NAMES])
    proc = run('site.yml')
    assert proc.returncode != 0
    flat = ' '.join(proc.stdout.split())
    assert 'lifecycle-pg1 is in group \'replicas\' but holds a former primary of this cluster (fenced' in flat, \
        flat[-3000:]
    assert 'pgha.cluster.rejoin -e rejoin_host=lifecycle-pg1' in flat
    assert lib.changed_hosts(proc.stdout) == {}
    after = (lib.tree_fingerprint(old, DATA), [lib.config_fingerprint(node(n)) for n in NAMES],
             [lib.postmaster_started(node(n)) for n in NAMES])
    assert after == before


def test_walk1_rejoin_rewinds_the_old_primary():
    proc = run('rejoin.yml', '-e', 'rejoin_host=lifecycle-pg1')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'method        : pg_rewind' in proc.stdout
    old = node('lifecycle-pg1')
    assert lib.psql(old, 'SELECT status, sender_host FROM pg_stat_wal_receiver') == \
        'streaming|%s' % IPS[STATE['primary']]
    STATE['pg1_system_id'] = lib.psql(old, 'SELECT system_identifier FROM pg_control_system()')


def test_walk1_site_refuses_the_stale_inventory():
    """The scenario's own inventory still names lifecycle-pg1 as the primary."""
    proc = run('site.yml', inventory=lib.inventory_dir())
    assert proc.returncode != 0
    flat = ' '.join(proc.stdout.split())
    assert "lifecycle-pg1 is in group 'primary' but runs as a replica: the inventory is out of date" in flat, \
        flat[-3000:]
    assert lib.changed_hosts(proc.stdout) == {}


def test_walk1_site_after_rejoin_changes_nothing():
    """The node that created the cluster is now a replica: site.yml must not see it as an
    untouched new cluster (it used to stop it, delete it and clone it again, every run)."""
    started = lib.postmaster_started(node('lifecycle-pg1'))
    assert_site_changes_nothing('after rejoin.yml')
    old = node('lifecycle-pg1')
    assert lib.postmaster_started(old) == started
    assert lib.psql(old, 'SELECT system_identifier FROM pg_control_system()') == STATE['pg1_system_id']
    assert old.run('ls -d %s.pgha-old-* 2>/dev/null' % DATA).stdout.strip() == ''


def test_walk1_switchover_back_under_load(tmp_path):
    writer = start_writer(WRITER_VIP)
    lib.wait_for(lambda: len(writer.acked) >= 50, timeout=30, what='50 acknowledged commits')
    proc = run('switchover.yml', '-e', 'switchover_candidate=lifecycle-pg1')
    time.sleep(1)
    stop_writer(writer)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.current_primary(NAMES) == 'lifecycle-pg1'
    lib.measured('walk 1: switchover.yml back: writes refused %s s'
                 % re.search(r'writes refused: ([0-9.]+) s', proc.stdout).group(1))
    assert lib.summary_moves(proc.stdout) == ('lifecycle-pg1', STATE['primary'])
    STATE['inventory'] = lib.inventory_as_summary_says(tmp_path, proc.stdout, NAMES)
    STATE['primary'] = 'lifecycle-pg1'
    lib.wait_for(lambda: vip_holders() == ['lifecycle-pg1'], timeout=30, what='writer VIP back on lifecycle-pg1')
    assert_nothing_lost('lifecycle-pg1')


def test_walk1_site_after_switchover_changes_nothing():
    assert_site_changes_nothing('after switchover.yml')
    subscriber_matches('lifecycle-pg1', 'after switchover.yml back')


# --------------------------------------------------------------------------
# Walk 2: a partitioned primary fences itself when the network heals
# --------------------------------------------------------------------------

def test_walk2_partitioned_primary_fences_itself_after_the_heal(tmp_path):
    old = STATE['primary']
    # a client that reaches the old primary by its own address (libpq's multi-host string)
    writer = start_writer(IPS[old])
    lib.wait_for(lambda: len(writer.acked) >= 50, timeout=30, what='50 acknowledged commits')
    lib.isolate(old, IPS)
    isolated_at = time.monotonic()
    acked_before = len(writer.acked)
    try:
        unreachable = lib.unreachable_inventory(STATE['inventory'], old, tmp_path)
        proc = run('promote.yml', inventory=unreachable)
        assert proc.returncode == 0, proc.stdout[-6000:]
        new = lib.current_primary([n for n in NAMES if n != old])
        assert 'UNREACHABLE' in proc.stdout
        # cut off, with no peer to ask, the old primary keeps running (it cannot tell)
        assert lib.role_of(node(old)) == 'primary' and not node(old).file(FENCE).exists
    finally:
        lib.isolate(old, IPS, heal=True)
    healed_at = time.monotonic()
    lib.wait_for(lambda: node(old).file(FENCE).exists and lib.role_of(node(old)) == 'down',
                 timeout=FENCE_BOUND + 20, interval=0.25, what='%s fenced and stopped' % old)
    took = time.monotonic() - healed_at
    lib.measured('walk 2: the partitioned primary fenced itself %.1f s after the heal (bound %d s, isolated for %.0f s)'
                 % (took, FENCE_BOUND, healed_at - isolated_at))
    assert took <= FENCE_BOUND, 'fenced only after %.1f s (bound %d s)' % (took, FENCE_BOUND)
    # the fence watch logs its second line once `systemctl stop` returned, which can be after the
    # server is seen down
    lib.wait_for(lambda: all(w in node(old).run('journalctl -u pgha-fence-watch --no-pager').stdout
                             for w in ('FENCING this running primary', 'rejoin.yml -e rejoin_host=%s' % old)),
                 timeout=20, what="the fence watch's two log lines")
    # the fence watch's stop stays a stop: no automatic restart (Restart=on-abnormal, test_faults.py)
    time.sleep(3)
    assert node(old).run('systemctl show -p NRestarts --value %s' % SERVICE).stdout.strip() == '0'
    assert lib.role_of(node(old)) == 'down'
    stop_writer(writer)
    # with synchronous replication the cut-off primary acknowledged nothing new (at most the one
    # commit in flight at the instant of the cut, whose standby ack was already on its way), and
    # assert_nothing_lost below proves that every acknowledged commit is on the new primary
    assert len(writer.acked) - acked_before <= 1, 'the cut-off primary acknowledged %d commits' % (
        len(writer.acked) - acked_before)
    assert [n for n in NAMES if lib.role_of(node(n)) == 'primary'] == [new]
    assert_nothing_lost(new)
    STATE['inventory'] = lib.inventory_as_summary_says(tmp_path, proc.stdout, NAMES)
    STATE['primary'] = new
    proc = run('rejoin.yml', '-e', 'rejoin_host=%s' % old)
    assert proc.returncode == 0, proc.stdout[-6000:]


# --------------------------------------------------------------------------
# Walk 3: a split brain, and the way out
# --------------------------------------------------------------------------

def test_walk3_split_brain_is_shown_and_ended_by_rejoin(tmp_path):
    old = STATE['primary']
    # a node whose fence watch is off (stopped by hand): nothing ends the split brain by itself
    assert node(old).run('systemctl stop pgha-fence-watch').rc == 0
    lib.isolate(old, IPS)
    try:
        unreachable = lib.unreachable_inventory(STATE['inventory'], old, tmp_path)
        proc = run('promote.yml', inventory=unreachable)
        assert proc.returncode == 0, proc.stdout[-6000:]
        new = lib.current_primary([n for n in NAMES if n != old])
        # writes the old primary takes on its own (synchronous_commit=local: a client that did not wait)
        lib.psql(node(old), "SET synchronous_commit = local; INSERT INTO acked (id) SELECT g FROM "
                            "generate_series(900000, 900999) g", db='app')
    finally:
        lib.isolate(old, IPS, heal=True)
    STATE['inventory'] = lib.inventory_as_summary_says(tmp_path, proc.stdout, NAMES)
    time.sleep(3)
    assert sorted(n for n in NAMES if lib.role_of(node(n)) == 'primary') == sorted([old, new])

    proc = run('status.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    flat = ' '.join(proc.stdout.split())
    assert 'SPLIT BRAIN: 2 nodes run as primary. Keep %s' % new in flat, flat[-4000:]
    assert re.search(r'DISCARD %s: timeline \d+, lsn \S+, [1-9]\d* bytes of WAL written after the fork' % old, flat)
    assert 'rejoin_host=%s -e rejoin_split_brain_confirm=true' % old in flat

    proc = run('promote.yml')
    assert proc.returncode != 0 and 'rejoin_split_brain_confirm' in proc.stdout

    proc = run('rejoin.yml', '-e', 'rejoin_host=%s' % old)
    assert proc.returncode != 0
    assert 'REFUSED: Split brain' in proc.stdout and 'rejoin_split_brain_confirm=true' in proc.stdout
    assert lib.role_of(node(old)) == 'primary'

    proc = run('rejoin.yml', '-e', 'rejoin_host=%s' % old, '-e', 'rejoin_split_brain_confirm=true')
    assert proc.returncode == 0, proc.stdout[-6000:]
    flat = ' '.join(proc.stdout.split())
    m = re.search(r'kept aside : (%s\.pgha-splitbrain-\d{8}T\d{6})' % re.escape(DATA), flat)
    assert m, flat[-3000:]
    kept = m.group(1)
    # the copy holds what the old primary wrote after the fork; the cluster does not
    assert node(old).file(kept + '/PG_VERSION').exists
    assert lib.psql(node(new), 'SELECT count(*) FROM acked WHERE id BETWEEN 900000 AND 900999', db='app') == '0'
    assert lib.psql(node(old), 'SELECT status FROM pg_stat_wal_receiver') == 'streaming'
    assert node(old).run('systemctl start pgha-fence-watch').rc == 0
    STATE['primary'] = new


def test_walk3_site_after_the_split_brain_changes_nothing_and_data_agrees():
    assert_site_changes_nothing('after the split brain')
    primary = STATE['primary']
    assert_nothing_lost(primary)
    lib.psql(node(primary), 'INSERT INTO acked (id) VALUES (2000000)', db='app')
    for n in NAMES:
        lib.wait_for(lambda: lib.psql(node(n), 'SELECT count(*) FROM acked WHERE id = 2000000', db='app') == '1',
                     timeout=30, what='the last row on %s' % n)
    digests = dict((n, lib.table_digest(node(n), 'acked')) for n in NAMES)
    assert len(set(digests.values())) == 1, digests
    lib.measured('acknowledged commits over the whole walk: %d, none lost' % len(STATE['acked']))


def test_promote_refuses_a_lagging_candidate():
    """Last (it kills the primary): a candidate that stopped streaming is refused."""
    primary = STATE['primary']
    lagging = [n for n in NAMES if n != primary][0]
    lib.psql(node(lagging), "ALTER SYSTEM SET primary_conninfo = ''")
    lib.psql(node(lagging), 'SELECT pg_reload_conf()')
    lib.wait_for(lambda: lib.psql(node(lagging), 'SELECT count(*) FROM pg_stat_wal_receiver') == '0',
                 timeout=30, what='%s stopped streaming' % lagging)
    lib.psql(node(primary), 'SET synchronous_commit = local; '
                            'INSERT INTO acked (id) SELECT g FROM generate_series(3000000, 3020000) g', db='app')
    lib.podman('kill', primary)
    proc = run('promote.yml', '-e', 'promote_candidate=%s' % lagging)
    assert proc.returncode != 0
    assert 'REFUSED' in proc.stdout and 'promote_max_lag_bytes' in proc.stdout, proc.stdout[-4000:]
    assert lib.role_of(node(lagging)) == 'standby'


@pytest.fixture(autouse=True, scope='module')
def _report_state():
    yield
    print('lifecycle state at the end: %s' % dict((k, v) for k, v in STATE.items() if k != 'acked'))

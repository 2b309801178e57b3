"""Automatic failover on Patroni and etcd, on the cluster converge.yml provisioned in manual mode.

The walk, one cluster, the tests in order: site.yml hands the running cluster over to Patroni under a
writing client (same system identifier on every member, no basebackup, every acknowledged write kept),
site.yml again changes nothing; then the faults Patroni decides alone, no runbook run: the primary's
container killed (a new primary written to through the writer VIP, the killed node back as a replica by
itself), its postmaster killed (restarted in place, same timeline), an etcd member lost (nothing changes),
the primary partitioned (it stops taking writes, one primary after the heal). After each, the inventory
is updated to Patroni's leader and site.yml changes nothing. Each figure measured goes to the run's
summary (bench/failover prints them against the manual engine).
"""

import json
import shlex
import time

import pgha_testlib as lib

NODES = ['patroni-pg1', 'patroni-pg2', 'patroni-pg3']
IPS = dict((n, '10.89.80.%d' % (11 + i)) for i, n in enumerate(NODES))
WRITER_VIP = '10.89.80.100'
APP_PASSWORD = 'patroni-app-secret'
CONFIG = '/etc/patroni/config.yml'
#: the fast preset's ttl (molecule.yml: patroni_rto: fast)
TTL = 20

STATE = lib.SHARED.setdefault('patroni', {})


def node(name):
    return lib.host(name)


def members(via=None):
    """Patroni's view of the cluster, {name: {Role, State, TL, ...}}, asked on a member that answers."""
    for name in ([via] if via else []) + NODES:
        cmd = node(name).run('patronictl -c %s list -f json' % CONFIG)
        if cmd.rc == 0 and cmd.stdout.strip():
            return dict((m['Member'], m) for m in json.loads(cmd.stdout))
    raise AssertionError('no member answered patronictl list')


def leader(via=None):
    found = [n for n, m in members(via).items() if m['Role'] == 'Leader']
    return found[0] if len(found) == 1 else None


def wait_healthy(expected=3, timeout=120):
    """One leader and expected - 1 streaming replicas, as Patroni sees them; returns the leader."""
    def healthy():
        view = members()
        lead = [n for n, m in view.items() if m['Role'] == 'Leader' and m['State'] == 'running']
        streaming = [n for n, m in view.items() if m['Role'] != 'Leader' and m['State'] == 'streaming']
        return lead[0] if len(lead) == 1 and len(streaming) == expected - 1 else None
    return lib.wait_for(healthy, timeout=timeout, interval=2, what='a leader and %d streaming replicas' % (expected - 1))


def patroni_inventory(tmp_path_factory, primary):
    """The scenario's inventory with postgresql_failover_engine=patroni and the primary Patroni elected."""
    path = tmp_path_factory.mktemp('patroni-inventory')
    return lib.edit_inventory(path, groups={'primary': [primary], 'replicas': [n for n in NODES if n != primary]},
                              host_vars=dict((n, {'postgresql_failover_engine': 'patroni'}) for n in NODES))


def site_changes_nothing(tmp_path_factory, what):
    primary = wait_healthy()
    inventory = patroni_inventory(tmp_path_factory, primary)
    proc = lib.run_playbook_with(inventory, 'site.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.changed_hosts(proc.stdout) == {}, 'site.yml changed something after %s:\n%s' % (what, proc.stdout[-6000:])


def system_identifiers():
    return dict((n, lib.psql(node(n), 'SELECT system_identifier FROM pg_control_system()')) for n in NODES)


def writer():
    w = lib.Writer(WRITER_VIP, APP_PASSWORD, start_id=STATE.get('next_id', 1), pause=0.01)
    w.start()
    lib.wait_for(lambda: len(w.acked) > 20, timeout=30, what='the client writing through the writer VIP')
    return w


def finish(w):
    w.stop.set()
    w.join(10)
    STATE['next_id'] = w.next_id + 1
    STATE.setdefault('acked', []).extend(w.acked)


def assert_nothing_lost():
    primary = wait_healthy()
    lost = lib.missing_ids(node(primary), STATE.get('acked', []))
    assert not lost, '%d acknowledged writes lost, e.g. %s' % (len(lost), sorted(lost)[:10])


def test_site_hands_a_running_manual_cluster_over_to_patroni(tmp_path_factory):
    before = system_identifiers()
    assert len(set(before.values())) == 1, before
    w = writer()
    proc = lib.run_playbook_with(patroni_inventory(tmp_path_factory, 'patroni-pg1'), 'site.yml')
    finish(w)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert system_identifiers() == before, 'a data directory was replaced'
    for name in NODES:
        log = node(name).run('journalctl -u patroni --no-pager -o cat').stdout
        assert 'basebackup' not in log.lower(), '%s was cloned again:\n%s' % (name, log[-2000:])
        unit = node(name).run('systemctl is-enabled postgresql@17-main').stdout.strip()
        assert unit == 'disabled', "%s: systemd's unit would start a second server at boot (%s)" % (name, unit)
        assert node(name).run('systemctl is-failed --quiet postgresql@17-main').rc != 0, name
    assert wait_healthy() == 'patroni-pg1'
    assert_nothing_lost()
    lib.measured('patroni adoption: write gap %.1f s (%d failed attempts, %d acknowledged writes kept)'
                 % (w.window(), len(w.failures), len(w.acked)))


def test_site_changes_nothing_once_patroni_runs_the_cluster(tmp_path_factory):
    site_changes_nothing(tmp_path_factory, 'the hand-over')


def test_the_manual_engines_runbooks_refuse_a_patroni_cluster(tmp_path_factory):
    for runbook, options in (('promote.yml', []), ('switchover.yml', []), ('rejoin.yml', ['-e', 'rejoin_host=patroni-pg2'])):
        before = dict((n, lib.postmaster_started(node(n))) for n in NODES)
        proc = lib.run_playbook_with(patroni_inventory(tmp_path_factory, leader()), runbook, *options)
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert 'postgresql_failover_engine=patroni' in proc.stdout and 'patronictl' in proc.stdout, proc.stdout[-3000:]
        assert dict((n, lib.postmaster_started(node(n))) for n in NODES) == before


def test_etcd_is_three_members_with_tls_and_client_certificates():
    ca = '--cacert=/etc/pgha/tls/ca.crt'
    cmd = node('patroni-pg1').run('etcdctl --endpoints=https://127.0.0.1:2379 %s --cert=/etc/pgha/tls/etcd.crt '
                                  '--key=/etc/pgha/tls/etcd.key member list -w json' % ca)
    assert cmd.rc == 0, cmd.stderr
    assert sorted(m['name'] for m in json.loads(cmd.stdout)['members']) == NODES
    # without a client certificate of the cluster's CA nothing is read
    anonymous = node('patroni-pg2').run('etcdctl --endpoints=https://10.89.80.11:2379 %s get --prefix /pgha/' % ca)
    # (etcd ends the TLS handshake of a client without a certificate: the client sees a broken pipe)
    assert anonymous.rc != 0 and '/pgha/' not in anonymous.stdout, anonymous.stdout + anonymous.stderr


REST_PROBE = """
import ssl, sys, urllib.error, urllib.request
url, method = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile='/etc/pgha/tls/ca.crt')
try:
    print(urllib.request.urlopen(urllib.request.Request(url, method=method, data=b'' if method == 'POST' else None),
                                 context=ctx, timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:
    print('refused: %s' % e.__class__.__name__)
"""


def rest(name, url, method='GET'):
    return node(name).run('python3 -c %s %s %s' % (shlex.quote(REST_PROBE), url, method)).stdout.strip()


def test_the_rest_api_wants_tls_and_a_password_for_changes():
    assert rest('patroni-pg2', 'https://10.89.80.11:8008/patroni') == '200'
    plain = rest('patroni-pg2', 'http://10.89.80.11:8008/patroni')
    assert plain.startswith('refused') or plain == '400', 'plain HTTP answered: %s' % plain
    assert rest('patroni-pg2', 'https://10.89.80.11:8008/restart', 'POST') == '401', 'a restart without the password'


def test_killed_primary_is_replaced_with_no_runbook_and_rejoins_by_itself(tmp_path_factory):
    old = wait_healthy()
    w = writer()
    killed = time.monotonic()
    lib.podman('kill', old)
    survivors = [n for n in NODES if n != old]
    lib.wait_for(lambda: w.first_ack_after(killed + 0.5), timeout=120, interval=0.5,
                 what='a write through the writer VIP after the kill')
    new = leader(survivors[0])
    assert new in survivors
    first = w.first_ack_after(killed + 0.5)
    time.sleep(2)
    finish(w)
    lib.measured('patroni fast preset: primary container killed -> first write through the VIP %.1f s' % first)
    lib.podman('start', old)
    lib.wait_booted(old, IPS[old])
    assert wait_healthy(timeout=180) == new
    assert members()[old]['State'] == 'streaming'
    assert lib.role_of(node(old)) == 'standby'
    assert_nothing_lost()
    site_changes_nothing(tmp_path_factory, 'the failover')


def test_killed_postmaster_restarts_in_place_without_failover():
    primary = wait_healthy()
    timeline = members()[primary]['TL']
    w = writer()
    pid = node(primary).run('head -1 /var/lib/postgresql/17/main/postmaster.pid').stdout.strip()
    killed = time.monotonic()
    assert node(primary).run('kill -9 %s' % pid).rc == 0
    lib.wait_for(lambda: w.first_ack_after(killed + 0.5), timeout=90, interval=0.5,
                 what='a write after the postmaster was killed')
    first = w.first_ack_after(killed + 0.5)
    time.sleep(2)
    finish(w)
    assert wait_healthy() == primary, 'Patroni failed over instead of restarting the server in place'
    assert members()[primary]['TL'] == timeline
    assert_nothing_lost()
    lib.measured('patroni: postmaster killed -> first write %.1f s (restarted in place)' % first)


def test_losing_one_etcd_member_changes_nothing():
    primary = wait_healthy()
    other = [n for n in NODES if n != primary][0]
    w = writer()
    assert node(other).run('systemctl stop etcd').rc == 0
    try:
        time.sleep(TTL + 5)
        assert leader(primary) == primary
        assert len(w.failures) == 0, '%d writes failed with one etcd member down' % len(w.failures)
    finally:
        node(other).run('systemctl start etcd')
        finish(w)
    assert wait_healthy() == primary
    assert_nothing_lost()


def test_partitioned_primary_stops_taking_writes_and_one_primary_remains(tmp_path_factory):
    old = wait_healthy()
    survivors = [n for n in NODES if n != old]
    w = writer()
    cut = time.monotonic()
    lib.isolate(old, IPS)
    try:
        lib.wait_for(lambda: leader(survivors[0]) in survivors, timeout=TTL * 3, interval=1,
                     what='a new leader among %s' % survivors)
        # the old primary, unable to renew its lock, demotes itself
        lib.wait_for(lambda: lib.role_of(node(old)) != 'primary', timeout=TTL * 2, interval=1,
                     what='%s to stop being a primary' % old)
        demoted = time.monotonic() - cut
    finally:
        lib.isolate(old, IPS, heal=True)
    finish(w)
    assert wait_healthy(timeout=180) in survivors
    primaries = [n for n in NODES if lib.role_of(node(n)) == 'primary']
    assert len(primaries) == 1, primaries
    assert_nothing_lost()
    lib.measured('patroni: partitioned primary no longer a primary %.1f s after the cut (ttl %d s)' % (demoted, TTL))
    site_changes_nothing(tmp_path_factory, 'the partition')

"""The catalogue of bad input, every case run against the running cluster:
site.yml fails in its preflight, before any change, with a message that names
the variable (and the fix); the members' configuration files and postmaster
start times are the same afterwards, and no secret is ever printed.

The cases run three at a time (each is one site.yml that stops in the
preflight); the one that removes a member's default route runs alone.
"""

import concurrent.futures
import json
import os
import re
import zlib

import pytest

import pgha_testlib as lib

MEMBERS = ['default-pg1', 'default-pg2', 'default-pg3']
SPARE = 'default-spare'

CASES = {
    # --- the inventory ---------------------------------------------------------
    'no primary': dict(
        primary=[], replicas=MEMBERS,
        expect=r"The inventory group 'primary' \(postgresql_primary_group\) must hold exactly one host; it holds 0"),
    'two primaries': dict(
        primary=['default-pg1', 'default-pg2'], replicas=['default-pg3'],
        expect=r"must hold exactly one host; it holds 2: default-pg1, default-pg2"),
    'replica also primary': dict(
        primary=['default-pg1'], replicas=MEMBERS,
        expect=r"default-pg1 is in both 'primary' \(postgresql_primary_group\) and 'replicas'"),
    'backup host is a member': dict(
        backup=['default-pg3'],
        expect=r"default-pg3 is both the backup host \(group 'backup'\) and a cluster member"),
    # --- secrets, versions, types ------------------------------------------------
    'missing replication password': dict(
        extra_vars={'postgresql_replication_password': ''},
        expect=r"postgresql_replication_password is empty or shorter than 8 characters"),
    'unsupported version': dict(
        extra_vars={'postgresql_version': 11},
        expect=r"postgresql_version=11, but default-pg\d runs Debian 13 \(trixie\), which ships PostgreSQL 17 only\. "
               r"Fix: set postgresql_version to 17"),
    'PostgreSQL 15 on Debian 13 (Debian 12 ships it)': dict(
        extra_vars={'postgresql_version': 15},
        expect=r"postgresql_version=15, but default-pg\d runs Debian 13 \(trixie\), which ships PostgreSQL 17 only\..*"
               r"use hosts of the Debian release that ships 15 \(Debian 12\)"),
    'wrong variable type (argument_specs)': dict(
        extra_vars={'postgresql_port': 'five-four-three-two'},
        expect=r"postgresql_port.*(unable to convert to int|is of type)"),
    'wrong type in another role (argument_specs)': dict(
        extra_vars={'pg_primary_databases': 'app'},
        expect=r"pg_primary_databases.*(is of type|unable to convert to list)"),
    'start guard: unknown choice': dict(
        extra_vars={'postgresql_start_guard_when_alone': 'maybe'},
        expect=r"postgresql_start_guard_when_alone.*(one of|choices)"),
    # --- members: slots and addresses -------------------------------------------------
    'invalid slot name': dict(
        host_vars={'default-pg2': {'postgresql_slot_name': 'Bad-Slot!'}},
        expect=r"postgresql_slot_name 'Bad-Slot!' on default-pg2 is not a valid replication slot name"),
    'duplicate slot names': dict(
        host_vars={'default-pg2': {'postgresql_slot_name': 'same'}, 'default-pg3': {'postgresql_slot_name': 'same'}},
        expect=r"default-pg2 and default-pg3 would use the same replication slot 'same'"),
    'slot of a replica collides with the primary': dict(
        host_vars={'default-pg3': {'postgresql_slot_name': 'default_pg1'}},
        expect=r"default-pg1 and default-pg3 would use the same replication slot 'default_pg1'"),
    'host address is not an IP': dict(
        host_vars={'default-pg2': {'postgresql_host_address': 'db2.example.com'}},
        expect=r"postgresql_host_address 'db2.example.com' of default-pg2 is not an IP address"),
    'two members with one address': dict(
        host_vars={'default-pg3': {'postgresql_host_address': '10.89.74.12'}},
        expect=r"default-pg2 and default-pg3 have the same address 10.89.74.12"),
    # --- settings that would stop the server or replication -------------------------
    'wal_level minimal': dict(
        extra_vars={'postgresql_settings': {'wal_level': 'minimal'}},
        expect=r"postgresql_settings\.wal_level=minimal would stop the server"),
    'hot_standby off': dict(
        extra_vars={'postgresql_settings': {'hot_standby': False}},
        expect=r"postgresql_settings\.hot_standby=off is refused"),
    'ssl off': dict(
        extra_vars={'postgresql_settings': {'ssl': 'off'}},
        expect=r"postgresql_settings\.ssl=off is refused"),
    'password_encryption md5': dict(
        extra_vars={'postgresql_settings': {'password_encryption': 'md5'}},
        expect=r"postgresql_settings\.password_encryption=md5 is refused"),
    'max_wal_senders too low': dict(
        extra_vars={'postgresql_settings': {'max_wal_senders': 2}},
        expect=r"postgresql_settings\.max_wal_senders=2 is too low for 3 members: they need at least 6"),
    'max_replication_slots too low': dict(
        extra_vars={'postgresql_settings': {'max_replication_slots': 1}},
        expect=r"postgresql_settings\.max_replication_slots=1 is too low for 3 members: they need at least 2"),
    'max_wal_senders not below max_connections': dict(
        extra_vars={'postgresql_settings': {'max_connections': 20, 'max_wal_senders': 20}},
        expect=r"max_wal_senders=20 must be less than max_connections=20"),
    'role-owned parameter in another case': dict(
        extra_vars={'postgresql_settings': {'Port': 6543}},
        expect=r"postgresql_settings\.Port cannot be set: use postgresql_port"),
    'role-owned parameter in the host dict': dict(
        host_vars={'default-pg2': {'postgresql_host_settings': {'primary_slot_name': 'x'}}},
        expect=r"postgresql_host_settings\.primary_slot_name cannot be set"),
    'recovery target in the settings': dict(
        extra_vars={'postgresql_settings': {'recovery_target_time': '2026-01-01'}},
        expect=r"postgresql_settings\.recovery_target_time cannot be set: .*restore\.yml owns"),
    'key with a newline': dict(
        extra_vars={'postgresql_settings': {'work_mem\ninclude': '1MB'}},
        expect=r"postgresql_settings has the key .*which is not a parameter name"),
    'value with a newline': dict(
        extra_vars={'postgresql_settings': {'application_name': "x'\ninclude_dir '/tmp"}},
        expect=r"postgresql_settings\.application_name holds a newline"),
    'one parameter twice in two cases': dict(
        extra_vars={'postgresql_settings': {'work_mem': '8MB', 'WORK_MEM': '16MB'}},
        expect=r"postgresql_settings sets work_mem twice"),
    'a list as a value': dict(
        extra_vars={'postgresql_settings': {'shared_preload_libraries': ['pg_stat_statements']}},
        expect=r"postgresql_settings\.shared_preload_libraries must be a string, a number or a boolean"),
    'listen only on localhost': dict(
        extra_vars={'postgresql_settings': {'listen_addresses': 'localhost'}},
        expect=r"listen_addresses='localhost' does not include this member's address"),
    'a standby-sensitive limit per host': dict(
        host_vars={'default-pg3': {'postgresql_host_settings': {'max_connections': 50}}},
        expect=r"postgresql_host_settings\.max_connections is refused"),
    'synchronous count above the standbys': dict(
        extra_vars={'postgresql_synchronous_mode': 'any', 'postgresql_synchronous_count': 3},
        expect=r"postgresql_synchronous_count=3 is more than the 2 standby\(s\)"),
    'synchronous names that are not application names': dict(
        extra_vars={'postgresql_synchronous_mode': 'first', 'postgresql_synchronous_names': ['pg2", "x']},
        expect=r"postgresql_synchronous_names holds"),
    'clone concurrency of zero': dict(
        extra_vars={'pg_replica_clone_concurrency': 0},
        expect=r"pg_replica_clone_concurrency must be a whole number of replicas, 1 or more \(got 0\)"),
    'basebackup arguments that override the role': dict(
        extra_vars={'pg_replica_basebackup_extra_args': ['--pgdata=/tmp/elsewhere']},
        expect=r"pg_replica_basebackup_extra_args may not set --pgdata=/tmp/elsewhere"),
    # --- databases and users ------------------------------------------------------------
    'user name with a comma (a grant could reach PUBLIC)': dict(
        extra_vars={'pg_primary_users': [{'name': 'app,PUBLIC', 'db': 'app'}]},
        expect=r"pg_primary_users\[0\] name 'app,PUBLIC' is refused"),
    'user named public': dict(
        extra_vars={'pg_primary_users': [{'name': 'public'}]},
        expect=r"PUBLIC and names starting with pg_ are PostgreSQL's own"),
    'user with SUPERUSER': dict(
        extra_vars={'pg_primary_users': [{'name': 'boss', 'role_attr_flags': 'LOGIN,SUPERUSER'}]},
        expect=r"role_attr_flags SUPERUSER give power over the whole server\. Refused unless "
               r"pg_primary_privileged_users_allowed=true"),
    'user with CREATEROLE': dict(
        extra_vars={'pg_primary_users': [{'name': 'boss', 'role_attr_flags': 'createrole'}]},
        expect=r"role_attr_flags CREATEROLE give power"),
    'user that redefines the replication role': dict(
        extra_vars={'pg_primary_users': [{'name': 'replicator', 'password': 'x'}]},
        expect=r"pg_primary_users\[0\] \(replicator\) is refused: the collection manages that role itself"),
    'privilege that is not one': dict(
        extra_vars={'pg_primary_users': [{'name': 'app', 'db': 'app', 'priv': 'ALL; DROP TABLE x'}]},
        expect=r"priv 'ALL; DROP TABLE x' is refused"),
    'database name with a quote': dict(
        extra_vars={'pg_primary_databases': [{'name': "app'; DROP"}]},
        expect=r"pg_primary_databases\[0\] name \"app'; DROP\" is refused"),
    # --- VIPs -----------------------------------------------------------------------------
    'VIP outside the members\' subnet': dict(
        extra_vars={'keepalived_writer_vip': '10.99.0.100/24'},
        expect=r"keepalived_writer_vip=10\.99\.0\.100/24 is not in the subnet of default-pg1 \(10\.89\.74\.11\)"),
    'VIP without a prefix length': dict(
        extra_vars={'keepalived_writer_vip': '10.89.74.100'},
        expect=r"keepalived_writer_vip='10\.89\.74\.100' must be an IPv4 address with its prefix length"),
    'VIP on a member\'s address': dict(
        extra_vars={'keepalived_writer_vip': '10.89.74.12/24'},
        expect=r"keepalived_writer_vip=10\.89\.74\.12/24 is the address of default-pg2 itself"),
    'reader VIP equal to the writer VIP': dict(
        extra_vars={'keepalived_reader_vip': '10.89.74.100/24'},
        expect=r"keepalived_reader_vip must differ from keepalived_writer_vip"),
    'VRRP password of an earlier version (VRRPv3 has none)': dict(
        extra_vars={'keepalived_auth_pass': 'SNTL-old'},
        expect=r"keepalived_auth_pass is set, but the VIPs use VRRP version 3, which has no authentication"),
    'writer advert interval of 0': dict(
        extra_vars={'keepalived_writer_advert_int': 0},
        expect=r"keepalived_writer_advert_int \(0\) and keepalived_reader_advert_int \(1\) must be seconds from 0\.01 to 40"),
    'state interval too long': dict(
        extra_vars={'keepalived_state_interval': 30},
        expect=r"keepalived_state_interval \(30\) seconds from 0\.05 to 5"),
    'same router id twice': dict(
        extra_vars={'keepalived_reader_router_id': 71},
        expect=r"keepalived_writer_router_id and keepalived_reader_router_id must be distinct"),
    # --- open access through pg_hba (each lifted only by naming its risk) -------------------
    'trust from anywhere': dict(
        extra_vars={'postgresql_hba_entries': [
            {'contype': 'host', 'databases': 'all', 'users': 'all', 'source': '0.0.0.0/0', 'method': 'trust'}]},
        expect=r"postgresql_hba_entries\[\d\] \(host from 0\.0\.0\.0/0, users all, method trust\) is refused: anyone "
               r"who reaches the server .* add network_logins_without_password to postgresql_accepted_risks"),
    'local trust for everyone': dict(
        extra_vars={'postgresql_hba_entries': [{'contype': 'local', 'databases': 'all', 'users': 'all',
                                                'method': 'trust'}]},
        expect=r"postgresql_hba_entries\[\d\] \(local, users all, method trust\) is refused: every account on the "
               r"host logs in as any role.* local_logins_as_anyone"),
    'md5 over the network': dict(
        extra_vars={'postgresql_hba_entries': [{'contype': 'hostssl', 'databases': 'app', 'users': 'app',
                                                'source': '10.89.74.0/24', 'method': 'md5'}]},
        expect=r"postgresql_hba_entries\[\d\] \(hostssl from 10\.89\.74\.0/24, users app, method md5\) is refused.*"
               r"Fix: method scram-sha-256; or, if you mean it, add weak_password_methods"),
    'ident over the network': dict(
        extra_vars={'postgresql_hba_entries': [{'contype': 'hostssl', 'databases': 'app', 'users': 'app',
                                                'source': '10.89.74.0/24', 'method': 'ident'}]},
        expect=r"method ident\) is refused \(ident over the network believes what the client's host says\)"),
    'plain host entry carrying passwords': dict(
        extra_vars={'postgresql_hba_entries': [{'contype': 'host', 'databases': 'app', 'users': 'app',
                                                'source': '10.89.74.0/24', 'method': 'scram-sha-256'}]},
        expect=r"\(host from 10\.89\.74\.0/24, users app, method scram-sha-256\) is refused: a plain host entry also "
               r"matches connections without TLS: .*Fix: contype hostssl .*passwords_without_tls"),
    'pg_hba field with a newline': dict(
        extra_vars={'postgresql_hba_entries': [{'contype': 'hostssl', 'databases': 'app',
                                                'users': 'app\nhost all all 0.0.0.0/0 trust',
                                                'source': '10.89.74.0/24', 'method': 'scram-sha-256'}]},
        expect=r"postgresql_hba_entries\[\d\]: users holds a space, a newline or another control character"),
    # --- durability and secrets in the settings --------------------------------------------
    'fsync off': dict(
        extra_vars={'postgresql_settings': {'fsync': 'off'}},
        expect=r"postgresql_settings\.fsync=off is refused: a crash of the host can corrupt the data directory.* "
               r"add data_corruption to postgresql_accepted_risks"),
    'full_page_writes off': dict(
        extra_vars={'postgresql_settings': {'full_page_writes': False}},
        expect=r"postgresql_settings\.full_page_writes=off is refused.*data_corruption"),
    'synchronous_commit off': dict(
        extra_vars={'postgresql_settings': {'synchronous_commit': 'off'}},
        expect=r"postgresql_settings\.synchronous_commit=off is refused: commits the clients saw acknowledged can be "
               r"lost.* acknowledged_commit_loss"),
    'unbounded slot WAL retention': dict(
        extra_vars={'postgresql_settings': {'max_slot_wal_keep_size': -1}},
        expect=r"postgresql_settings\.max_slot_wal_keep_size=-1 is refused: a replica that stays down keeps its slot "
               r"holding WAL until the primary's disk is full.* unbounded_wal_retention"),
    'every statement in the server log': dict(
        extra_vars={'postgresql_settings': {'log_statement': 'all'}},
        expect=r"postgresql_settings\.log_statement=all is refused: statements that set passwords .* are written to "
               r"the server log.* passwords_in_server_log"),
    'read-only by default': dict(
        extra_vars={'postgresql_settings': {'default_transaction_read_only': 'on'}},
        expect=r"postgresql_settings\.default_transaction_read_only=on is refused: the roles' own changes"),
    'synchronous_commit local with synchronous replication': dict(
        extra_vars={'postgresql_synchronous_mode': 'any',
                    'postgresql_settings': {'synchronous_commit': 'local'}},
        expect=r"postgresql_settings\.synchronous_commit=local is refused with postgresql_synchronous_mode=any \(a "
               r"commit would not wait for a standby, so a failover loses it\).*Fix: on, remote_apply or remote_write"),
    'an unknown risk': dict(
        extra_vars={'postgresql_accepted_risks': ['everything']},
        expect=r"postgresql_accepted_risks.*(one or more of|choices)"),
    # --- the replication connection ----------------------------------------------------------
    'the superuser as the replication role': dict(
        extra_vars={'postgresql_replication_user': 'postgres'},
        expect=r"postgresql_replication_user=postgres is refused: it is a superuser"),
    'a superuser of the running cluster as the replication role': dict(
        extra_vars={'postgresql_replication_user': 'pgha_test_su'},
        expect=r"postgresql_replication_user=pgha_test_su is refused: it is a superuser"),
    'replication password with a newline': dict(
        extra_vars={'postgresql_replication_password': 'SNTL-newline-pw\nsecond line'},
        expect=r"postgresql_replication_password holds a newline or another control character, which would break "
               r"~postgres/\.pgpass"),
    'replication without TLS': dict(
        extra_vars={'pg_replica_sslmode': 'disable'},
        expect=r"pg_replica_sslmode=disable is refused: the role's pg_hba accepts replication only over TLS \(hostssl\)"),
    'replication verifying a CA that signed nothing': dict(
        extra_vars={'pg_replica_sslmode': 'verify-full'},
        expect=r"pg_replica_sslmode=verify-full is refused: the members' server certificates are Debian's self-signed"),
    'an upstream address with conninfo keywords': dict(
        extra_vars={'pg_replica_primary_address': '10.89.74.11 sslmode=disable'},
        expect=r"pg_replica_primary_address \"10\.89\.74\.11 sslmode=disable\" on default-pg\d is not an IP address or "
               r"a host name"),
    # --- a VIP another host answers for (the spare holds 10.89.74.150 during the catalogue) ---
    'a VIP another host already answers for': dict(
        extra_vars={'keepalived_writer_vip': '10.89.74.150/24'},
        expect=r"keepalived_writer_vip=10\.89\.74\.150/24 already answers on the network, from default-spare \(MAC "
               r"[0-9a-f:]{17}\), which is not a cluster member"),
    'a cluster name with a space': dict(
        extra_vars={'postgresql_cluster_name': 'main backup'},
        expect=r"postgresql_cluster_name 'main backup' is refused: use letters, digits"),
    'an extra package that is an apt option': dict(
        extra_vars={'postgresql_extra_packages': ['-oDebug::pkgProblemResolver=1']},
        expect=r"postgresql_extra_packages holds '-oDebug::pkgProblemResolver=1', which is not a Debian package name"),
    # --- bounds and names ------------------------------------------------------------------------
    'fence watch interval of 0': dict(
        extra_vars={'postgresql_fence_watch_interval': 0},
        expect=r"postgresql_fence_watch_interval=0 is out of bounds: it must be from 1 to 3600"),
    'negative start guard wait': dict(
        host_vars={'default-pg2': {'postgresql_start_guard_wait': -5}},
        expect=r"postgresql_start_guard_wait=-5 \(on default-pg2\) is out of bounds: it must be from 0 to 3600"),
    'a port above 65535': dict(
        extra_vars={'postgresql_port': 70000},
        expect=r"postgresql_port=70000 is out of bounds: it must be from 1 to 65535"),
    'a misspelled role variable': dict(
        extra_vars={'postgresql_setings': {'work_mem': '8MB'}},
        expect=r"postgresql_setings is not a variable of any role or runbook of pgha\.cluster \(did you mean "
               r"postgresql_settings\?\)\. Fix the name, or set postgresql_unknown_variables_allowed: true"),
}

#: Secrets that must appear nowhere in the output of any case.
SECRET_VALUES = ('default-app-secret', 'molecule-replication-secret', 'SNTL-old', 'SNTL-newline-pw')

#: An address the spare holds during the catalogue (case 'a VIP another host already answers for').
TAKEN_VIP = '10.89.74.150/24'
#: A superuser the catalogue creates on the primary (and drops again).
SUPERUSER = 'pgha_test_su'


def case_inventory(tmp_path, spec):
    """The scenario's inventory (group_vars included) with the case's groups and host_vars."""
    groups = {'primary': spec.get('primary', ['default-pg1']),
              'replicas': spec.get('replicas', ['default-pg2', 'default-pg3'])}
    if spec.get('backup'):
        groups['backup'] = spec['backup']
    return lib.edit_inventory(tmp_path, groups, spec.get('host_vars'))


def run_case(name, spec, tmp_root):
    # names that differ only in punctuation ("... with '#'", "... with '!'") get their own directory
    case_dir = os.path.join(tmp_root, '%s-%08x' % (re.sub(r'[^a-z0-9]+', '-', name.lower()), zlib.crc32(name.encode())))
    os.makedirs(case_dir)
    inventory = case_inventory(case_dir, spec)
    args = []
    if spec.get('extra_vars'):
        extra = os.path.join(case_dir, 'extra.json')
        with open(extra, 'w') as f:
            json.dump(spec['extra_vars'], f)
        args = ['-e', '@' + extra]
    proc = lib.run_playbook_with(inventory, 'site.yml', *args)
    return proc.returncode, proc.stdout


def snapshot():
    return dict((n, (lib.config_fingerprint(lib.host(n)), lib.postmaster_started(lib.host(n)))) for n in MEMBERS)


# Cases one assert task reports together (filter pg_settings_errors names every bad setting of a dict at
# once): each group runs as ONE site.yml with their settings merged, and every case of it is checked on that
# run's output. The syntax group and the group of harmful values are apart: a syntax error hides the rest.
TOGETHER = {
    'settings syntax': ['role-owned parameter in another case', 'recovery target in the settings',
                        'key with a newline', 'value with a newline', 'one parameter twice in two cases',
                        'a list as a value'],
    'settings that would stop the server or replication': [
        'wal_level minimal', 'hot_standby off', 'ssl off', 'password_encryption md5', 'max_wal_senders too low',
        'max_replication_slots too low', 'listen only on localhost'],
    'settings that lose durability or leak passwords': [
        'fsync off', 'full_page_writes off', 'synchronous_commit off', 'unbounded slot WAL retention',
        'every statement in the server log', 'read-only by default'],
    # one assert reports the pg_hba entries, the replication role and the names that reach paths or apt
    'access, the replication role, names': [
        'trust from anywhere', 'local trust for everyone', 'md5 over the network', 'ident over the network',
        'plain host entry carrying passwords', 'pg_hba field with a newline', 'the superuser as the replication role',
        'replication password with a newline', 'a cluster name with a space', 'an extra package that is an apt option'],
    # pg_replica's connection check: the sslmode and the upstream address together
    'the replication connection': ['replication without TLS', 'an upstream address with conninfo keywords'],
    # the last preflight play's one assert: bounds and names
    'bounds and names': ['fence watch interval of 0', 'negative start guard wait', 'a port above 65535',
                         'a misspelled role variable'],
}


def merged(names):
    """One run for the cases of a group: their extra variables merged (dicts merged, lists joined, no key set
    twice) and their host_vars too."""
    extra, host_vars = {}, {}
    for name in names:
        for key, value in CASES[name].get('extra_vars', {}).items():
            if isinstance(value, dict):
                assert not set(value) & set(extra.get(key, {})), (names, key)
                extra.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                extra[key] = extra.get(key, []) + value
            else:
                assert key not in extra, (names, key)
                extra[key] = value
        for host, hv in CASES[name].get('host_vars', {}).items():
            assert not set(hv) & set(host_vars.get(host, {})), (names, host)
            host_vars.setdefault(host, {}).update(hv)
    spec = {'extra_vars': extra}
    if host_vars:
        spec['host_vars'] = host_vars
    return spec


@pytest.fixture(scope='module')
def catalogue(tmp_path_factory):
    """Every case run once against the running cluster (the cases of a TOGETHER group in one run); the
    cluster's state before and after."""
    root = str(tmp_path_factory.mktemp('cases'))
    spare, primary = lib.host(SPARE), lib.host('default-pg1')
    assert spare.run('ip addr add %s dev eth0' % TAKEN_VIP).rc == 0
    lib.psql(primary, 'CREATE ROLE %s SUPERUSER' % SUPERUSER)
    try:
        before = snapshot()
        results, after = _run_catalogue(root)
    finally:
        spare.run('ip addr del %s dev eth0' % TAKEN_VIP)
        lib.psql(primary, 'DROP ROLE IF EXISTS %s' % SUPERUSER)
    return {'results': results, 'before': before, 'after': after}


def _run_catalogue(root):
    grouped = set(n for names in TOGETHER.values() for n in names)
    runs = dict((name, spec) for name, spec in CASES.items() if name not in grouped)
    runs.update((group, merged(names)) for group, names in TOGETHER.items())
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = dict((name, pool.submit(run_case, name, spec, root)) for name, spec in runs.items())
        results = dict((name, f.result()) for name, f in futures.items())
    for group, names in TOGETHER.items():
        results.update((name, results[group]) for name in names)
    # a member without a default route changes what every run sees: alone, and put back at once
    pg3 = lib.host('default-pg3')
    route = pg3.run('ip route show default').stdout.strip()
    assert route.startswith('default via'), route
    assert pg3.run('ip route del default').rc == 0
    try:
        # reached by its container name (podman), so that ansible_host is no IP address either
        results['member without a default route'] = run_case('no default route', {'host_vars': {'default-pg3': {
            'ansible_connection': 'containers.podman.podman', 'ansible_host': 'default-pg3'}}}, root)
    finally:
        assert pg3.run('ip route add %s' % route).rc == 0
    return results, snapshot()


EXPECT = dict((name, spec['expect']) for name, spec in CASES.items())
EXPECT['member without a default route'] = (r"default-pg3 has no address: it has no default route.*"
                                            r"set postgresql_host_address for default-pg3")


def test_the_catalogue_is_large_enough():
    assert len(EXPECT) >= 78


@pytest.mark.parametrize('case', sorted(EXPECT))
def test_bad_input_fails_before_any_change(case, catalogue):
    rc, out = catalogue['results'][case]
    assert rc != 0, out[-3000:]
    flat = ' '.join(out.split())
    assert re.search(EXPECT[case], flat), flat[-3000:]
    # it stopped in the preflight: no task changed anything, no play after it ran
    assert lib.changed_hosts(out) == {}, out[-3000:]
    assert 'PLAY [Primary]' not in out
    for secret in SECRET_VALUES:
        assert secret not in out, 'secret printed in case %r' % case
    # and the running cluster is exactly as it was (checked once for all cases)
    assert catalogue['after'] == catalogue['before']

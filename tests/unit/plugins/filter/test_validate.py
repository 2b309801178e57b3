"""The preflight's pure checks: each bad input gives a message that names the
variable and the fix, and good input gives none."""

import os

import jinja2
import pytest

from ansible_collections.pgha.cluster.plugins.filter.validate import (
    host_cidr,
    cluster_members,
    databases_errors,
    conf_errors_rejected,
    conf_errors_restart,
    describe_conf_error,
    member_address,
    members_errors,
    needed_replication_slots,
    needed_wal_senders,
    peers,
    pg_bool,
    pg_settings_errors,
    pg_settings_merge,
    settings_baseline_limits,
    synchronous_errors,
    users_errors,
    vip_errors,
    without_keys,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
RESERVED = ['data_directory', 'port', 'cluster_name', 'primary_conninfo', 'primary_slot_name',
            'synchronous_standby_names', 'include']
BASELINE = {'listen_addresses': '*', 'wal_level': 'replica', 'hot_standby': True, 'ssl': True,
            'password_encryption': 'scram-sha-256', 'max_wal_senders': 10, 'max_replication_slots': 10}


def facts(addr, iface='eth0'):
    return {'default_ipv4': {'address': addr, 'interface': iface}} if addr else {'default_ipv4': {}}


HOSTVARS = {
    'pg1': {'ansible_facts': facts('10.0.0.11')},
    'pg2': {'ansible_facts': facts('10.0.0.12'), 'postgresql_slot_name': 'second'},
    'pg3': {'ansible_facts': facts('10.0.0.13'), 'postgresql_host_address': '10.0.1.13'},
}
GROUPS = {'primary': ['pg2'], 'replicas': ['pg3', 'pg1']}


def settings_errors(shared=None, host=None, members=3, address='10.0.0.11'):
    return pg_settings_errors(shared or {}, host or {}, BASELINE, {}, RESERVED, members, address)


# --------------------------------------------------------------------------
# Members
# --------------------------------------------------------------------------

def test_members_are_sorted_with_address_and_slot():
    members = cluster_members(GROUPS, HOSTVARS)
    assert [m['name'] for m in members] == ['pg1', 'pg2', 'pg3']
    assert [m['primary'] for m in members] == [False, True, False]
    assert [m['address'] for m in members] == ['10.0.0.11', '10.0.0.12', '10.0.1.13']
    assert [m['slot'] for m in members] == ['pg1', 'second', 'pg3']
    assert members_errors(members) == []


def test_address_falls_back_to_an_ip_ansible_host():
    assert member_address({'ansible_facts': facts(None), 'ansible_host': '192.0.2.7'}) == '192.0.2.7'
    assert member_address({'ansible_facts': facts(None), 'ansible_host': 'db1.example.com'}) is None


def test_member_without_default_route_names_postgresql_host_address():
    hv = dict(HOSTVARS, pg1={'ansible_facts': facts(None)})
    errors = members_errors(cluster_members(GROUPS, hv))
    assert len(errors) == 1 and 'pg1 has no address: it has no default route' in errors[0]
    assert 'postgresql_host_address' in errors[0]


def test_member_without_facts_says_so():
    hv = dict(HOSTVARS, pg1={})
    (err,) = members_errors(cluster_members(GROUPS, hv))
    assert 'facts were not gathered' in err


def test_host_address_must_be_an_ip():
    hv = dict(HOSTVARS, pg1={'postgresql_host_address': 'db1.example.com'})
    (err,) = members_errors(cluster_members(GROUPS, hv))
    assert "postgresql_host_address 'db1.example.com' of pg1 is not an IP address" in err


def test_duplicate_addresses():
    hv = dict(HOSTVARS, pg1={'postgresql_host_address': '10.0.0.12'})
    (err,) = members_errors(cluster_members(GROUPS, hv))
    assert 'pg1 and pg2 have the same address 10.0.0.12' in err


def test_slot_names_collide_across_all_members_primary_included():
    hv = {'db-1': {'ansible_facts': facts('10.0.0.1')}, 'db_1': {'ansible_facts': facts('10.0.0.2')}}
    errors = members_errors(cluster_members({'primary': ['db-1'], 'replicas': ['db_1']}, hv))
    assert errors == ["db-1 and db_1 would use the same replication slot 'db_1' (slot names are lower-cased and "
                      "every character but [a-z0-9_] becomes \"_\"). Fix: set a distinct postgresql_slot_name in "
                      "host_vars for one of them."]


def test_invalid_slot_name():
    hv = dict(HOSTVARS, pg3={'ansible_facts': facts('10.0.0.13'), 'postgresql_slot_name': 'Bad-Slot!'})
    (err,) = members_errors(cluster_members(GROUPS, hv))
    assert "postgresql_slot_name 'Bad-Slot!' on pg3 is not a valid replication slot name" in err


def test_peers_leave_out_this_host():
    members = cluster_members(GROUPS, HOSTVARS)
    assert peers(members, 'pg2', 5432) == [{'name': 'pg1', 'host': '10.0.0.11', 'port': 5432},
                                           {'name': 'pg3', 'host': '10.0.1.13', 'port': 5432}]


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------

def test_good_settings_pass():
    assert settings_errors({'shared_buffers': '4GB', 'work_mem': '16MB', 'cron.database_name': 'postgres',
                            'synchronous_commit': 'on', 'hot_standby': 'true'}, {'work_mem': '64MB'}) == []


@pytest.mark.parametrize('shared,expect', [
    ({'wal_level': 'minimal'}, 'postgresql_settings.wal_level=minimal would stop the server'),
    ({'hot_standby': 'off'}, 'postgresql_settings.hot_standby=off is refused'),
    ({'hot_standby': False}, 'postgresql_settings.hot_standby=off is refused'),
    ({'ssl': 'of'}, 'postgresql_settings.ssl=off is refused'),
    ({'ssl': 'maybe'}, "postgresql_settings.ssl='maybe' is not a boolean"),
    ({'password_encryption': 'md5'}, 'postgresql_settings.password_encryption=md5 is refused'),
    ({'max_wal_senders': 3}, 'postgresql_settings.max_wal_senders=3 is too low for 3 members: they need at least 6'),
    ({'max_replication_slots': 1},
     'postgresql_settings.max_replication_slots=1 is too low for 3 members: they need at least 2'),
    ({'Port': 6543}, 'postgresql_settings.Port cannot be set: use postgresql_port'),
    ({'PRIMARY_CONNINFO': 'host=x'}, 'postgresql_settings.PRIMARY_CONNINFO cannot be set'),
    ({'recovery_target_time': 'x'}, 'restore.yml owns recovery settings'),
    ({'work mem': '1MB'}, "postgresql_settings has the key 'work mem', which is not a parameter name"),
    ({'work_mem\ninclude': '1MB'}, 'which is not a parameter name'),
    ({'application_name': "x'\ninclude '/tmp/evil"}, 'postgresql_settings.application_name holds a newline'),
    ({'work_mem': '1MB', 'WORK_MEM': '2MB'}, 'postgresql_settings sets work_mem twice'),
    ({'shared_preload_libraries': ['a', 'b']}, 'must be a string, a number or a boolean, not list'),
    ({'listen_addresses': 'localhost'}, "listen_addresses='localhost' does not include this member's address"),
    ({'max_connections': 10, 'max_wal_senders': 10}, 'max_wal_senders=10 must be less than max_connections=10'),
    ({'superuser_reserved_connections': 100}, 'superuser_reserved_connections=100 must be less than max_connections'),
])
def test_settings_that_would_stop_the_server_or_replication(shared, expect):
    errors = settings_errors(shared)
    assert any(expect in e for e in errors), errors


def test_listen_addresses_with_the_member_address_passes():
    assert settings_errors({'listen_addresses': 'localhost,10.0.0.11'}) == []


@pytest.mark.parametrize('name', ['max_connections', 'max_worker_processes', 'max_wal_senders',
                                  'max_prepared_transactions', 'max_locks_per_transaction'])
def test_host_overrides_of_standby_sensitive_limits_are_refused(name):
    errors = settings_errors(host={name: 50})
    assert errors[0].startswith('postgresql_host_settings.%s is refused' % name), errors


def test_host_override_names_the_host_dict():
    (err,) = settings_errors(host={'wal_level': 'minimal'})
    assert err.startswith('postgresql_host_settings.wal_level=minimal')


def test_limits_follow_the_members():
    assert needed_wal_senders(3) == 6 and needed_wal_senders(9) == 18
    assert settings_baseline_limits(3) == {'max_wal_senders': 10, 'max_replication_slots': 10}
    assert settings_baseline_limits(9) == {'max_wal_senders': 18, 'max_replication_slots': 10}
    assert settings_baseline_limits(14) == {'max_wal_senders': 28, 'max_replication_slots': 13}
    # the derived baseline itself passes for a big cluster
    base = dict(BASELINE, **settings_baseline_limits(20))
    assert pg_settings_errors({}, {}, base, {}, RESERVED, 20, '10.0.0.1') == []


def test_merge_lowercases_names_later_wins():
    assert pg_settings_merge({'wal_level': 'replica'}, {'WAL_LEVEL': 'logical'}, None) == {'wal_level': 'logical'}


def test_pg_bool_reads_like_postgresql():
    assert [pg_bool(v) for v in (True, 'on', 'ON', 'tr', 'y', '1', 1)] == [True] * 7
    assert [pg_bool(v) for v in (False, 'off', 'of', 'fa', 'n', '0', 0)] == [False] * 7
    assert [pg_bool(v) for v in ('o', 'maybe', '', 2)] == [None] * 4


def test_describe_conf_error():
    assert describe_conf_error({'kind': 'pg_hba.conf', 'line': 7, 'error': 'invalid auth method "x"'}) == \
        'pg_hba.conf line 7: invalid auth method "x"'
    assert describe_conf_error({'kind': 'postgresql.conf', 'file': '/etc/p.conf', 'line': 3, 'name': 'work_mem',
                                'error': 'invalid value'}) == 'work_mem (/etc/p.conf:3): invalid value'


# --------------------------------------------------------------------------
# The rendered values cannot break postgresql.conf
# --------------------------------------------------------------------------

def render_value(value):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROOT, 'roles', 'postgresql', 'templates')))
    return env.from_string("{% from '_macros.j2' import pg_value %}{{ pg_value(v) }}").render(v=value)


def unquote_like_postgresql(text):
    """Read a quoted postgresql.conf value the way PostgreSQL's GUC_scanstr does."""
    assert text[0] == "'" and text[-1] == "'"
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == '\\':
            nxt = body[i + 1]
            out.append({'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}.get(nxt, nxt))
            i += 2
        elif c == "'":
            assert body[i + 1] == "'", 'an unescaped quote ends the value early: %r' % text
            out.append("'")
            i += 2
        else:
            out.append(c)
            i += 1
    return ''.join(out)


@pytest.mark.parametrize('value', ['plain', "it's", 'C:\\dir\\', 'ends with a backslash\\', "\\'; x", '%m [%p] '])
def test_values_round_trip_through_postgresql_quoting(value):
    rendered = render_value(value)
    assert unquote_like_postgresql(rendered) == value


def test_booleans_and_numbers_are_bare():
    assert (render_value(True), render_value(False), render_value(64)) == ('on', 'off', '64')


# --------------------------------------------------------------------------
# Synchronous replication
# --------------------------------------------------------------------------

MEMBERS = cluster_members({'primary': ['pg1'], 'replicas': ['pg2', 'pg3']},
                          dict((n, {'ansible_facts': facts('10.0.0.%d' % i)}) for i, n in
                               enumerate(['pg1', 'pg2', 'pg3'], start=1)))


def test_sync_off_is_not_checked():
    assert synchronous_errors('off', 99, [], MEMBERS) == []


def test_sync_count_fits_the_standbys():
    assert synchronous_errors('any', 2, [], MEMBERS) == []
    (err,) = synchronous_errors('any', 3, [], MEMBERS)
    assert err.startswith('postgresql_synchronous_count=3 is more than the 2 standby(s)')


def test_sync_count_with_named_standbys_counts_the_worst_case():
    # with pg2 the primary, only pg3 could confirm
    (err,) = synchronous_errors('first', 2, ['pg2', 'pg3'], MEMBERS)
    assert 'more than the 1 standby(s)' in err and 'lower postgresql_synchronous_count to 1' in err


def test_sync_names_must_be_application_names():
    (err,) = synchronous_errors('any', 1, ['pg2", "x'], MEMBERS)
    assert err.startswith('postgresql_synchronous_names holds')


def test_sync_count_at_least_one():
    assert any('at least 1' in e for e in synchronous_errors('any', 0, [], MEMBERS))


# --------------------------------------------------------------------------
# Databases and users
# --------------------------------------------------------------------------

def test_good_users_and_databases():
    assert databases_errors([{'name': 'app', 'owner': 'app', 'encoding': 'UTF8', 'template': 'template0'}]) == []
    assert users_errors([{'name': 'app', 'password': 's3cret', 'db': 'app', 'priv': 'CONNECT,TEMP',
                          'role_attr_flags': 'CREATEDB,NOSUPERUSER'}], ['replicator']) == []


@pytest.mark.parametrize('user,expect', [
    ({'name': 'app,PUBLIC'}, "pg_primary_users[0] name 'app,PUBLIC' is refused"),
    ({'name': 'public'}, "PUBLIC and names starting with pg_"),
    ({'name': 'pg_evil'}, "PUBLIC and names starting with pg_"),
    ({'name': 'replicator'}, 'the collection manages that role itself'),
    ({'name': 'app', 'role_attr_flags': 'SUPERUSER'},
     'role_attr_flags SUPERUSER give power over the whole server. Refused unless pg_primary_privileged_users_allowed'),
    ({'name': 'app', 'role_attr_flags': 'createrole'}, 'role_attr_flags CREATEROLE give power'),
    ({'name': 'app', 'role_attr_flags': 'LOGIN,GOD'}, "unknown GOD"),
    ({'name': 'app', 'priv': 'ALL; DROP'}, "priv 'ALL; DROP' is refused"),
    ({'name': 'app', 'db': "app'x"}, "db \"app'x\" is refused"),
    ({'name': 'app', 'password': 12345}, 'password must be a string'),
    ({'name': 'app', 'pasword': 'x'}, 'unknown keys pasword'),
    ({'nom': 'app'}, "pg_primary_users[0] needs a 'name' key"),
])
def test_bad_users(user, expect):
    errors = users_errors([user], ['replicator', 'postgres'])
    assert any(expect in e for e in errors), errors


def test_privileged_flags_with_the_override():
    assert users_errors([{'name': 'admin', 'role_attr_flags': 'SUPERUSER'}], [], privileged_allowed=True) == []


def test_duplicate_users():
    assert any('listed twice' in e for e in users_errors([{'name': 'a'}, {'name': 'A'}]))


def test_user_errors_never_repeat_the_password():
    errors = users_errors([{'name': 'bad,name', 'password': 'SENTINEL-PW'},
                           {'name': 'ok', 'password': 'SENTINEL-PW', 'role_attr_flags': 'SUPERUSER'}])
    assert errors and not any('SENTINEL-PW' in e for e in errors)


@pytest.mark.parametrize('db,expect', [
    ({'name': 'a"b'}, "pg_primary_databases[0] name 'a\"b' is refused"),
    ({'name': 'app', 'encoding': "UTF8'"}, 'encoding "UTF8\'" is not a valid value'),
    ({'owner': 'x'}, "needs a 'name' key"),
])
def test_bad_databases(db, expect):
    errors = databases_errors([db])
    assert any(expect in e for e in errors), errors


def test_without_keys_drops_passwords():
    assert without_keys([{'name': 'a', 'password': 'p', 'db': 'd'}]) == [{'name': 'a', 'db': 'd'}]


# --------------------------------------------------------------------------
# keepalived
# --------------------------------------------------------------------------

def test_good_vip():
    assert vip_errors('keepalived_writer_vip', '10.0.0.100/24', MEMBERS) == []


@pytest.mark.parametrize('vip,expect', [
    ('10.0.0.100', 'must be an IPv4 address with its prefix length'),
    ('10.0.0.300/24', 'is not an IPv4 address with its prefix length'),
    ('vip.example/24', 'is not an IPv4 address'),
    ('10.9.9.100/24', 'keepalived_writer_vip=10.9.9.100/24 is not in the subnet of pg1 (10.0.0.1)'),
    ('10.0.0.2/24', 'is the address of pg2 itself'),
    ('10.0.0.255/24', 'is the network or broadcast address'),
])
def test_bad_vips(vip, expect):
    errors = vip_errors('keepalived_writer_vip', vip, MEMBERS)
    assert any(expect in e for e in errors), errors


# pg_file_settings rows (joined to pg_settings.context), as apply.yml reads them
ROWS = [
    # a changed restart-only setting: a restart, not an error
    {'kind': 'postgresql.conf', 'file': '/e/postgresql.conf', 'line': 3, 'name': 'shared_buffers',
     'error': 'setting could not be applied', 'context': 'postmaster'},
    # a value PostgreSQL rejects for a reloadable setting: the same words, but wrong
    {'kind': 'postgresql.conf', 'file': '/e/postgresql.conf', 'line': 4, 'name': 'work_mem',
     'error': 'setting could not be applied', 'context': 'user'},
    # an unknown name
    {'kind': 'postgresql.conf', 'file': '/e/postgresql.conf', 'line': 5, 'name': 'wrok_mem',
     'error': 'unrecognized configuration parameter', 'context': None},
    {'kind': 'pg_hba.conf', 'file': None, 'line': 9, 'name': None, 'error': 'invalid authentication method "x"',
     'context': None},
]


def test_conf_errors_a_changed_restart_only_setting_is_a_restart():
    assert conf_errors_restart(ROWS) == ['shared_buffers']
    assert conf_errors_rejected(ROWS[:1]) == []


def test_conf_errors_a_value_rejected_for_a_reloadable_setting_is_wrong():
    # "setting could not be applied" for work_mem='lots' is no restart (the server would not start)
    assert [r['name'] for r in conf_errors_rejected(ROWS)] == ['work_mem', 'wrok_mem', None]
    assert 'work_mem' not in conf_errors_restart(ROWS)
    assert conf_errors_rejected([]) == [] and conf_errors_restart(None) == []


def test_host_cidr():
    assert host_cidr('10.0.0.7') == '10.0.0.7/32'
    assert host_cidr(' fd00::7 ') == 'fd00::7/128'


def test_limits_count_other_replication_clients():
    assert needed_wal_senders(3) == 6 and needed_wal_senders(3, 2) == 8
    assert needed_replication_slots(3, 1) == 3
    assert settings_baseline_limits(9, 10, 2, 1) == {'max_wal_senders': 20, 'max_replication_slots': 10}
    errors = pg_settings_errors({'max_wal_senders': 6}, {}, {}, {}, [], 3, None, 2, 1)
    assert any('max_wal_senders=6 is too low for 3 members: they need at least 8' in e and
               'plus 2 for the backups (postgresql_addon_replication_clients)' in e for e in errors), errors


# --------------------------------------------------------------------------
# Three networks: service, replication, administration
# --------------------------------------------------------------------------

THREE_NETS = {
    'ansible_host': '10.0.1.11',
    'postgresql_service_network': '10.0.2.0/24',
    'postgresql_replication_network': '10.0.3.0/24',
    'ansible_facts': {'default_ipv4': {'address': '10.0.1.11', 'interface': 'eth0'},
                      'all_ipv4_addresses': ['10.0.1.11', '10.0.2.11', '10.0.3.11', '10.0.2.100'],
                      'interfaces': ['lo', 'eth0', 'eth1', 'eth2'],
                      'eth0': {'ipv4': {'address': '10.0.1.11'}},
                      'eth1': {'ipv4': {'address': '10.0.2.11'}, 'ipv4_secondaries': [{'address': '10.0.2.100'}]},
                      'eth2': {'ipv4': {'address': '10.0.3.11'}}},
}


def test_each_network_gives_its_own_address():
    from ansible_collections.pgha.cluster.plugins.filter.validate import member_address, service_address
    assert member_address(THREE_NETS) == '10.0.3.11'
    assert service_address(THREE_NETS) == '10.0.2.11'
    # an address given in the inventory wins
    assert member_address(dict(THREE_NETS, postgresql_host_address='10.0.3.99')) == '10.0.3.99'
    assert service_address(dict(THREE_NETS, postgresql_service_address='10.0.2.99')) == '10.0.2.99'
    # one network for everything, as before: the default address, then ansible_host
    one = {'ansible_host': '10.0.1.11', 'ansible_facts': {'default_ipv4': {'address': '10.0.1.12'}}}
    assert member_address(one) == service_address(one) == '10.0.1.12'
    assert member_address({'ansible_host': '10.0.1.11'}) == '10.0.1.11'
    # no address in the replication network: unknown (preflight names it), never the admin address
    assert member_address(dict(THREE_NETS, postgresql_replication_network='10.0.9.0/24')) is None


def test_networks_are_checked_naming_the_variable_and_the_fix():
    from ansible_collections.pgha.cluster.plugins.filter.validate import network_errors
    assert network_errors(THREE_NETS, 'pg1') == []
    assert network_errors({'ansible_host': '10.0.1.11'}, 'pg1') == []
    text = ' '.join(network_errors(dict(THREE_NETS, postgresql_host_address='10.0.1.11'), 'pg1'))
    assert 'postgresql_host_address 10.0.1.11 of pg1 is outside postgresql_replication_network=10.0.3.0/24' in text
    text = ' '.join(network_errors(dict(THREE_NETS, postgresql_service_address='10.0.3.11'), 'pg1'))
    assert 'postgresql_service_address 10.0.3.11 of pg1 is outside postgresql_service_network=10.0.2.0/24' in text
    text = ' '.join(network_errors(dict(THREE_NETS, postgresql_replication_network='10.0.9.0/24'), 'pg1'))
    assert 'pg1 has no address in postgresql_replication_network=10.0.9.0/24' in text
    text = ' '.join(network_errors(dict(THREE_NETS, postgresql_service_network='ten/24'), 'pg1'))
    assert "postgresql_service_network='ten/24' is not a network in CIDR form" in text


def test_the_interface_that_holds_an_address():
    from ansible_collections.pgha.cluster.plugins.filter.validate import interface_of
    facts = THREE_NETS['ansible_facts']
    assert interface_of(facts, '10.0.2.11') == 'eth1'
    assert interface_of(facts, '10.0.2.100') == 'eth1'
    assert interface_of(facts, '10.0.3.11') == 'eth2'
    assert interface_of(facts, '10.0.7.1') is None and interface_of({}, '10.0.2.11') is None


def test_a_vip_outside_the_service_network_is_refused():
    from ansible_collections.pgha.cluster.plugins.filter.validate import vip_errors
    members = [{'name': 'pg1', 'address': '10.0.3.11', 'service_address': '10.0.2.11'}]
    assert vip_errors('keepalived_writer_vip', '10.0.2.100/24', members, '10.0.2.0/24', 'service_address') == []
    text = ' '.join(vip_errors('keepalived_writer_vip', '10.0.3.100/24', members, '10.0.2.0/24', 'service_address'))
    assert 'keepalived_writer_vip=10.0.3.100/24 is outside postgresql_service_network=10.0.2.0/24' in text
    # without the network, the members' service addresses still decide the subnet
    text = ' '.join(vip_errors('keepalived_writer_vip', '10.0.3.100/24', members, '', 'service_address'))
    assert 'is not in the subnet of pg1 (10.0.2.11)' in text

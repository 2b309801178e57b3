# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter import pgpool as f

GOOD = {
    'hosts': ['pool1', 'pool2'], 'pgpool_group': 'pgpool', 'pgpool_vip': '10.0.0.50/24', 'pgpool_vip_router_id': 53,
    'pgpool_vip_advert_int': 1, 'keepalived_router_ids': {'writer': 51, 'reader': 52},
    'keepalived_vips': {'writer': '10.0.0.100/24', 'reader': ''}, 'pgpool_delay_threshold': '16MB',
    'pgpool_port': 9999, 'pgpool_pcp_port': 9898, 'pgpool_num_init_children': 32, 'pgpool_max_pool': 1,
    'pgpool_health_check_period': 2, 'pgpool_sr_check_period': 5, 'pgpool_search_primary_node_timeout': 60,
    'pgpool_disable_load_balance_on_write': 'always', 'pgpool_user': 'pgha_pgpool', 'pgpool_pcp_user': 'pgha_pcp',
    'pgpool_password': 'check-secret', 'pgpool_pcp_password': 'pcp-secret', 'pgpool_key': 'a-long-key',
    'pgpool_users': [{'name': 'app', 'password': 'app-secret'}], 'pgpool_settings': {'log_min_messages': 'info'},
    'max_connections': 100, 'superuser_reserved_connections': 3,
}


def errors(**over):
    conf = dict(GOOD, **over)
    return ' '.join(f.pgpool_errors(conf))


def test_good_variables_pass():
    assert f.pgpool_errors(GOOD) == []
    # no VIP: one pgpool host is fine
    assert errors(hosts=['pool1'], pgpool_vip='') == ''


@pytest.mark.parametrize('over, words', [
    ({'hosts': ['pool1']}, "pgpool_vip is set but the group 'pgpool' has 1 host"),
    ({'hosts': [], 'pgpool_vip': ''}, "the group 'pgpool' has no host"),
    ({'pgpool_vip': '10.0.0.50'}, "pgpool_vip='10.0.0.50' is not an address with its prefix length"),
    ({'pgpool_vip': 'vip.example/24'}, 'is not an address with its prefix length'),
    ({'pgpool_vip_router_id': 51}, 'pgpool_vip_router_id=51 is also keepalived_writer_router_id'),
    ({'pgpool_vip_router_id': 300}, 'pgpool_vip_router_id=300 is not a VRRP router id'),
    ({'pgpool_vip': '10.0.0.100/24'}, 'pgpool_vip 10.0.0.100 is also keepalived_writer_vip'),
    ({'pgpool_vip_advert_int': 'fast'}, "pgpool_vip_advert_int='fast' is not a VRRP advert interval"),
    ({'pgpool_delay_threshold': 'fast'}, "pgpool_delay_threshold='fast' is not a size"),
    ({'pgpool_delay_threshold': '16 parsecs'}, 'is not a size'),
    ({'pgpool_delay_threshold': True}, 'is not a size'),
    ({'pgpool_search_primary_node_timeout': 0}, 'would let pgpool wait forever'),
    ({'pgpool_health_check_period': 0}, 'never notices a dead server'),
    ({'pgpool_port': 9898}, 'pgpool_port and pgpool_pcp_port are both 9898'),
    ({'pgpool_disable_load_balance_on_write': 'sometimes'}, "pgpool_disable_load_balance_on_write='sometimes'"),
    ({'pgpool_user': 'Pool User'}, "pgpool_user='Pool User' is not a plain lower-case name"),
    ({'pgpool_password': ''}, 'pgpool_password is empty'),
    ({'pgpool_key': None}, 'pgpool_key is empty'),
    ({'pgpool_pcp_password': 'a:b'}, 'pgpool_pcp_password holds a colon'),
    ({'pgpool_users': [{'name': 'app'}]}, 'pgpool_users: app has no password'),
    ({'pgpool_users': [{'name': 'pgha_pgpool', 'password': 'x'}]}, 'pgpool_users lists pgha_pgpool twice'),
    ({'pgpool_users': [{'name': 'a;b', 'password': 'x'}]}, 'pgpool_users[0] needs a name'),
    ({'pgpool_users': 'app'}, 'pgpool_users must be a list'),
    ({'pgpool_settings': {'failover_command': '/bin/promote %d'}}, 'pgpool_settings.failover_command is refused'),
    ({'pgpool_settings': {'follow_primary_command': 'x'}}, 'pgpool_settings.follow_primary_command is refused'),
    ({'pgpool_settings': {'recovery_1st_stage_command': 'x'}}, 'recovery_1st_stage_command is refused'),
    ({'pgpool_settings': {'use_watchdog': 'on'}}, 'pgpool_settings.use_watchdog is refused'),
    ({'pgpool_settings': {'USE_WATCHDOG': True}}, 'pgpool_settings.USE_WATCHDOG is refused'),
    ({'pgpool_settings': {'if_up_cmd': 'ip addr add'}}, 'pgpool_settings.if_up_cmd is refused'),
    ({'pgpool_settings': {'backend_hostname3': '10.0.0.9'}}, 'writes the backends'),
    ({'pgpool_settings': {'ssl': 'off'}}, 'pgpool_settings.ssl is refused: the role sets it'),
    ({'pgpool_settings': {'failover_on_backend_error': 'on'}}, 'failover_on_backend_error is refused'),
    ({'pgpool_settings': {'log_line_prefix': "x'; failover_command='y"}}, 'holds a quote or a line break'),
    ({'pgpool_settings': 'x'}, 'pgpool_settings must be a dict'),
    ({'pgpool_num_init_children': 64}, '2 pgpool hosts x pgpool_num_init_children=64 x pgpool_max_pool=1 = 128'),
    ({'pgpool_max_pool': 2, 'max_connections': 120}, 'raise max_connections in postgresql_settings to 141'),
])
def test_bad_variables_are_named_with_the_fix(over, words):
    assert words in errors(**over)


def test_settings_that_stay_harmless_pass():
    assert errors(pgpool_settings={'use_watchdog': 'off', 'failover_command': '', 'log_statement': 'on'}) == ''


def test_no_message_repeats_a_secret():
    text = errors(pgpool_pcp_password='se:cret', pgpool_key='key\nline', pgpool_password='pw\\x')
    for secret in ('se:cret', 'key\nline', 'pw\\x'):
        assert secret not in text


@pytest.mark.parametrize('value, size', [
    ('16MB', 16777216), ('512kB', 524288), ('1GB', 1073741824), (1048576, 1048576), ('0', 0), ('2 MB', 2097152),
])
def test_sizes_read_as_postgresql_reads_them(value, size):
    assert f.pgpool_size(value) == size


@pytest.mark.parametrize('value', ['16mb', '1.5MB', '-1', 'MB', '', None])
def test_anything_else_is_not_a_size(value):
    with pytest.raises(AnsibleFilterError, match='pgpool_delay_threshold'):
        f.pgpool_size(value)


def test_aes_matches_pg_enc():
    # pg_enc -m -K lab-secret-key-0123456789 -u app apppw (pgpool-II 4.6.1) wrote this
    assert f.pgpool_aes('apppw', 'lab-secret-key-0123456789') == 'AESAjUJd7wm2lpCzMdP3qH3Kg=='
    # deterministic, and the key matters
    assert f.pgpool_aes('apppw', 'k1') == f.pgpool_aes('apppw', 'k1') != f.pgpool_aes('apppw', 'k2')


def test_aes_refuses_empty_input():
    with pytest.raises(AnsibleFilterError):
        f.pgpool_aes('', 'key')
    with pytest.raises(AnsibleFilterError):
        f.pgpool_aes('pw', '')


MEMBERS = [{'name': 'pg1', 'address': '10.0.0.11', 'slot': 'pg1'},
           {'name': 'pg2', 'address': '10.0.0.12', 'slot': 'pg2'},
           {'name': 'pg3', 'address': '10.0.0.13', 'slot': 'pg3'}]


def test_backends_are_numbered_in_member_order():
    backends = f.pgpool_backends(MEMBERS, '5433')
    assert [(b['id'], b['name'], b['address'], b['port'], b['app_name']) for b in backends] == [
        (0, 'pg1', '10.0.0.11', 5433, 'pg1'), (1, 'pg2', '10.0.0.12', 5433, 'pg2'), (2, 'pg3', '10.0.0.13', 5433, 'pg3')]


def node(name, role, reachable=True, fenced=False):
    return {'name': name, 'role': role, 'reachable': reachable, 'fenced': fenced}


def test_desired_follows_the_survey():
    backends = f.pgpool_backends(MEMBERS)
    nodes = [node('pg1', 'down', reachable=False), node('pg2', 'primary'), node('pg3', 'standby')]
    assert [(d['id'], d['role']) for d in f.pgpool_desired(backends, nodes)] == [(0, 'down'), (1, 'primary'),
                                                                                 (2, 'standby')]
    # fenced, stopped or not surveyed at all: down
    nodes = [node('pg1', 'primary', fenced=True), node('pg2', 'down'), ]
    assert [d['role'] for d in f.pgpool_desired(backends, nodes)] == ['down', 'down', 'down']


def test_two_primaries_make_no_decision():
    backends = f.pgpool_backends(MEMBERS)
    with pytest.raises(AnsibleFilterError, match='pg1 and pg2 all run as primaries.*rejoin.yml'):
        f.pgpool_desired(backends, [node('pg1', 'primary'), node('pg2', 'primary'), node('pg3', 'standby')])


def test_hba_entries_let_each_pgpool_host_in_over_tls():
    assert f.pgpool_hba_entries(['10.0.0.22', '10.0.0.21', '', '10.0.0.21']) == [
        {'contype': 'hostssl', 'databases': 'all', 'users': 'all', 'source': '10.0.0.21/32', 'method': 'scram-sha-256'},
        {'contype': 'hostssl', 'databases': 'all', 'users': 'all', 'source': '10.0.0.22/32', 'method': 'scram-sha-256'}]
    assert f.pgpool_hba_entries(['fd00::5'])[0]['source'] == 'fd00::5/128'


def test_host_addresses_prefer_the_inventory_then_the_facts():
    hostvars = {'pool1': {'pgpool_host_address': '10.0.0.21', 'ansible_facts': {'default_ipv4': {'address': '1.1.1.1'}}},
                'pool2': {'ansible_facts': {'default_ipv4': {'address': '10.0.0.22'}}},
                'pool3': {}}
    assert f.pgpool_host_addresses(['pool1', 'pool2', 'pool3'], hostvars) == ['10.0.0.21', '10.0.0.22', '']


def test_a_pgpool_vip_outside_the_service_network_is_refused():
    assert 'pgpool_vip=10.0.0.50/24 is outside postgresql_service_network=10.0.2.0/24' in errors(
        service_network='10.0.2.0/24')
    assert errors(service_network='10.0.0.0/24') == ''


def test_backends_are_reached_at_the_service_addresses():
    members = [dict(m, service_address=m['address'].replace('10.0.0.', '10.0.2.')) for m in MEMBERS]
    assert [b['address'] for b in f.pgpool_backends(members)] == ['10.0.2.11', '10.0.2.12', '10.0.2.13']

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pgha.cluster.plugins.plugin_utils import patroni


def test_every_preset_satisfies_patronis_rule_and_its_floor():
    for name, (ttl, loop_wait, retry) in patroni.PRESETS.items():
        assert ttl >= loop_wait + 2 * retry, name
        assert ttl >= 20, name


def test_the_default_preset_is_slower_than_fast():
    assert patroni.worst_case_seconds('fast') < patroni.worst_case_seconds('default') < \
        patroni.worst_case_seconds('safe')


def test_an_unknown_preset_is_named():
    with pytest.raises(ValueError, match='patroni_rto must be one of default, fast, safe'):
        patroni.preset('quick')


def test_synchronous_modes_map_to_patroni():
    assert patroni.dcs_config(synchronous_mode='off')['synchronous_mode'] is False
    assert patroni.dcs_config(synchronous_mode='first')['synchronous_mode'] is True
    assert patroni.dcs_config(synchronous_mode='any', synchronous_count=2)['synchronous_mode'] == 'quorum'
    assert patroni.dcs_config(synchronous_mode='any', synchronous_count=2)['synchronous_node_count'] == 2
    # strict only means something with synchronous replication on
    assert patroni.dcs_config(synchronous_mode='off', strict=True)['synchronous_mode_strict'] is False
    assert patroni.dcs_config(synchronous_mode='first', strict=True)['synchronous_mode_strict'] is True
    with pytest.raises(ValueError, match='postgresql_synchronous_mode'):
        patroni.dcs_config(synchronous_mode='all')


def test_shared_parameters_keep_only_what_patroni_owns_and_the_last_row_wins():
    rows = [{'name': 'max_wal_senders', 'setting': '10'}, {'name': 'shared_buffers', 'setting': '64MB'},
            {'name': 'max_wal_senders', 'setting': '12'}, {'name': 'WAL_LEVEL', 'setting': 'replica'}]
    assert patroni.shared_parameters(rows) == {'max_wal_senders': '12', 'wal_level': 'replica'}


def test_the_patch_holds_only_what_differs():
    wanted = patroni.dcs_config('fast', 'any', 1, False, 1048576, {'max_wal_senders': '12', 'wal_log_hints': 'on'})
    current = {'ttl': 20, 'loop_wait': 5, 'retry_timeout': 5, 'maximum_lag_on_failover': 1048576,
               'synchronous_mode': 'quorum', 'synchronous_mode_strict': False, 'synchronous_node_count': 1,
               'failsafe_mode': False, 'ignore_slots': [{'type': 'physical'}, {'type': 'logical'}],
               'postgresql': {'use_pg_rewind': True, 'use_slots': True,
                              'parameters': {'max_wal_senders': 12, 'wal_log_hints': 'on', 'other': 1}}}
    assert patroni.config_patch(current, wanted) == {}
    current['ttl'] = 30
    current['postgresql']['parameters']['max_wal_senders'] = 10
    assert patroni.config_patch(current, wanted) == {'ttl': 20, 'postgresql': {'parameters': {'max_wal_senders': '12'}}}


def test_a_cluster_without_configuration_gets_all_of_it():
    wanted = patroni.dcs_config()
    assert patroni.config_patch({}, wanted) == wanted

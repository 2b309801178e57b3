# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter import monitoring as f

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
DEFAULTS = yaml.safe_load(open(os.path.join(ROOT, 'roles', 'monitoring', 'defaults', 'main.yml')))
MEMBERS = ['pg1', 'pg2']


def errors(members=('pg1', 'pg2'), backup=('repo',), monitors=('watch',), **over):
    conf = dict(DEFAULTS, **over)
    return ' '.join(f.monitoring_errors(conf, list(members), list(backup), list(monitors)))


def test_the_defaults_pass():
    assert errors() == ''


@pytest.mark.parametrize('name,value', [
    ('monitoring_scrape_interval', '15'), ('monitoring_primary_down_for', '1m30s'), ('monitoring_group_wait', ''),
    ('monitoring_retention', '-1d'), ('monitoring_not_streaming_for', "30s'"),
])
def test_a_bad_duration_is_refused_by_name(name, value):
    assert name in errors(**{name: value}) and 'duration' in errors(**{name: value})


@pytest.mark.parametrize('value', [80, 70000, 'x', True, '9100 '])
def test_a_bad_port_is_refused(value):
    assert 'monitoring_node_exporter_port' in errors(monitoring_node_exporter_port=value)


def test_two_services_on_one_port_are_refused():
    msg = errors(monitoring_node_exporter_port=9187)
    assert 'monitoring_postgres_exporter_port' in msg or 'monitoring_node_exporter_port' in msg
    assert 'already' in msg


@pytest.mark.parametrize('url', ['ftp://x/', 'http://x/"; rm -rf /', 'http://a b/', 'hooks.example.com'])
def test_a_webhook_that_is_not_a_plain_url_is_refused(url):
    assert 'monitoring_webhook_url' in errors(monitoring_webhook_url=url)


def test_a_plain_webhook_passes():
    assert errors(monitoring_webhook_url='https://chat.example.com:8443/hooks/pgha?x=1') == ''


@pytest.mark.parametrize('name,value', [
    ('monitoring_exporter_role', 'Prometheus'), ('monitoring_exporter_role', 'a;b'),
    ('monitoring_lag_bytes', 0), ('monitoring_lag_seconds', 'x'), ('monitoring_cert_days', True),
    ('monitoring_slot_retained_ratio', 1.5), ('monitoring_disk_free_ratio', 0),
    ('monitoring_listen_address', 'watch.example'),
    ('monitoring_backup_max_age_hours', {'full': 'x'}), ('monitoring_backup_max_age_hours', {'weekly': 1}),
    ('monitoring_backup_max_age_hours', 24),
])
def test_bad_values_are_refused_by_name(name, value):
    assert name.split('.')[0] in errors(**{name: value})


def test_the_monitoring_host_is_not_a_member_nor_the_backup_host():
    assert 'must not be one of the hosts' in errors(monitors=('pg2',))
    assert 'must not be one of the hosts' in errors(monitors=('repo',))
    assert 'has no host' in errors(monitors=())


HOSTVARS = {
    'pg1': {'ansible_facts': {'default_ipv4': {'address': '10.0.0.11'}}},
    'pg2': {'ansible_facts': {'default_ipv4': {'address': '10.0.0.12'}}, 'postgresql_host_address': '10.1.0.12'},
    'repo': {'ansible_facts': {'default_ipv4': {'address': '10.0.0.20'}}},
    'watch': {'ansible_facts': {'default_ipv4': {'address': 'fd00::30'}}},
}
GROUPS = {'primary': ['pg1'], 'replicas': ['pg2'], 'backup': ['repo'], 'monitoring': ['watch']}
PORTS = {'postgres': 9187, 'node': 9100, 'pgbackrest': 9854}


def test_targets_are_named_by_inventory_name_on_their_own_addresses():
    t = f.monitoring_targets(GROUPS, HOSTVARS, MEMBERS, PORTS)
    assert t['postgres'] == [{'instance': 'pg1', 'target': '10.0.0.11:9187'},
                             {'instance': 'pg2', 'target': '10.1.0.12:9187'}]
    assert [x['instance'] for x in t['node']] == ['pg1', 'pg2', 'repo', 'watch']
    assert t['node'][-1]['target'] == '[fd00::30]:9100'
    assert t['pgbackrest'] == [{'instance': 'repo', 'target': '10.0.0.20:9854'}]


def test_no_pgbackrest_target_with_the_native_engine_or_without_a_backup_host():
    assert f.monitoring_targets(GROUPS, HOSTVARS, MEMBERS, PORTS, pgbackrest=False)['pgbackrest'] == []
    groups = dict(GROUPS, backup=[])
    t = f.monitoring_targets(groups, HOSTVARS, MEMBERS, PORTS)
    assert t['pgbackrest'] == [] and 'repo' not in [x['instance'] for x in t['node']]


def test_a_host_without_an_address_is_an_error():
    with pytest.raises(AnsibleFilterError, match='repo'):
        f.monitoring_targets(GROUPS, dict(HOSTVARS, repo={}), MEMBERS, PORTS)


@pytest.mark.parametrize('seconds,text', [
    (0.5, '0.5s'), (42, '42s'), (120, '2m 0s'), (3661, '1h 1m 1s'), (86400, '1d 0h 0m 0s'), (712800, '8d 6h 0m 0s'),
])
def test_prom_duration_is_prometheus_humanize_duration(seconds, text):
    assert f.prom_duration(seconds) == text


@pytest.mark.parametrize('value,text', [(1, '1'), (1000, '1000'), (536870912, '512Mi'), (1610612736, '1.5Gi')])
def test_prom_bytes_is_prometheus_humanize1024(value, text):
    assert f.prom_bytes(value) == text


@pytest.mark.parametrize('text,seconds', [('15s', 15), ('2m', 120), ('1h', 3600), ('500ms', 0.5)])
def test_duration_seconds(text, seconds):
    assert f.duration_seconds(text) == seconds


def test_duration_seconds_refuses_garbage():
    with pytest.raises(AnsibleFilterError):
        f.duration_seconds('soon')

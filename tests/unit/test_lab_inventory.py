"""The lab's inventory runs the runbooks as the README writes them: the plays on
localhost must not inherit the lab's SSH settings (they used to fail at once on
'inventory_dir' is undefined), and the lab has the whole product (VIPs,
synchronous replication, a backup host).

No lab is needed: every host is pointed at a closed port on loopback, so the
survey finds them unreachable and promote.yml's decision runs on localhost."""

import os
import subprocess

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LAB = os.path.join(ROOT, 'inventories', 'lab')


def test_lab_has_vips_sync_backups_and_pgpool():
    with open(os.path.join(LAB, 'group_vars', 'all.yml')) as f:
        gv = yaml.safe_load(f)
    assert gv['keepalived_writer_vip'] == '10.89.60.100/24'
    assert gv['keepalived_reader_vip'] == '10.89.60.101/24'
    assert gv['postgresql_synchronous_mode'] == 'any' and gv['postgresql_settings']['synchronous_commit'] == 'on'
    with open(os.path.join(LAB, 'hosts.yml')) as f:
        inv = yaml.safe_load(f)
    assert 'vars' not in inv['all'], 'connection settings on "all" reach the runbooks\' localhost plays'
    lab = inv['all']['children']['lab']
    assert set(lab['children']) == {'primary', 'replicas', 'backup', 'pgpool', 'monitoring'}
    assert gv['pgpool_vip'] == '10.89.60.50/24' and len(lab['children']['pgpool']['hosts']) == 2
    # the monitoring host is none of the hosts whose loss it reports, and its alerts reach someone
    assert len(lab['children']['monitoring']['hosts']) == 1
    assert gv['monitoring_test_receiver'] is True


def test_a_runbook_decides_on_localhost_with_the_lab_inventory():
    proc = subprocess.run(
        ['ansible-playbook', '-i', LAB, os.path.join(ROOT, 'playbooks', 'promote.yml'), '--check',
         '-e', 'ansible_host=127.0.0.1', '-e', 'ansible_port=1', '-e', 'runbook_connect_timeout=2'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, timeout=300, check=False)
    out = proc.stdout
    assert 'inventory_dir' not in out, out[-3000:]
    assert 'DECISION: REFUSE - No replica answered' in out, out[-3000:]
    assert 'CHECK MODE: this was the plan; nothing was changed.' in out

"""Each bad input stops site.yml in its preflight with a message that names
the variable and the fix, and leaves every host exactly as it was."""

import os
import re
import subprocess

import pytest
import yaml

import pgha_testlib as lib

GOOD_VARS = {'postgresql_replication_password': 'preflight-secret'}


def write_inventory(tmp_path, primary, replicas, extra_vars=None, host_vars=None):
    hosts = {h: dict((host_vars or {}).get(h, {}), ansible_connection='containers.podman.podman')
             for h in set(primary) | set(replicas)}
    inv = {'all': {
        'hosts': hosts,
        'vars': dict(GOOD_VARS, **(extra_vars or {})),
        'children': {
            'primary': {'hosts': {h: None for h in primary}},
            'replicas': {'hosts': {h: None for h in replicas}},
        }}}
    path = tmp_path / 'hosts.yml'
    path.write_text(yaml.safe_dump(inv))
    return str(path)


def run_site(inventory):
    proc = subprocess.run(['ansible-playbook', '-i', inventory, os.path.join(lib.ROOT, 'playbooks', 'site.yml')],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=lib.ROOT, check=False)
    return proc.returncode, proc.stdout


def snapshot(node):
    """What site.yml would change first: packages, Debian's cluster config, /etc/postgresql."""
    return (node.run('dpkg-query -W -f="${Status}" postgresql-common postgresql-15 2>&1').stdout,
            node.exists('pg_createcluster'),
            node.file('/etc/postgresql').exists,
            node.file('/var/lib/postgresql').exists)


@pytest.fixture(scope='module')
def names(groups):
    return sorted(groups['primary'] + groups['replicas'])


CASES = {
    'no primary': dict(
        primary=[], replicas=['preflight-pg1', 'preflight-pg2', 'preflight-pg3'],
        expect=r"The inventory group 'primary' \(postgresql_primary_group\) must hold exactly one host; "
               r"it holds 0"),
    'two primaries': dict(
        primary=['preflight-pg1', 'preflight-pg2'], replicas=['preflight-pg3'],
        expect=r"must hold exactly one host; it holds 2: preflight-pg1, preflight-pg2"),
    'replica also primary': dict(
        primary=['preflight-pg1'], replicas=['preflight-pg1', 'preflight-pg2'],
        expect=r"preflight-pg1 is in both 'primary' \(postgresql_primary_group\) and 'replicas'"),
    'missing replication password': dict(
        extra_vars={'postgresql_replication_password': ''},
        expect=r"postgresql_replication_password is empty or shorter than 8 characters"),
    'unsupported version': dict(
        extra_vars={'postgresql_version': 11},
        expect=r"postgresql_version=11 is not available here\. Debian bookworm ships PostgreSQL 15"),
    'wrong variable type (argument_specs)': dict(
        extra_vars={'postgresql_port': 'five-four-three-two'},
        expect=r"postgresql_port.*(unable to convert to int|is of type)"),
    'wrong type in another role (argument_specs)': dict(
        extra_vars={'pg_primary_databases': 'app'},
        expect=r"pg_primary_databases.*(is of type|unable to convert to list)"),
    'invalid slot name': dict(
        host_vars={'preflight-pg2': {'postgresql_slot_name': 'Bad-Slot!'}},
        expect=r"postgresql_slot_name 'Bad-Slot!' on preflight-pg2 is not a valid replication slot name"),
    'duplicate slot names': dict(
        host_vars={'preflight-pg2': {'postgresql_slot_name': 'same'},
                   'preflight-pg3': {'postgresql_slot_name': 'same'}},
        expect=r"Two replicas would use the same replication slot"),
    'role-owned setting in the settings dict': dict(
        extra_vars={'postgresql_settings': {'port': 6543}},
        expect=r"port cannot be set through postgresql_settings"),
    # a primary without replicas is a valid cluster: the checks before this one pass
    'role-owned setting, primary without replicas': dict(
        replicas=[], extra_vars={'postgresql_settings': {'port': 6543}},
        expect=r"port cannot be set through postgresql_settings"),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_bad_input_fails_before_any_change(case, names, tmp_path):
    spec = CASES[case]
    nodes = [lib.host(n) for n in names]
    before = [snapshot(n) for n in nodes]
    inventory = write_inventory(tmp_path,
                                spec.get('primary', ['preflight-pg1']),
                                spec.get('replicas', ['preflight-pg2', 'preflight-pg3']),
                                spec.get('extra_vars'), spec.get('host_vars'))
    rc, out = run_site(inventory)
    assert rc != 0, out[-3000:]
    flat = ' '.join(out.split())
    assert re.search(spec['expect'], flat), flat[-3000:]
    # nothing ran past the preflight: no task reported a change, no host changed
    assert not re.search(r'changed=[1-9]', out), out[-3000:]
    assert [snapshot(n) for n in nodes] == before
    # the hosts are still bare: not even postgresql-common was installed
    for node in nodes:
        assert not node.package('postgresql-common').is_installed, node.backend.hostname


def test_secrets_are_not_printed(names, tmp_path):
    """A failing run must not echo the replication password."""
    inventory = write_inventory(tmp_path, ['preflight-pg1'], ['preflight-pg2', 'preflight-pg3'],
                                {'postgresql_version': 11, 'postgresql_replication_password': 'Sup3r-Secret-Value'})
    rc, out = run_site(inventory)
    assert rc != 0
    assert 'Sup3r-Secret-Value' not in out


def test_a_primary_without_replicas_provisions(tmp_path):
    """Runs last: it leaves preflight-pg1 provisioned (the cases above need bare hosts).
    A cluster may start as a primary alone; replicas come later."""
    inventory = write_inventory(tmp_path, ['preflight-pg1'], [])
    rc, out = run_site(inventory)
    assert rc == 0, out[-4000:]
    node = lib.host('preflight-pg1')
    assert lib.role_of(node) == 'primary'
    assert lib.psql(node, 'SELECT count(*) FROM pg_replication_slots') == '0'
    rc, out = run_site(inventory)
    assert rc == 0, out[-4000:]
    recap = re.sub(r'\x1b\[[0-9;]*m', '', out)      # the recap is coloured
    assert re.search(r'preflight-pg1\s*:.* changed=0 ', recap), recap[-2000:]

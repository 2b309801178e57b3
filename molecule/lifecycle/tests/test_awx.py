"""The AWX job templates, run the way AWX runs a job (tests/lib/awx_job.py):
the execution environment is built from the local base (tools/build-ee) and
holds the collection and its dependencies; for each template a private data
directory shaped like the one a real AWX wrote (tests/data/awx-golden); then
real jobs through `ansible-runner transmit | worker | process` inside the EE
against this scenario's cluster: status runs, promote's plan names the
candidate and changes nothing, a wrong answer is refused before any host
changes, and a switchover through its template swaps the roles (and a second
one swaps them back, so the lifecycle walk that follows starts from the
provisioned cluster).

This file runs first (conftest.FILE_ORDER) and leaves the cluster
as it found it."""

import os
import re
import subprocess

import pytest
import yaml

import awx_job
import pgha_testlib as lib

NAMES = ['lifecycle-pg1', 'lifecycle-pg2', 'lifecycle-pg3']
NETWORK = 'pgha-mol-lifecycle'
KEY = os.path.join(awx_job.WORK, 'lab', 'id_ed25519')
GOLDEN = os.path.join(awx_job.ROOT, 'tests', 'data', 'awx-golden')
TEMPLATES = awx_job.templates()
#: answers for the questions that have no default
REQUIRED = {'rejoin_host': 'lifecycle-pg2', 'restore_confirm': 'false'}


@pytest.fixture(scope='module')
def ee():
    """tools/build-ee rebuilds the EE from the local base image (the base itself is
    built once), so the suite proves the build of this checkout."""
    proc = subprocess.run([os.path.join(awx_job.ROOT, 'tools', 'build-ee')], capture_output=True, text=True,
                          env=dict(os.environ, PGHA_EE_REBUILD='1'), timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    lib.measured(proc.stdout.strip().splitlines()[-1])
    return awx_job.EE_IMAGE


@pytest.fixture(scope='module')
def inventory():
    return awx_job.inventory_json(lib.inventory_dir())


def state():
    """What a job must not change: each node's role, postmaster start and fence marker."""
    out = {}
    for name in NAMES:
        node = lib.host(name)
        out[name] = (lib.role_of(node),
                     lib.psql(node, 'SELECT pg_postmaster_start_time()', check=False).stdout.strip(),
                     node.file('/var/lib/postgresql/17/.pgha-fenced-main').exists)
    return out


def job(tmp_path, name, answers, inventory, check_launch=True):
    template = TEMPLATES[name]
    if check_launch:
        assert awx_job.launch_errors(template, answers) == [], 'AWX would refuse this launch'
    path = awx_job.private_data_dir(str(tmp_path / 'job'), template, answers, inventory, KEY, NETWORK)
    return awx_job.run(path, template)


def test_the_ee_builds_and_holds_the_collection_and_its_dependencies(ee):
    proc = lib.podman('run', '--rm', ee, 'ansible-galaxy', 'collection', 'list')
    listed = dict(re.findall(r'^(\S+\.\S+)\s+(\S+)\s*$', proc.stdout, re.M))
    with open(os.path.join(awx_job.ROOT, 'galaxy.yml')) as f:
        galaxy = yaml.safe_load(f)
    assert listed['pgha.cluster'] == galaxy['version']
    for dependency in galaxy['dependencies']:
        assert dependency in listed, proc.stdout
    proc = lib.podman('run', '--rm', ee, 'sh', '-c',
                      'ansible-runner --version && ansible-playbook --version && python3 -c "import psycopg2" && ssh -V')
    assert 'core 2.19' in proc.stdout, proc.stdout
    # the collection inside is this checkout's: its newest filter is there
    proc = lib.podman('run', '--rm', ee, 'sh', '-c',
                      'cat /usr/share/ansible/collections/ansible_collections/pgha/cluster/plugins/filter/awx.py')
    with open(os.path.join(awx_job.ROOT, 'plugins', 'filter', 'awx.py')) as f:
        assert proc.stdout.strip() == f.read().strip()


@pytest.mark.parametrize('name', sorted(TEMPLATES))
def test_each_templates_private_data_dir_is_shaped_like_awxs(tmp_path, inventory, name):
    template = TEMPLATES[name]
    answers = {q['variable']: REQUIRED.get(q['variable'], q.get('default', ''))
               for q in template['survey_spec'].get('spec', [])}
    answers = {k: v for k, v in answers.items() if v != ''}
    assert awx_job.launch_errors(template, answers) == []
    path = awx_job.private_data_dir(str(tmp_path / 'job'), template, answers, inventory, KEY, NETWORK)
    assert os.path.isfile(os.path.join(path, 'project', template['playbook']))
    with open(os.path.join(path, 'env', 'extravars')) as f:
        ours = f.read()
    with open(os.path.join(GOLDEN, 'env', 'extravars')) as f:
        golden = f.read()
    # the same AWX variables, every key tagged !unsafe, strings too, numbers not
    key = re.compile(r"^!unsafe '([^']+)': ", re.M)
    assert {k for k in key.findall(golden) if k.startswith(('awx_', 'tower_'))} == \
        {k for k in key.findall(ours) if k.startswith(('awx_', 'tower_'))}
    assert all(line.startswith("!unsafe '") for line in ours.splitlines())
    assert "!unsafe 'awx_job_id': 1" in ours
    with open(os.path.join(path, 'env', 'cmdline')) as f:
        cmdline = f.read()
    assert cmdline.startswith('--check') == (template['job_type'] == 'check')
    assert cmdline.endswith('-u root')
    # the inventory script prints JSON of the golden shape: groups, _meta.hostvars with AWX's variables
    printed = subprocess.run([os.path.join(path, 'inventory', 'hosts')], capture_output=True, text=True,
                             check=True).stdout
    import json
    got = json.loads(printed)
    with open(os.path.join(GOLDEN, 'inventory-hosts.json')) as f:
        want = json.load(f)
    assert set(want['all']['children']) <= set(got['all']['children'])
    for hostvars in got['_meta']['hostvars'].values():
        assert set(want['_meta']['hostvars']['db1']) - {'ansible_connection'} <= set(hostvars)


def test_status_runs_through_its_template(ee, tmp_path, inventory):
    status, rc, out = job(tmp_path, 'pgha status', {}, inventory)
    assert (status, rc) == ('successful', '0'), out[-4000:]
    assert 'HEALTHY' in out, out[-3000:]


def test_promotes_plan_names_the_candidate_and_changes_nothing(ee, tmp_path, inventory):
    before = state()
    status, rc, out = job(tmp_path, 'pgha promote (failover) - plan', {'promote_force': 'true'}, inventory)
    assert (status, rc) == ('successful', '0'), out[-4000:]
    assert re.search(r'promote (lifecycle-pg2|lifecycle-pg3)', out, re.I), out[-4000:]
    assert 'CHECK MODE' in out or 'check mode' in out, out[-3000:]
    assert state() == before


def test_a_wrong_type_and_a_missing_required_answer_are_refused_before_any_host_changes(ee, tmp_path, inventory):
    before = state()
    promote = TEMPLATES['pgha promote (failover)']
    rejoin = TEMPLATES['pgha rejoin']
    # AWX refuses such launches itself ...
    assert awx_job.launch_errors(promote, {'promote_max_lag_bytes': '16MB'})
    assert awx_job.launch_errors(rejoin, {}) == ["'rejoin_host' value missing"]
    # ... and if the answers reached the playbook all the same (a template edited by
    # hand, a survey turned off), the playbook refuses them before any host
    status, rc, out = job(tmp_path / 'a', 'pgha promote (failover)', {'promote_max_lag_bytes': '16MB'},
                          inventory, check_launch=False)
    assert status == 'failed' and rc != '0'
    assert 'REFUSED, nothing was changed' in out and 'promote_max_lag_bytes' in out, out[-3000:]
    assert 'PROMOTE 1/7' not in out
    status, rc, out = job(tmp_path / 'b', 'pgha rejoin', {}, inventory, check_launch=False)
    assert status == 'failed'
    assert 'missing required arguments: rejoin_host' in out, out[-3000:]
    assert 'REJOIN 1/4' not in out
    assert state() == before


def test_a_switchover_through_its_template_swaps_the_roles_and_back(ee, tmp_path, inventory):
    assert lib.current_primary(NAMES) == 'lifecycle-pg1'
    status, rc, out = job(tmp_path / 'there', 'pgha switchover', {'switchover_candidate': 'lifecycle-pg2'}, inventory)
    assert (status, rc) == ('successful', '0'), out[-5000:]
    assert lib.current_primary(NAMES) == 'lifecycle-pg2'
    assert lib.role_of(lib.host('lifecycle-pg1')) == 'standby'
    # back, so the walk starts from the provisioned cluster (and the inventory is right again)
    status, rc, out = job(tmp_path / 'back', 'pgha switchover', {'switchover_candidate': 'lifecycle-pg1'}, inventory)
    assert (status, rc) == ('successful', '0'), out[-5000:]
    assert lib.current_primary(NAMES) == 'lifecycle-pg1'
    lib.wait_for(lambda: all(lib.role_of(lib.host(n)) == 'standby' for n in NAMES[1:]), 60,
                 what='both replicas back as standbys')

"""Run a job template the way AWX runs a job, without an AWX server.

AWX launches a job by checking the survey answers (a launch with a missing
required answer or a wrong type is refused), then writing a private data
directory and running `ansible-runner transmit | worker | process` with the
job inside its execution environment (podman process isolation). This module
does the same from the job template data of awx/templates.yml (the filters
of plugins/filter/awx.py), in the shape a real AWX 24.6.1 wrote
(tests/data/awx-golden):

- env/extravars: the survey answers and AWX's awx_*/tower_* variables, every
  key and every string tagged !unsafe;
- env/cmdline: --check for a "check" job type, -u USER from the machine
  credential;
- env/ssh_key: the machine credential's key; env/settings: process isolation
  in the EE, output suppressed;
- inventory/hosts: an executable script printing the inventory as JSON, as
  AWX's inventory import read it (ansible-inventory --list), with AWX's
  remote_host_*/remote_tower_* host variables;
- project/: the project's checkout (this repository's tracked files).
"""

import json
import os
import shutil
import subprocess
import importlib.util

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
EE_IMAGE = os.environ.get('PGHA_EE_IMAGE', 'localhost/pgha-ee:latest')
WORK = os.environ.get('PGHA_WORK', os.path.join(ROOT, '.work'))
RUNNER = os.path.join(os.environ.get('PGHA_EE_VENV', os.path.join(WORK, 'ee-venv')), 'bin', 'ansible-runner')
# AWX's metadata variables, as the golden job has them
META_KEYS = ('job_id', 'job_launch_type', 'inventory_id', 'inventory_name', 'project_revision',
             'project_scm_branch', 'job_template_id', 'job_template_name')


def _filters():
    """plugins/filter/awx.py, loaded from this checkout (pure functions)."""
    spec = importlib.util.spec_from_file_location('pgha_awx_filters', os.path.join(ROOT, 'plugins', 'filter', 'awx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _yaml(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return yaml.safe_load(f)


def templates():
    """Every job template of awx/templates.yml with its generated survey, by name."""
    awx_job_templates = _filters().awx_job_templates
    specs = _yaml('playbooks', 'vars', 'options.yml')['pgha_runbook_options']
    return {t['name']: t for t in awx_job_templates(_yaml('awx', 'templates.yml')['pgha_awx'], specs)}


def launch_errors(template, answers):
    """What AWX would refuse the launch for (the survey's rules)."""
    awx_answer_errors = _filters().awx_answer_errors
    return awx_answer_errors(template['survey_spec'], answers) if template['survey_enabled'] else []


def _unsafe(value):
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return json.dumps(value)
    return "!unsafe " + "'" + str(value).replace("'", "''") + "'"


def extravars_text(answers, template, job_id, inventory_name):
    meta = {'job_id': job_id, 'job_launch_type': 'manual', 'inventory_id': 1, 'inventory_name': inventory_name,
            'project_revision': '0' * 40, 'project_scm_branch': '', 'job_template_id': job_id,
            'job_template_name': template['name']}
    items = list(answers.items())
    for prefix in ('awx_', 'tower_'):
        items += [(prefix + k, meta[k]) for k in META_KEYS]
    return ''.join('%s: %s\n' % (_unsafe(k), _unsafe(v)) for k, v in items)


def inventory_json(inventory_dir):
    """The inventory as AWX imported it (ansible-inventory --list), the controller's
    own connection settings left out (the credential gives user and key), AWX's host
    variables added."""
    proc = subprocess.run(['ansible-inventory', '-i', inventory_dir, '--list'], capture_output=True,
                          text=True, check=True)
    inv = json.loads(proc.stdout)
    for i, (name, hostvars) in enumerate(sorted(inv['_meta']['hostvars'].items()), 1):
        for key in ('ansible_ssh_private_key_file', 'ansible_user', 'ansible_python_interpreter'):
            hostvars.pop(key, None)
        hostvars.update({'remote_host_enabled': 'true', 'remote_host_id': i,
                         'remote_tower_enabled': 'true', 'remote_tower_id': i})
        inv['_meta']['hostvars'][name] = hostvars
    return inv


def project_copy(dest):
    """The project: this repository's tracked files (what AWX's project update checks out)."""
    files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split('\0')
    for rel in filter(None, files):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue
        dst = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def private_data_dir(path, template, answers, inventory, ssh_key, network, user='root', job_id=1,
                     inventory_name='pgha cluster'):
    """Write the private data directory AWX writes for a job of this template."""
    os.makedirs(os.path.join(path, 'env'))
    os.makedirs(os.path.join(path, 'inventory'))
    with open(os.path.join(path, 'env', 'extravars'), 'w') as f:
        f.write(extravars_text(answers, template, job_id, inventory_name))
    with open(os.path.join(path, 'env', 'cmdline'), 'w') as f:
        f.write(('--check ' if template['job_type'] == 'check' else '') + ('--diff ' if template['diff_mode'] else '')
                + '-u %s' % user)
    with open(os.path.join(path, 'env', 'settings'), 'w') as f:
        yaml.safe_dump({'process_isolation': True, 'process_isolation_executable': 'podman',
                        'container_image': EE_IMAGE,
                        # what AWX passes for podman (the image's user cannot read the key
                        # otherwise), and the cluster's network
                        'container_options': ['--user=root', '--network=%s' % network],
                        'suppress_ansible_output': True}, f)
    shutil.copy(ssh_key, os.path.join(path, 'env', 'ssh_key'))
    os.chmod(os.path.join(path, 'env', 'ssh_key'), 0o600)
    script = os.path.join(path, 'inventory', 'hosts')
    with open(script, 'w') as f:
        f.write('#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n' % json.dumps(inventory))
    os.chmod(script, 0o755)
    project_copy(os.path.join(path, 'project'))
    return path


def run(path, template, timeout=900):
    """ansible-runner transmit | worker | process, as AWX's dispatcher, receptor's worker and
    AWX's callback receiver do; returns (status, rc, stdout)."""
    cmd = ('{r} transmit {d} -p {p} | timeout {t} {r} worker | {r} process {d}'
           .format(r=RUNNER, d=path, p=template['playbook'], t=timeout))
    proc = subprocess.run(['bash', '-o', 'pipefail', '-c', cmd], capture_output=True, text=True,
                          timeout=timeout + 60, check=False)
    artifacts = os.path.join(path, 'artifacts')

    def read(name):
        p = os.path.join(artifacts, name)
        return open(p).read().strip() if os.path.exists(p) else ''
    return read('status'), read('rc'), read('stdout') or proc.stdout + proc.stderr

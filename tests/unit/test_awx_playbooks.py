"""awx/export.yml writes exactly the data the filters compute, and
awx/load.yml checks that data against AWX's survey rules before it sends a
single request (run here with ansible-playbook; no AWX is reachable, so a
run that passes its checks stops at its first request: to a closed port)."""

import json
import os
import subprocess

import yaml

from ansible_collections.pgha.cluster.plugins.filter.awx import awx_export

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def _yaml(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return yaml.safe_load(f)


def _play(tmp_path, playbook, *args):
    env = dict(os.environ, CONTROLLER_HOST='http://127.0.0.1:9', CONTROLLER_USERNAME='admin',
               CONTROLLER_PASSWORD='not-a-real-password', ANSIBLE_LOCALHOST_WARNING='False',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='False')
    return subprocess.run(['ansible-playbook', os.path.join(ROOT, 'awx', playbook)] + list(args),
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False)


def test_export_writes_the_templates_data(tmp_path):
    out = tmp_path / 'awx.json'
    proc = _play(tmp_path, 'export.yml', '-e', 'pgha_awx_export=%s' % out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = awx_export(_yaml('awx', 'templates.yml')['pgha_awx'],
                      _yaml('playbooks', 'vars', 'options.yml')['pgha_runbook_options'])
    assert json.loads(out.read_text()) == json.loads(json.dumps(want))


def test_load_refuses_a_broken_survey_before_any_request(tmp_path):
    options = _yaml('playbooks', 'vars', 'options.yml')
    # a default outside its choices: AWX would refuse the survey
    options['pgha_runbook_options']['backup']['options']['backup_type']['default'] = 'weekly'
    (tmp_path / 'broken.yml').write_text(yaml.safe_dump(options))
    key = tmp_path / 'key'
    key.write_text('not a key\n')
    proc = _play(tmp_path, 'load.yml', '-e', '@broken.yml', '-e', 'pgha_awx_ssh_key_file=%s' % key)
    assert proc.returncode != 0
    assert "break AWX's rules" in proc.stdout and 'backup_type' in proc.stdout, proc.stdout
    assert 'TASK [Organization]' not in proc.stdout


def test_load_refuses_without_the_machine_credentials_key(tmp_path):
    proc = _play(tmp_path, 'load.yml')
    assert proc.returncode != 0
    assert 'Set pgha_awx_ssh_key_file' in proc.stdout, proc.stdout
    assert 'TASK [Organization]' not in proc.stdout


def test_load_passes_its_checks_and_goes_to_awx(tmp_path):
    key = tmp_path / 'key'
    key.write_text('not a key\n')
    proc = _play(tmp_path, 'load.yml', '-e', 'pgha_awx_ssh_key_file=%s' % key)
    assert proc.returncode != 0
    # the checks passed; the first request went to the (closed) controller port
    assert 'TASK [Organization]' in proc.stdout, proc.stdout
    assert '127.0.0.1:9' in proc.stdout or 'Connection refused' in proc.stdout, proc.stdout

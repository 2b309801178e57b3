"""One source for the runbooks' options: playbooks/vars/options.yml. Each
playbook checks its -e options against its own spec before any play touches a
host, documents exactly those options in its header, and its defaults are the
spec's (the AWX surveys are generated from the same specs: test_awx.py)."""

import glob
import os
import re
import subprocess

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def _yaml(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return yaml.safe_load(f)


SPECS = _yaml('playbooks', 'vars', 'options.yml')['pgha_runbook_options']
BOOKS = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, 'playbooks', '*.yml')))
RUNBOOKS = [b for b in BOOKS if SPECS.get(b, {}).get('options')]


def test_every_playbook_has_a_spec_and_every_spec_a_playbook():
    assert sorted(SPECS) == BOOKS


def test_specs_are_argument_specs():
    for book, spec in SPECS.items():
        assert spec['short_description'], book
        for name, option in spec['options'].items():
            assert option['type'] in ('str', 'int', 'bool'), (book, name)
            assert option.get('description'), (book, name)
            # a default or required, never both; a choice's default is a choice
            assert ('default' in option) != bool(option.get('required')), (book, name)
            if option.get('choices'):
                assert option['default'] in option['choices'], (book, name)
            if 'default' in option:
                want = {'str': str, 'int': int, 'bool': bool}[option['type']]
                assert isinstance(option['default'], want) and (want is bool or not isinstance(option['default'], bool)), (book, name)


@pytest.mark.parametrize('book', RUNBOOKS)
def test_the_first_play_checks_the_options_on_localhost_before_any_host(book):
    plays = _yaml('playbooks', book + '.yml')
    first = plays[0]
    assert first['hosts'] == 'localhost'
    assert 'vars/options.yml' in first['vars_files']
    check = first['tasks'][0]
    # the runbook role's start step (the options, then the clock) or its options step alone
    assert check['ansible.builtin.include_role'] in ({'name': 'pgha.cluster.runbook', 'tasks_from': 'start'},
                                                     {'name': 'pgha.cluster.runbook', 'tasks_from': 'options'})
    assert check['vars'] == {'runbook_options_of': book} or (
        book == 'upgrade' and check['vars'] == {'runbook_options_of': book, 'runbook_first_mark': 'checks'})
    options_step = _yaml('roles', 'runbook', 'tasks', check['ansible.builtin.include_role']['tasks_from'] + '.yml')
    assert 'options.yml' in str(options_step[0]) or 'validate_argument_spec' in str(options_step[0])


@pytest.mark.parametrize('book', RUNBOOKS)
def test_the_header_documents_exactly_the_specs_options(book):
    with open(os.path.join(ROOT, 'playbooks', book + '.yml')) as f:
        text = f.read()
    header = text.split('# Options (-e):\n', 1)[1].split('\n\n', 1)[0]
    documented = set(re.findall(r'^#   ([a-z_]+)=', header, re.M))
    assert documented == set(SPECS[book]['options'])


@pytest.mark.parametrize('book', RUNBOOKS)
def test_the_playbooks_defaults_are_the_specs(book):
    plays = _yaml('playbooks', book + '.yml')
    options = SPECS[book]['options']
    seen = set()
    for play in plays:
        for name, value in (play.get('vars') or {}).items():
            if name in options:
                seen.add(name)
                # a required option's placeholder is empty: the check refuses it missing
                assert value == options[name].get('default', ''), (book, play['name'], name)
    with open(os.path.join(ROOT, 'playbooks', book + '.yml')) as f:
        text = f.read()
    # the playbook and the role steps it includes (and the task files they include in turn)
    body = text.split('\n- name', 1)[1] + _steps_text(body_of=text)
    for name, option in options.items():
        # every option is read, with the spec's default where it is read with | default(...)
        used = re.findall(r'\b%s\b(?! *:)(?:\s*\|\s*default\(([^)]*)\))?' % name, body)
        assert used, (book, name)
        for default in used:
            if default:
                assert yaml.safe_load('[%s]' % default)[0] == option['default'], (book, name, default)
        if name not in seen and not option.get('required'):
            assert any(d for d in used), (book, name, 'no default in the playbook')


def _steps_text(body_of):
    """The text of every role step a playbook includes (include_role {name: pgha.cluster.ROLE, tasks_from:
    STEP}), and of the task files those include, recursively."""
    seen, out = set(), ''
    todo = re.findall(r'name: pgha\.cluster\.(\w+), tasks_from: (\w+)', body_of)
    while todo:
        role, step = todo.pop()
        path = os.path.join(ROOT, 'roles', role, 'tasks', step + '.yml')
        if (role, step) in seen or not os.path.exists(path):
            continue
        seen.add((role, step))
        with open(path) as f:
            text = f.read()
        out += text
        todo += re.findall(r'name: pgha\.cluster\.(\w+), tasks_from: (\w+)', text)
        todo += [(role, t) for t in re.findall(r'include_tasks: (?:file: )?(\w+)\.yml', text)]
    return out


def _run(tmp_path, book, *extra):
    """ansible-playbook BOOK against an inventory whose hosts cannot be reached
    (loopback, closed port): a refusal must come before any play on them."""
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(yaml.safe_dump({'all': {
        'vars': {'ansible_host': '127.0.0.1', 'ansible_port': 9, 'ansible_user': 'nobody'},
        'children': {'primary': {'hosts': {'pg1': None}}, 'replicas': {'hosts': {'pg2': None}},
                     'backup': {'hosts': {'pgbackup': None}}}}}))
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING='False')
    return subprocess.run(['ansible-playbook', '-i', str(inventory), os.path.join(ROOT, 'playbooks', book + '.yml')]
                          + list(extra), cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize('book, extra, named', [
    ('promote', ['-e', 'promote_max_lag_bytes=16MB'], "'promote_max_lag_bytes' is of type"),
    ('promote', ['-e', 'promote_force=perhaps'], "'promote_force' is of type"),
    ('rejoin', [], 'missing required arguments: rejoin_host'),
    ('rejoin', ['-e', 'rejoin_host=pg1', '-e', 'rejoin_method=dump'], 'rejoin_method must be one of: rewind, reclone'),
    ('backup', ['-e', 'backup_type=weekly'], 'backup_type must be one of: incr, diff, full, dump'),
    ('restore', ['-e', 'restore_confirm=maybe'], "'restore_confirm' is of type"),
    ('restore_drill', ['-e', 'restore_drill_type=all'], 'restore_drill_type must be one of: latest, immediate'),
    ('switchover', ['-e', 'switchover_max_lag_bytes=-'], "'switchover_max_lag_bytes' is of type"),
    ('status', ['-e', 'runbook_connect_timeout=soon'], "'runbook_connect_timeout' is of type"),
    ('status', ['-e', 'status_format=yaml'], 'status_format must be one of: text, json'),
    ('status', ['-e', 'status_picture=cluster.gif'], 'status_picture=cluster.gif must end in .svg, .png'),
    ('status', ['-e', 'status_picture=/nonexistent/dir/cluster.svg'], 'in a directory that exists'),
])
def test_a_wrong_option_is_refused_naming_it_before_any_host_is_touched(tmp_path, book, extra, named):
    proc = _run(tmp_path, book, *extra)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert named in out and 'REFUSED, nothing was changed' in out, out
    # only the checking play ran: no host was contacted
    assert 'pg1' not in out.split('PLAY RECAP', 1)[1], out
    assert 'UNREACHABLE' not in out, out


def test_an_awx_answer_that_arrives_as_a_string_is_accepted(tmp_path):
    """AWX passes a multiple-choice 'false' as a string and the integer as an
    int (tests/data/awx-golden): the check accepts both, and the run goes on
    to the survey of the (here unreachable) hosts."""
    proc = _run(tmp_path, 'promote', '-e', '{"promote_force": "false", "promote_max_lag_bytes": 0}', '--check')
    out = proc.stdout + proc.stderr
    assert 'Check the options' in out and 'REFUSED, nothing was changed' not in out and 'PROMOTE 1/7' in out, out

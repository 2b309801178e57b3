"""The runbooks hand their plan filters what the filters need: the synchronous
standbys (a tie between equally advanced replicas goes to one of them; the
names used never to be passed) and the VIPs (the node table shows who holds
them). The filters themselves are unit-tested in plugins/filter/."""

import os
import re

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def test_runbook_vars_compute_the_synchronous_hosts_and_vips():
    shared = yaml.safe_load(_read('roles', 'runbook', 'vars', 'main.yml'))
    assert 'pgha.cluster.sync_hosts' in shared['__runbook_sync_hosts']
    assert 'postgresql_synchronous_mode' in shared['__runbook_sync_hosts']
    assert 'postgresql_synchronous_names' in shared['__runbook_sync_hosts']
    assert set(shared['__runbook_vips']) == {'writer', 'reader'}


def _decide_step(playbook):
    """The runbook role's decision step the playbook's Decide play includes (its text)."""
    plays = yaml.safe_load(_read('playbooks', playbook))
    (play,) = [p for p in plays if re.search(r' 2/\d - Decide$', p['name'])]
    (task,) = play['tasks']
    step = task['ansible.builtin.include_role']
    assert step['name'] == 'pgha.cluster.runbook', playbook
    return _read('roles', 'runbook', 'tasks', step['tasks_from'] + '.yml')


def test_promote_and_switchover_pass_the_synchronous_hosts():
    for playbook, plan in (('promote.yml', 'failover_plan'), ('switchover.yml', 'switchover_plan')):
        text = ' '.join(_decide_step(playbook).split())
        call = re.search(r'pgha\.cluster\.%s\(([^)]*)\)' % plan, text).group(1)
        assert '__runbook_sync_hosts' in call, (playbook, call)


def test_every_runbook_survey_knows_the_vips():
    for playbook in ('promote.yml', 'rejoin.yml', 'switchover.yml', 'sync_relax.yml'):
        assert 'survey_nodes(hostvars, vips=__runbook_vips)' in _decide_step(playbook), playbook
    assert 'survey_nodes(hostvars, vips=__runbook_vips)' in _read('roles', 'runbook', 'tasks', 'status_show.yml')


def test_every_runbook_that_changes_roles_brings_pgpool_in_line_before_its_summary():
    """pgpool never decides a failover: whatever changes roles must put every pgpool right
    (playbooks/pgpool_sync.yml) and then show pgpool's view in its summary."""
    for book in ('site.yml', 'promote.yml', 'switchover.yml', 'rejoin.yml', 'restore.yml'):
        plays = yaml.safe_load(_read('playbooks', book))
        imports = [i for i, p in enumerate(plays) if p.get('ansible.builtin.import_playbook') == 'pgpool_sync.yml']
        assert len(imports) == 1, book
        summaries = [i for i, p in enumerate(plays) if p.get('name', '').endswith('Summary')]
        assert all(imports[0] < i for i in summaries), book
        if book != 'site.yml':
            template = _read('roles', 'runbook', 'templates', book.replace('.yml', '_summary.j2'))
            assert "{% include 'pgpool_lines.j2'" in template, book
    sync = yaml.safe_load(_read('playbooks', 'pgpool_sync.yml'))
    assert sync[-1]['hosts'].startswith("{{ 'pgpool' if groups['pgpool']")
    assert sync[-1]['tasks'][0]['ansible.builtin.include_role'] == {'name': 'pgha.cluster.pgpool', 'tasks_from': 'sync'}


def test_the_runbooks_do_not_ride_an_ssh_master_someone_else_left():
    """A master connection without keepalives to a host that died makes every command through it
    wait about 15 minutes: the survey (every runbook's first contact) switches to masters of
    the runbooks' own that send keepalives."""
    survey = yaml.safe_load(_read('roles', 'runbook', 'tasks', 'survey.yml'))
    assert survey[0]['ansible.builtin.import_tasks'] == 'ssh_keepalive.yml'
    facts = yaml.safe_load(_read('roles', 'runbook', 'tasks', 'ssh_keepalive.yml'))[0]['ansible.builtin.set_fact']
    assert 'ServerAliveInterval=2' in facts['ansible_ssh_extra_args']
    assert facts['ansible_control_path'].startswith('%(directory)s/pgha-')
    for book in ('promote.yml', 'switchover.yml', 'rejoin.yml', 'restore.yml', 'status.yml', 'backup.yml',
                 'pgpool_sync.yml', 'sync_relax.yml'):
        assert '{name: pgha.cluster.runbook, tasks_from: survey}' in _read('playbooks', book), book
    # status.yml's other plays (pgpool hosts, backup host) keep the same masters
    assert yaml.safe_load(_read('roles', 'runbook', 'tasks', 'status_pgpool.yml'))[0][
        'ansible.builtin.import_tasks'] == 'ssh_keepalive.yml'
    backup_play = [p for p in yaml.safe_load(_read('playbooks', 'status.yml')) if 'backups' in p['name']][0]
    keepalive = {'name': 'pgha.cluster.runbook', 'tasks_from': 'ssh_keepalive'}
    assert backup_play['tasks'][0]['ansible.builtin.include_role'] == keepalive


def test_status_shows_one_document_as_table_json_and_picture():
    """status.yml: the verdict names what promote.yml would do (the same inputs promote.yml
    gives failover_plan), and the screen, the JSON and the picture all read the one
    document (pgha.cluster.status_document), so they cannot disagree."""
    plays = yaml.safe_load(_read('playbooks', 'status.yml'))
    (show,) = [p for p in plays if p['name'].endswith('Show the cluster')]
    step = {'name': 'pgha.cluster.runbook', 'tasks_from': 'status_show'}
    assert show['tasks'][0]['ansible.builtin.include_role'] == step
    tasks = dict((t['name'], t) for t in yaml.safe_load(_read('roles', 'runbook', 'tasks', 'status_show.yml')))
    document = tasks['Put together what the cluster looks like']['ansible.builtin.set_fact']['runbook_status']
    call = ' '.join(document.split())
    assert 'pgha.cluster.status_document(' in call
    for needed in ("old_primary=groups['primary']", 'sync_names=__runbook_sync_hosts', 'vips=__runbook_vips',
                   'pgha.cluster.vip_holders(', "groups['backup']", "groups['subscribers']", 'logical_report'):
        assert needed in call, needed
    assert tasks['Show the cluster']['ansible.builtin.debug']['msg'] == \
        '{{ runbook_status | pgha.cluster.status_lines }}'
    assert tasks['Show the cluster as one JSON document']['ansible.builtin.debug']['msg'] == \
        '{{ runbook_status | to_json }}'
    write = tasks["Write the picture's DOT source (status_picture)"]
    assert write['ansible.builtin.copy']['content'] == '{{ runbook_status | pgha.cluster.status_dot }}'
    assert write['delegate_to'] == 'localhost'
    draw = tasks['Draw the picture with graphviz (status_picture)']
    assert draw['ansible.builtin.command']['argv'][0] == 'dot' and draw['changed_when'] is True
    # the pgpool hosts: their addresses only, a dead one costs runbook_connect_timeout
    (pgpool,) = [p for p in plays if 'pgpool' in p['name']]
    assert pgpool['ignore_unreachable'] is True and pgpool['gather_facts'] is False
    setup = [t for t in yaml.safe_load(_read('roles', 'runbook', 'tasks', 'status_pgpool.yml'))
             if 'ansible.builtin.setup' in t][0]
    assert 'network' in setup['ansible.builtin.setup']['gather_subset'] and '!all' in \
        setup['ansible.builtin.setup']['gather_subset']
    assert setup['register'] in document

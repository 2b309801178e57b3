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
    shared = yaml.safe_load(_read('playbooks', 'vars', 'runbook.yml'))
    assert 'pgha.cluster.sync_hosts' in shared['__runbook_sync_hosts']
    assert 'postgresql_synchronous_mode' in shared['__runbook_sync_hosts']
    assert 'postgresql_synchronous_names' in shared['__runbook_sync_hosts']
    assert set(shared['__runbook_vips']) == {'writer', 'reader'}


def _decide_play(playbook):
    plays = yaml.safe_load(_read('playbooks', playbook))
    (play,) = [p for p in plays if re.search(r' 2/\d - Decide$', p['name'])]
    return play


def test_promote_and_switchover_pass_the_synchronous_hosts():
    for playbook, plan in (('promote.yml', 'failover_plan'), ('switchover.yml', 'switchover_plan')):
        play = _decide_play(playbook)
        assert play.get('vars_files') == ['vars/runbook.yml'], playbook
        text = yaml.safe_dump(play, width=1000)
        call = re.search(r'pgha\.cluster\.%s\(([^)]*)\)' % plan, text).group(1)
        assert '__runbook_sync_hosts' in call, (playbook, call)


def test_every_runbook_survey_knows_the_vips():
    for playbook in ('promote.yml', 'rejoin.yml', 'switchover.yml', 'status.yml'):
        assert 'survey_nodes(hostvars, vips=__runbook_vips)' in _read('playbooks', playbook), playbook


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
            template = _read('playbooks', 'templates', book.replace('.yml', '_summary.j2'))
            assert "{% include 'pgpool_lines.j2'" in template, book
    sync = yaml.safe_load(_read('playbooks', 'pgpool_sync.yml'))
    assert sync[-1]['hosts'].startswith("{{ 'pgpool' if groups['pgpool']")
    assert sync[-1]['tasks'][0]['ansible.builtin.include_role'] == {'name': 'pgha.cluster.pgpool', 'tasks_from': 'sync'}


def test_the_runbooks_do_not_ride_an_ssh_master_someone_else_left():
    """A master connection without keepalives to a host that died makes every command through it
    wait about 15 minutes: the survey (every runbook's first contact) switches to masters of
    the runbooks' own that send keepalives."""
    survey = yaml.safe_load(_read('playbooks', 'tasks', 'survey.yml'))
    facts = survey[0]['ansible.builtin.set_fact']
    assert 'ServerAliveInterval=2' in facts['ansible_ssh_extra_args']
    assert facts['ansible_control_path'].startswith('%(directory)s/pgha-')
    for book in ('promote.yml', 'switchover.yml', 'rejoin.yml', 'restore.yml', 'status.yml', 'backup.yml',
                 'pgpool_sync.yml'):
        assert 'tasks/survey.yml' in _read('playbooks', book), book

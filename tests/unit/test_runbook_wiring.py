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

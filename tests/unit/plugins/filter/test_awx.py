"""AWX surveys and job templates generated from the runbooks' option specs,
checked against AWX's own rules for a survey spec and for a launch's answers,
and against what a real AWX 24.6.1 wrote for one job (tests/data/awx-golden)."""

import copy
import glob
import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.awx import (
    awx_answer_errors, awx_export, awx_job_templates, awx_survey, awx_survey_errors, awx_workflows)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))


def _yaml(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return yaml.safe_load(f)


SPECS = _yaml('playbooks', 'vars', 'options.yml')['pgha_runbook_options']
CONFIG = _yaml('awx', 'templates.yml')['pgha_awx']
TEMPLATES = awx_job_templates(CONFIG, SPECS)
QTYPE = {'int': 'integer', 'bool': 'multiplechoice'}


def _questions(survey):
    return {q['variable']: q for q in survey.get('spec', [])}


def test_every_playbook_has_a_run_template_and_every_acting_one_a_plan():
    books = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, 'playbooks', '*.yml')))
    run = {t['playbook'] for t in TEMPLATES if t['job_type'] == 'run'}
    plan = {t['playbook'] for t in TEMPLATES if t['job_type'] == 'check'}
    assert run == {'playbooks/%s.yml' % b for b in books}
    assert plan == {'playbooks/%s.yml' % b for b in books if b != 'status'}
    for t in TEMPLATES:
        assert os.path.isfile(os.path.join(ROOT, t['playbook'])), t['name']
        assert t['allow_simultaneous'] is False, t['name']
        assert t['diff_mode'] == (t['job_type'] == 'check')
    assert len({t['name'] for t in TEMPLATES}) == len(TEMPLATES)


@pytest.mark.parametrize('template', TEMPLATES, ids=[t['name'] for t in TEMPLATES])
def test_every_question_is_an_option_of_its_playbook_with_the_same_type_and_choices(template):
    book = os.path.basename(template['playbook'])[:-4]
    options = SPECS[book]['options']
    questions = _questions(template['survey_spec'])
    # nothing asked that the playbook lacks, nothing the playbook has left out
    assert set(questions) == set(options)
    assert template['survey_enabled'] == bool(options)
    for name, option in options.items():
        q = questions[name]
        text = 'password' if option.get('survey', {}).get('secret') else 'text'
        assert q['type'] == QTYPE.get(option['type'], 'multiplechoice' if option.get('choices') else text)
        if option['type'] == 'bool':
            assert q['choices'] == ['false', 'true']
        elif option.get('choices'):
            assert q['choices'] == option['choices']
        if option.get('required') or option.get('survey', {}).get('required'):
            assert q['required'] is True and q['default'] == ''
        else:
            assert q['required'] is False
            want = option['default']
            assert q['default'] == (('true' if want else 'false') if option['type'] == 'bool' else want)


@pytest.mark.parametrize('template', TEMPLATES, ids=[t['name'] for t in TEMPLATES])
def test_every_survey_passes_awxs_rules(template):
    if template['survey_enabled']:
        assert awx_survey_errors(template['survey_spec']) == []


def test_dangerous_choices_default_to_the_safe_side_and_confirmations_have_no_default():
    for t in TEMPLATES:
        for q in t['survey_spec'].get('spec', []):
            if q['variable'] in ('promote_force', 'rejoin_split_brain_confirm', 'rejoin_reclone_allowed'):
                assert q['default'] == 'false' and not q['required']
    rejoin = _questions(next(t for t in TEMPLATES if t['name'] == 'pgha rejoin')['survey_spec'])
    restore = _questions(next(t for t in TEMPLATES if t['name'] == 'pgha restore')['survey_spec'])
    assert rejoin['rejoin_host']['required'] and rejoin['rejoin_host']['default'] == ''
    assert restore['restore_confirm']['required'] and restore['restore_confirm']['default'] == ''


def test_the_survey_rules_catch_what_awx_refuses():
    good = awx_survey(SPECS['restore'], 'x')
    assert awx_survey_errors(good) == []
    cases = {
        'default 5 is not of the question type text': lambda s: s['spec'][1].update(default=5),
        "default 'never' is not one of the choices": lambda s: s['spec'][0].update(default='never'),
        "variable 'restore_type' is asked twice": lambda s: s['spec'].append(copy.deepcopy(s['spec'][0])),
        'needs choices': lambda s: s['spec'][0].pop('choices'),
        'min is not an integer': lambda s: s['spec'][1].update(min='0'),
        "'required' is missing or not a bool": lambda s: s['spec'][0].update(required='yes'),
        "type 'boolean' is not one of": lambda s: s['spec'][0].update(type='boolean'),
        "'spec' has no question": lambda s: s.update(spec=[]),
        "field 'description' is missing": lambda s: s.pop('description'),
    }
    for message, breaks in cases.items():
        bad = copy.deepcopy(good)
        breaks(bad)
        assert any(message in e for e in awx_survey_errors(bad)), message


def test_a_launch_is_refused_for_a_missing_required_answer_a_wrong_type_or_choice():
    promote = awx_survey(SPECS['promote'])
    rejoin = awx_survey(SPECS['rejoin'])
    assert awx_answer_errors(promote, {'promote_candidate': 'db2', 'promote_max_lag_bytes': 0,
                                       'promote_force': 'false'}) == []
    assert awx_answer_errors(rejoin, {}) == ["'rejoin_host' value missing"]
    assert awx_answer_errors(rejoin, {'rejoin_host': 'pg1'}) == []
    assert "expected to be integer" in awx_answer_errors(promote, {'promote_max_lag_bytes': '16MB'})[0]
    assert "expected to be integer" in awx_answer_errors(promote, {'promote_max_lag_bytes': True})[0]
    assert "too small" in awx_answer_errors(promote, {'promote_max_lag_bytes': -1})[0]
    assert "expected to be one of" in awx_answer_errors(promote, {'promote_force': 'yes'})[0]
    assert "expected to be one of" in awx_answer_errors(rejoin, {'rejoin_host': 'pg1', 'rejoin_method': 'dump'})[0]
    assert "too large" in awx_answer_errors(rejoin, {'rejoin_host': 'x' * 300})[0]


def test_the_golden_jobs_answers_pass_the_generated_survey():
    """The answers a real AWX passed for promote.yml (a bool arrived as the
    string 'false', the integer as an int) are valid for our survey."""
    class Loader(yaml.SafeLoader):
        pass
    Loader.add_constructor('!unsafe', lambda loader, node: loader.construct_scalar(node))
    with open(os.path.join(ROOT, 'tests', 'data', 'awx-golden', 'env', 'extravars')) as f:
        extravars = yaml.load(f, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    answers = {k: v for k, v in extravars.items() if not k.startswith(('awx_', 'tower_'))}
    survey = awx_survey(SPECS['promote'])
    assert set(answers) <= set(_questions(survey))
    assert answers['promote_max_lag_bytes'] == 0 and answers['promote_force'] == 'false'
    assert awx_answer_errors(survey, answers) == []


def test_the_failover_workflow_runs_promote_then_rejoin_and_asks_both_surveys():
    (flow,) = awx_workflows(CONFIG, SPECS)
    first, second = flow['workflow_nodes']
    assert first['unified_job_template']['name'] == 'pgha promote (failover)'
    assert second['unified_job_template']['name'] == 'pgha rejoin'
    assert first['related']['success_nodes'] == [{'identifier': second['identifier']}]
    assert second['related']['success_nodes'] == []
    questions = _questions(flow['survey_spec'])
    assert set(questions) == set(SPECS['promote']['options']) | set(SPECS['rejoin']['options'])
    assert questions['rejoin_host']['required']
    assert awx_survey_errors(flow['survey_spec']) == []


def test_the_import_data_matches_the_templates():
    exported = awx_export(CONFIG, SPECS)
    assert [j['name'] for j in exported['job_templates']] == [t['name'] for t in TEMPLATES]
    for job, template in zip(exported['job_templates'], TEMPLATES):
        assert job['playbook'] == template['playbook']
        assert job['job_type'] == template['job_type']
        assert job['related']['survey_spec'] == template['survey_spec']
        assert job['natural_key'] == {'name': template['name'], 'type': 'job_template',
                                      'organization': {'name': CONFIG['organization'], 'type': 'organization'}}
        assert job['project']['name'] == CONFIG['project']['name']
        assert [c['name'] for c in job['related']['credentials']] == [c['name'] for c in CONFIG['credentials']]
    (flow,) = exported['workflow_job_templates']
    names = {j['name'] for j in exported['job_templates']}
    assert all(n['unified_job_template']['name'] in names for n in flow['related']['workflow_nodes'])


def test_a_template_for_a_playbook_without_a_spec_is_refused():
    config = copy.deepcopy(CONFIG)
    config['job_templates'].append({'name': 'x', 'playbook': 'nosuch'})
    with pytest.raises(AnsibleFilterError, match="'nosuch' has no spec"):
        awx_job_templates(config, SPECS)

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX job templates and surveys, computed from the runbooks' option specs.

awx_survey: one AWX survey spec from one runbook's options
(playbooks/vars/options.yml): every option becomes a question of the matching
type, with the same choices and default; a bool is a multiple choice of
'false' and 'true' (AWX has no boolean question; the playbooks read it with
`| bool`).

awx_job_templates: the job templates (a "run" one per playbook, a "check" one,
the plan, per playbook that asks for it) with their surveys, from
awx/templates.yml. awx_workflows: the workflow templates, their survey the
union of their nodes' surveys. awx_export: all of it in the shape `awx export`
writes and `awx import` reads.

awx_survey_errors: the rules AWX applies when a survey spec is saved.
awx_answer_errors: the rules AWX applies to the answers when a job is launched
(a required question answered, types, choices, bounds). Both return a list of
messages, empty when all is well.

Pure functions: unit-tested in tests/unit/plugins/filter/test_awx.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

#: AWX's question types and the Python types a default (and an answer) may have.
QUESTION_TYPES = {
    'text': (str,), 'textarea': (str,), 'password': (str,),
    'multiplechoice': (str,), 'multiselect': (str,),
    'integer': (int,), 'float': (float, int),
}
BOOL_CHOICES = ['false', 'true']


def _question_type(option):
    kind = option.get('type', 'str')
    survey = option.get('survey') or {}
    if kind == 'bool':
        return 'multiplechoice'
    if kind == 'int':
        return 'integer'
    if kind == 'float':
        return 'float'
    if kind != 'str':
        raise AnsibleFilterError('awx_survey: option type %r has no AWX question type' % kind)
    if option.get('choices'):
        return 'multiplechoice'
    return 'password' if survey.get('secret') else 'text'


def _question_name(variable):
    return variable.replace('_', ' ').capitalize()


def awx_survey(runbook, name=''):
    """The AWX survey spec for one runbook's options ({short_description, options})."""
    questions = []
    for variable, option in (runbook.get('options') or {}).items():
        option = option or {}
        survey = option.get('survey') or {}
        qtype = _question_type(option)
        question = {
            'question_name': _question_name(variable),
            'question_description': ' '.join(str(option.get('description', '')).split()),
            'variable': variable,
            'type': qtype,
            'required': bool(option.get('required') or survey.get('required')),
        }
        if option.get('type') == 'bool':
            question['choices'] = list(BOOL_CHOICES)
        elif option.get('choices'):
            question['choices'] = [str(c) for c in option['choices']]
        # a question the operator must answer on purpose has no default
        if not question['required'] and 'default' in option:
            default = option['default']
            if option.get('type') == 'bool':
                default = 'true' if default else 'false'
            question['default'] = default
        elif qtype in ('text', 'password', 'multiplechoice'):
            question['default'] = ''
        for key in ('min', 'max'):
            if key in survey:
                question[key] = survey[key]
        questions.append(question)
    return {'name': name, 'description': runbook.get('short_description', ''), 'spec': questions}


def awx_survey_errors(survey):
    """AWX's rules for a survey spec (what its API refuses when the spec is saved)."""
    errors = []
    if not isinstance(survey, dict):
        return ['the survey spec is not a mapping']
    for field, kind in (('name', str), ('description', str), ('spec', list)):
        if not isinstance(survey.get(field), kind):
            errors.append("field '%s' is missing or not a %s" % (field, kind.__name__))
    if errors:
        return errors
    if not survey['spec']:
        errors.append("'spec' has no question")
    seen = set()
    for idx, item in enumerate(survey['spec']):
        where = 'question %d (%s)' % (idx, item.get('variable') if isinstance(item, dict) else '?')
        if not isinstance(item, dict):
            errors.append('%s is not a mapping' % where)
            continue
        bad = False
        for field in ('type', 'question_name', 'variable', 'required'):
            want = bool if field == 'required' else str
            if not isinstance(item.get(field), want) or (want is str and isinstance(item.get(field), bool)):
                errors.append("%s: '%s' is missing or not a %s" % (where, field, want.__name__))
                bad = True
        if bad:
            continue
        if item['variable'] in seen:
            errors.append("%s: variable '%s' is asked twice" % (where, item['variable']))
        seen.add(item['variable'])
        qtype = item['type']
        if qtype not in QUESTION_TYPES:
            errors.append("%s: type '%s' is not one of %s" % (where, qtype, ', '.join(sorted(QUESTION_TYPES))))
            continue
        default = item.get('default', '')
        if default != '' and (not isinstance(default, QUESTION_TYPES[qtype]) or isinstance(default, bool)):
            errors.append('%s: default %r is not of the question type %s' % (where, default, qtype))
        for key in ('min', 'max'):
            if item.get(key) is not None and (not isinstance(item[key], int) or isinstance(item[key], bool)):
                errors.append('%s: %s is not an integer' % (where, key))
        if qtype in ('multiplechoice', 'multiselect'):
            choices = item.get('choices')
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip()]
            if not choices:
                errors.append('%s: a %s question needs choices' % (where, qtype))
                continue
            defaults = default.splitlines() if isinstance(default, str) else list(default)
            defaults = [d for d in defaults if d.strip()]
            if qtype == 'multiplechoice' and len(defaults) > 1:
                errors.append('%s: a multiple choice has one default at most' % where)
            if any(d not in choices for d in defaults):
                errors.append('%s: default %r is not one of the choices %s' % (where, default, choices))
    return errors


def awx_answer_errors(survey, answers):
    """AWX's rules for the answers of a launch (what a launch is refused for)."""
    errors = []
    for item in survey.get('spec', []):
        variable, qtype = item['variable'], item['type']
        if variable not in answers or answers[variable] in ('', None):
            if item.get('required') and item.get('default', '') in ('', None):
                errors.append("'%s' value missing" % variable)
            continue
        value = answers[variable]
        lo, hi = item.get('min'), item.get('max')
        if qtype in ('text', 'textarea', 'password'):
            if not isinstance(value, str):
                errors.append("Value %r for '%s' expected to be a string." % (value, variable))
                continue
            if lo not in (None, '') and len(value) < lo:
                errors.append("'%s' value %r is too small (length is %d must be at least %d)."
                              % (variable, value, len(value), lo))
            if hi not in (None, '') and len(value) > hi:
                errors.append("'%s' value is too large (must be no more than %d)." % (variable, hi))
        elif qtype in ('integer', 'float'):
            kinds = QUESTION_TYPES[qtype]
            if not isinstance(value, kinds) or isinstance(value, bool):
                errors.append("Value %r for '%s' expected to be %s." % (value, variable, qtype))
                continue
            if lo not in (None, '') and value < lo:
                errors.append("'%s' value %s is too small (must be at least %s)." % (variable, value, lo))
            if hi not in (None, '') and value > hi:
                errors.append("'%s' value %s is too large (must be no more than %s)." % (variable, value, hi))
        elif qtype == 'multiplechoice':
            choices = item.get('choices') or []
            if isinstance(choices, str):
                choices = choices.splitlines()
            if value not in choices:
                errors.append("Value %s for '%s' expected to be one of %s." % (value, variable, choices))
    return errors


def _natural(kind, name, organization=None):
    key = {'name': name, 'type': kind}
    if organization is not None:
        key['organization'] = {'name': organization, 'type': 'organization'}
    return key


def awx_job_templates(config, runbook_options):
    """Every job template (run and plan) of awx/templates.yml, with its survey."""
    templates = []
    for entry in config['job_templates']:
        book = entry['playbook']
        if book not in runbook_options:
            raise AnsibleFilterError("awx_job_templates: playbook '%s' has no spec in playbooks/vars/options.yml" % book)
        runbook = runbook_options[book]
        kinds = [('run', entry['name'])] + ([('check', entry['name'] + ' - plan')] if entry.get('plan') else [])
        for job_type, name in kinds:
            survey = awx_survey(runbook, name)
            template = {
                'name': name,
                'description': ('PLAN ONLY (check mode, changes nothing): ' if job_type == 'check' else '')
                + runbook.get('short_description', ''),
                'job_type': job_type,
                'playbook': 'playbooks/%s.yml' % book,
                'organization': config['organization'],
                'project': config['project']['name'],
                'inventory': config['inventory']['name'],
                'execution_environment': config['execution_environment']['name'],
                'credentials': [c['name'] for c in config['credentials']],
                'diff_mode': job_type == 'check',
                'allow_simultaneous': False,
                'ask_limit_on_launch': bool(entry.get('ask_limit')),
                'ask_variables_on_launch': False,
                'survey_enabled': bool(survey['spec']),
                'survey_spec': survey if survey['spec'] else {},
            }
            templates.append(template)
    return templates


def awx_workflows(config, runbook_options):
    """The workflow templates of awx/templates.yml: nodes run in order, each on the previous one's success."""
    workflows = []
    for entry in config.get('workflows', []):
        options = {}
        for book in entry['playbooks']:
            options.update(runbook_options[book].get('options') or {})
        survey = awx_survey({'short_description': entry['description'], 'options': options}, entry['name'])
        nodes = []
        for idx, (book, template) in enumerate(zip(entry['playbooks'], entry['templates'])):
            node = {'identifier': '%02d-%s' % (idx + 1, book),
                    'unified_job_template': {'name': template, 'type': 'job_template',
                                             'organization': {'name': config['organization']}},
                    'related': {'success_nodes': []}}
            if idx + 1 < len(entry['playbooks']):
                node['related']['success_nodes'] = [{'identifier': '%02d-%s' % (idx + 2, entry['playbooks'][idx + 1])}]
            nodes.append(node)
        workflows.append({'name': entry['name'], 'description': entry['description'],
                          'organization': config['organization'], 'inventory': config['inventory']['name'],
                          'allow_simultaneous': False, 'survey_enabled': True, 'survey_spec': survey,
                          'workflow_nodes': nodes})
    return workflows


def awx_export(config, runbook_options):
    """The job and workflow templates in the shape `awx export` writes (for `awx import`)."""
    org = config['organization']
    job_templates = []
    for t in awx_job_templates(config, runbook_options):
        job_templates.append({
            'name': t['name'], 'description': t['description'], 'job_type': t['job_type'],
            'playbook': t['playbook'], 'diff_mode': t['diff_mode'],
            'allow_simultaneous': t['allow_simultaneous'], 'ask_limit_on_launch': t['ask_limit_on_launch'],
            'ask_variables_on_launch': t['ask_variables_on_launch'], 'survey_enabled': t['survey_enabled'],
            'project': _natural('project', t['project'], org),
            'inventory': _natural('inventory', t['inventory'], org),
            'execution_environment': _natural('execution_environment', t['execution_environment'], org),
            'natural_key': _natural('job_template', t['name'], org),
            'related': {
                'survey_spec': t['survey_spec'],
                'credentials': [_natural('credential', c, org) for c in t['credentials']],
                'labels': [], 'schedules': [],
            },
        })
    workflows = []
    for w in awx_workflows(config, runbook_options):
        nodes = []
        for n in w['workflow_nodes']:
            nodes.append({
                'identifier': n['identifier'],
                'unified_job_template': _natural('job_template', n['unified_job_template']['name'], org),
                'natural_key': {'identifier': n['identifier'], 'type': 'workflow_job_template_node',
                                'workflow_job_template': _natural('workflow_job_template', w['name'], org)},
                'related': {'success_nodes': [
                    {'identifier': s['identifier'], 'type': 'workflow_job_template_node',
                     'workflow_job_template': _natural('workflow_job_template', w['name'], org)}
                    for s in n['related']['success_nodes']], 'failure_nodes': [], 'always_nodes': []},
            })
        workflows.append({
            'name': w['name'], 'description': w['description'], 'allow_simultaneous': w['allow_simultaneous'],
            'survey_enabled': w['survey_enabled'],
            'inventory': _natural('inventory', w['inventory'], org),
            'natural_key': _natural('workflow_job_template', w['name'], org),
            'related': {'survey_spec': w['survey_spec'], 'workflow_nodes': nodes, 'labels': [], 'schedules': []},
        })
    return {'job_templates': job_templates, 'workflow_job_templates': workflows}


class FilterModule(object):
    def filters(self):
        return {
            'awx_survey': awx_survey,
            'awx_survey_errors': awx_survey_errors,
            'awx_answer_errors': awx_answer_errors,
            'awx_job_templates': awx_job_templates,
            'awx_workflows': awx_workflows,
            'awx_export': awx_export,
        }

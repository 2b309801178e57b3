"""The collection's variables as their specs give them (plugins/plugin_utils/specs.py): the bounds every
numeric variable states, the defaults inside them, and misspelled names with the closest known one."""

import os

import pytest
import yaml

from ansible_collections.pgha.cluster.plugins.plugin_utils import specs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))


def test_bounds_phrases():
    assert specs.bounds_in('Seconds. Bounds: from 1 to 3600.') == (1, 3600)
    assert specs.bounds_in(['Ratio.', 'Bounds: from 0.01 to 0.99.']) == (0.01, 0.99)
    assert specs.bounds_in('Bounds: at least 0.') == (0, None)
    assert specs.bounds_in('Bounds: from -1 to 5.') == (-1, 5)
    assert specs.bounds_in('No bounds here (1-255).') is None


def test_every_numeric_role_variable_states_bounds_and_its_default_is_inside():
    bounds = specs.bounded_variables()
    numeric = []
    for role, options in specs.role_specs(ROOT).items():
        for name, spec in options.items():
            if spec.get('type') in ('int', 'float'):
                numeric.append(name)
                assert name in bounds, '%s (%s) states no "Bounds: ..." in its description' % (name, role)
                if spec.get('default') is not None:
                    assert specs.bounds_errors({name: (spec['default'], [])}, bounds) == [], name
    assert len(numeric) >= 45


def test_the_spec_and_the_defaults_agree_on_the_bounded_defaults():
    for path in sorted(os.listdir(os.path.join(ROOT, 'roles'))):
        defaults = os.path.join(ROOT, 'roles', path, 'defaults', 'main.yml')
        if not os.path.exists(defaults):
            continue
        with open(defaults) as f:
            values = yaml.safe_load(f) or {}
        bounds = specs.bounded_variables()
        for name, value in values.items():
            if name in bounds and not (isinstance(value, str) and '{{' in value):
                assert specs.bounds_errors({name: (value, [])}, bounds) == [], name


def test_every_runbook_number_has_bounds():
    bounds = specs.bounded_variables()
    for runbook, options in specs.runbook_specs(ROOT).items():
        for name, spec in options.items():
            if spec.get('type') in ('int', 'float'):
                assert name in bounds, '%s of %s has no survey min/max' % (name, runbook)


def test_bounds_errors():
    bounds = {'postgresql_fence_watch_interval': (1, 3600), 'monitoring_lag_bytes': (1, None),
              'keepalived_state_interval': (0.05, 5)}
    assert specs.bounds_errors({'postgresql_fence_watch_interval': (2, ['a'])}, bounds) == []
    errs = specs.bounds_errors({'postgresql_fence_watch_interval': (0, ['pg1', 'pg2'])}, bounds)
    assert errs == ['postgresql_fence_watch_interval=0 (on pg1, pg2) is out of bounds: it must be from 1 to 3600. '
                    'Fix: set it within them, or remove it (the default is).']
    errs = specs.bounds_errors({'monitoring_lag_bytes': ('-5', [])}, bounds)
    assert errs[0].startswith('monitoring_lag_bytes=-5 is out of bounds: it must be 1 or more.')
    errs = specs.bounds_errors({'keepalived_state_interval': ('fast', [])}, bounds)
    assert errs[0].startswith("keepalived_state_interval='fast' is not a number.")
    assert specs.bounds_errors({'keepalived_state_interval': ('0.2', [])}, bounds) == []
    assert specs.bounds_errors({'keepalived_state_interval': (True, [])}, bounds)[0].endswith('from 0.05 to 5.')
    assert specs.bounds_errors({'unbounded_thing': (0, [])}, bounds) == []


def test_known_and_unknown_variables():
    known = specs.known_variables(ROOT)
    for name in ('postgresql_settings', 'pg_replica_sslmode', 'backup_type', 'promote_candidate',
                 'keepalived_auth_pass', 'postgresql_accepted_risks', 'runbook_connect_timeout'):
        assert name in known, name
    unknown = specs.unknown_variables(['postgresql_setings', 'postgresql_settings', 'keepalived_writer_vipp',
                                       'pgpool_zzz_qqq', 'my_own_var', 'vault_postgresql_password'], known)
    assert unknown == {'postgresql_setings': 'postgresql_settings', 'keepalived_writer_vipp': 'keepalived_writer_vip',
                       'pgpool_zzz_qqq': None}
    assert specs.unknown_messages(unknown) == [
        'keepalived_writer_vipp is not a variable of any role or runbook of pgha.cluster (did you mean '
        'keepalived_writer_vip?).',
        'pgpool_zzz_qqq is not a variable of any role or runbook of pgha.cluster.',
        'postgresql_setings is not a variable of any role or runbook of pgha.cluster (did you mean '
        'postgresql_settings?).']


@pytest.mark.parametrize('inventory', ['inventories/lab', 'inventories/example'])
def test_the_shipped_inventories_use_known_names_only(inventory):
    names = set()
    for dirpath, _dirs, files in os.walk(os.path.join(ROOT, inventory)):
        for f in files:
            if f.endswith('.yml'):
                with open(os.path.join(dirpath, f)) as fh:
                    text = fh.read()
                names.update(_keys(yaml.safe_load(text)))
    assert specs.unknown_variables(names, specs.known_variables(ROOT)) == {}


def _keys(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _keys(v)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)

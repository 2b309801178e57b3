"""Every role's meta/argument_specs.yml mirrors its defaults/main.yml, and the
variables follow the naming rule: public ones start with the role's name,
private ones (vars/main.yml) with two underscores and the role's name."""

import glob
import os

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
ROLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'roles', '*')) if os.path.isdir(p))


def _load(role, path):
    full = os.path.join(ROOT, 'roles', role, path)
    if not os.path.exists(full):
        return None
    with open(full) as f:
        return yaml.safe_load(f) or {}


def test_every_role_is_checked():
    assert {'postgresql', 'pg_primary', 'pg_replica', 'keepalived', 'backup'} <= set(ROLES)


@pytest.mark.parametrize('role', ROLES)
def test_argument_specs_mirror_defaults(role):
    defaults = _load(role, 'defaults/main.yml')
    specs = _load(role, 'meta/argument_specs.yml')['argument_specs']
    assert 'main' in specs
    for entry, spec in specs.items():
        options = spec.get('options') or {}
        assert set(options) == set(defaults), (
            '%s/%s: only in defaults %s, only in argument_specs %s'
            % (role, entry, sorted(set(defaults) - set(options)), sorted(set(options) - set(defaults))))
        for name, value in defaults.items():
            opt = options[name]
            assert opt.get('description'), '%s: %s has no description' % (role, name)
            if 'default' in opt:
                assert opt['default'] == value, '%s: %s default %r != %r' % (role, name, opt['default'], value)
            else:
                # only a value computed at run time may be left out of the spec
                assert isinstance(value, str) and '{{' in value, \
                    '%s: %s has a plain default %r that argument_specs does not repeat' % (role, name, value)


@pytest.mark.parametrize('role', ROLES)
def test_variable_names_carry_the_role_prefix(role):
    prefix = role + '_'
    public = _load(role, 'defaults/main.yml')
    assert [n for n in public if not n.startswith(prefix)] == []
    private = _load(role, 'vars/main.yml') or {}
    assert [n for n in private if not n.startswith('__' + prefix)] == []

"""Every role's meta/argument_specs.yml mirrors its defaults/main.yml, and the
variables follow the naming rule: public ones start with the role's name,
private ones (vars/main.yml) with two underscores and the role's name. The
internal role _common holds what every role shares: the postgresql role's
group, version, cluster and port variables (listed, typed, in the postgresql
role's spec too, for its preflight's checks) and the public interface (pgha_*,
its vars/main.yml); no other role defines a pgha_ name."""

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


COMMON = '_common'
#: The postgresql role's variables whose defaults every role shares (roles/_common/defaults/main.yml).
SHARED = set(_load(COMMON, 'defaults/main.yml'))


@pytest.mark.parametrize('role', ROLES)
def test_argument_specs_mirror_defaults(role):
    defaults = _load(role, 'defaults/main.yml')
    specs = _load(role, 'meta/argument_specs.yml')['argument_specs']
    # _common runs no task as a dependency (no "main" entry point): its spec is the "vars" entry
    assert ('main' in specs) != (role == COMMON) and (role != COMMON or 'vars' in specs)
    for entry, spec in specs.items():
        options = dict(spec.get('options') or {})
        if role == 'postgresql':
            # the shared ones are listed for the preflight's type checks, without a default of their own
            for name in SHARED:
                assert name in options and 'default' not in options[name], (entry, name)
                assert options[name]['type'] == _load(COMMON, 'meta/argument_specs.yml')['argument_specs']['vars'][
                    'options'][name]['type'], name
                del options[name]
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
    prefix = 'postgresql_' if role == COMMON else role + '_'
    public = _load(role, 'defaults/main.yml')
    assert [n for n in public if not n.startswith(prefix)] == []
    private = _load(role, 'vars/main.yml') or {}
    wanted = 'pgha_' if role == COMMON else '__' + role + '_'
    assert [n for n in private if not n.startswith(wanted)] == []


def test_every_role_depends_on_common():
    for role in ROLES:
        if role == COMMON:
            continue
        deps = [d['role'] if isinstance(d, dict) else d for d in _load(role, 'meta/main.yml')['dependencies']]
        assert 'pgha.cluster._common' in deps, role

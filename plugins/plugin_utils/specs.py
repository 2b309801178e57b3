# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's own variables, read from where they are specified: every role's
meta/argument_specs.yml and the runbooks' playbooks/vars/options.yml.

Two questions are answered from them, for site.yml's preflight:
- which variables exist (a name with a role's prefix that none of them has is a typo);
- the bounds of every numeric variable. Ansible's argument specs have no key for bounds
  (ansible-lint refuses unknown keys there), so a role's spec states them in the option's
  description, in one fixed form that people read and this module parses:
  "Bounds: from 1 to 3600." or "Bounds: at least 0." The runbooks' options give theirs as
  survey min/max (the same numbers the AWX survey enforces).

Pure Python; unit-tested in tests/unit/plugins/plugin_utils/test_specs.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import glob
import os
import re

import yaml

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The prefixes of the roles' variables (and of the runbook options that share one).
ROLE_PREFIXES = ('postgresql_', 'pg_primary_', 'pg_replica_', 'keepalived_', 'backup_', 'monitoring_',
                 'pgpool_', 'logical_', 'etcd_', 'patroni_')

#: Names with a role's prefix that are not variables of a role but are still read (or refused
#: on purpose by a check of their own).
EXTRA_KNOWN = frozenset([
    'keepalived_auth_pass',          # refused by keepalived's preflight (VRRPv3 has no authentication)
    'postgresql_patroni_runs',       # a fact the postgresql role sets (Patroni runs the server)
])

#: The override that turns the refusal of unknown names into a warning.
UNKNOWN_OVERRIDE = 'postgresql_unknown_variables_allowed'

_BOUNDS_RE = re.compile(r'Bounds: (?:from (-?[0-9]+(?:\.[0-9]+)?) to (-?[0-9]+(?:\.[0-9]+)?)'
                        r'|at least (-?[0-9]+(?:\.[0-9]+)?))\.')

_CACHE = {}


def _load(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def _text(description):
    if isinstance(description, list):
        return ' '.join(str(d) for d in description)
    return str(description or '')


def _number(text):
    value = float(text)
    return int(value) if value == int(value) and '.' not in text else value


def bounds_in(description):
    """(low, high) stated in an option's description ("Bounds: from 1 to 3600." or "Bounds: at
    least 0."; high is None for no upper bound), or None when it states none."""
    match = _BOUNDS_RE.search(_text(description))
    if not match:
        return None
    if match.group(3) is not None:
        return (_number(match.group(3)), None)
    return (_number(match.group(1)), _number(match.group(2)))


def role_specs(root=COLLECTION_ROOT):
    """{role: {option: spec}} over every entry point of every role's argument_specs.yml."""
    key = ('roles', root)
    if key not in _CACHE:
        specs = {}
        for path in sorted(glob.glob(os.path.join(root, 'roles', '*', 'meta', 'argument_specs.yml'))):
            role = os.path.basename(os.path.dirname(os.path.dirname(path)))
            options = specs.setdefault(role, {})
            for entry in (_load(path).get('argument_specs') or {}).values():
                for name, spec in ((entry or {}).get('options') or {}).items():
                    options.setdefault(name, spec or {})
        _CACHE[key] = specs
    return _CACHE[key]


def runbook_specs(root=COLLECTION_ROOT):
    """{runbook: {option: spec}} from playbooks/vars/options.yml."""
    key = ('runbooks', root)
    if key not in _CACHE:
        path = os.path.join(root, 'playbooks', 'vars', 'options.yml')
        data = _load(path).get('pgha_runbook_options') or {} if os.path.exists(path) else {}
        _CACHE[key] = dict((name, (spec or {}).get('options') or {}) for name, spec in data.items())
    return _CACHE[key]


def known_variables(root=COLLECTION_ROOT):
    """Every variable a role or a runbook of the collection reads."""
    key = ('known', root)
    if key not in _CACHE:
        names = set(EXTRA_KNOWN)
        for options in list(role_specs(root).values()) + list(runbook_specs(root).values()):
            names.update(options)
        _CACHE[key] = frozenset(names)
    return _CACHE[key]


def bounded_variables(root=COLLECTION_ROOT):
    """{variable: (low, high)} for every role option whose description states bounds, and every
    runbook option with survey min/max (numeric options only)."""
    key = ('bounds', root)
    if key not in _CACHE:
        bounds = {}
        for options in role_specs(root).values():
            for name, spec in options.items():
                found = bounds_in(spec.get('description'))
                if found:
                    bounds[name] = found
        for options in runbook_specs(root).values():
            for name, spec in options.items():
                survey = spec.get('survey') or {}
                if spec.get('type') in ('int', 'float') and ('min' in survey or 'max' in survey):
                    bounds.setdefault(name, (survey.get('min'), survey.get('max')))
        _CACHE[key] = bounds
    return _CACHE[key]


def _as_number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        text = str(value).strip()
        return float(text) if any(c in text for c in '.eE') else int(text)
    except ValueError:
        return None


def describe_bounds(low, high):
    if high is None:
        return '%s or more' % low
    if low is None:
        return '%s or less' % high
    return 'from %s to %s' % (low, high)


def bounds_errors(values, bounds):
    """[message] for every value of values ({variable: (value, [hosts])}) outside its bounds
    (bounds: {variable: (low, high)}); a value that is no number is named too."""
    errors = []
    for name in sorted(values):
        if name not in bounds:
            continue
        value, hosts = values[name]
        low, high = bounds[name]
        number = _as_number(value)
        where = ' (on %s)' % ', '.join(hosts) if hosts else ''
        if number is None:
            errors.append('%s=%r%s is not a number. Fix: a number %s.' % (name, value, where, describe_bounds(low, high)))
        elif (low is not None and number < low) or (high is not None and number > high):
            errors.append('%s=%s%s is out of bounds: it must be %s. Fix: set it within them, or remove it (the '
                          'default is). ' % (name, value, where, describe_bounds(low, high)))
    return [e.strip() for e in errors]


def unknown_variables(names, known, prefixes=ROLE_PREFIXES):
    """{name: closest known name or None} for every name with one of the prefixes that is not known."""
    found = {}
    for name in sorted(set(names)):
        if not isinstance(name, str) or not name.startswith(tuple(prefixes)) or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        found[name] = close[0] if close else None
    return found


def unknown_messages(unknown):
    """One sentence per unknown name, naming the closest known variable."""
    out = []
    for name in sorted(unknown):
        close = unknown[name]
        out.append('%s is not a variable of any role or runbook of pgha.cluster%s.'
                   % (name, ' (did you mean %s?)' % close if close else ''))
    return out

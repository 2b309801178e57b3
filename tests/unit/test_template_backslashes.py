"""In Ansible's templates a backslash inside a Jinja string literal is not an escape: '\\\\Z' stays two
backslashes and a Z, so a regex meant as \\Z matches a literal backslash instead, and replace('\\\\', ...)
looks for two backslashes (a preflight refused every stanza name, and .pgpass escaping did nothing, that
way). This walks every task, variable and default as YAML loads it (a double-quoted YAML string has
already turned its \\\\ into one) and refuses a doubled backslash inside a string literal of a {{ }}
expression: write the regex with one backslash, or use a filter (pgha.cluster.pgpass_escape)."""

import glob
import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FILES = sorted(p for pattern in ('roles/*/tasks/*.yml', 'roles/*/vars/*.yml', 'roles/*/defaults/*.yml',
                                 'roles/*/handlers/*.yml', 'playbooks/*.yml')
               for p in glob.glob(os.path.join(ROOT, pattern)))
EXPRESSION = re.compile(r'\{\{(.*?)\}\}', re.S)
LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", re.S)


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def doubled_backslashes(text):
    """The string literals of text's {{ }} expressions that hold a doubled backslash."""
    return [a or b for expr in EXPRESSION.findall(text) for a, b in LITERAL.findall(expr) if '\\\\' in (a or b)]


def test_the_check_finds_the_trap():
    assert doubled_backslashes("{{ x is match('[a-z]+\\\\Z') }}") == ['[a-z]+\\\\Z']
    assert doubled_backslashes("{{ x is match('[a-z]+\\Z') }} {{ y | replace(':', '-') }}") == []


@pytest.mark.parametrize('path', FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_doubled_backslash_in_a_template_literal(path):
    with open(path, encoding='utf-8') as fh:
        data = yaml.safe_load(fh)
    found = [lit for s in _strings(data) for lit in doubled_backslashes(s)]
    assert not found, '%s: %s' % (os.path.relpath(path, ROOT), found)

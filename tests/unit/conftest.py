"""Make the collection importable as ansible_collections.pgha.cluster for the
unit tests, and give them the fakes they share (a scripted DB cursor, module
args, exit_json/fail_json that raise)."""

import contextlib
import json
import os
import re
import sys
import tempfile

import pytest

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), '..', '..'))


def _collections_root():
    """A directory D such that D/ansible_collections/pgha/cluster is this checkout."""
    # Already laid out as .../ansible_collections/pgha/cluster (e.g. the sanity copy)?
    parent = os.path.dirname(os.path.dirname(ROOT))
    if os.path.basename(parent) == 'ansible_collections' and ROOT.endswith(os.path.join('pgha', 'cluster')):
        return os.path.dirname(parent)
    # The link tools/bootstrap makes.
    work = os.path.join(ROOT, '.work', 'collections')
    link = os.path.join(work, 'ansible_collections', 'pgha', 'cluster')
    if os.path.isdir(link) and os.path.realpath(link) == ROOT:
        return work
    # A fresh clone without .work: make a private link.
    tmp = tempfile.mkdtemp(prefix='pgha-unit-')
    os.makedirs(os.path.join(tmp, 'ansible_collections', 'pgha'))
    os.symlink(ROOT, os.path.join(tmp, 'ansible_collections', 'pgha', 'cluster'))
    return tmp


sys.path.insert(0, _collections_root())

# The start guard and the VIP state import the collection's rules as the module the roles install beside
# them on the hosts (/usr/local/lib/pgha/pgha_primary.py): the same file, plugins/plugin_utils/primary.py.
from ansible_collections.pgha.cluster.plugins.plugin_utils import primary as _primary  # noqa: E402
sys.modules.setdefault('pgha_primary', _primary)


# --------------------------------------------------------------------------
# Module harness
# --------------------------------------------------------------------------

class AnsibleExitJson(Exception):
    @property
    def result(self):
        return self.args[0]


class AnsibleFailJson(Exception):
    @property
    def result(self):
        return self.args[0]


@pytest.fixture
def module_harness(monkeypatch):
    """exit_json/fail_json raise AnsibleExitJson/AnsibleFailJson carrying the result."""
    from ansible.module_utils import basic

    def exit_json(self, **kwargs):
        kwargs.setdefault('changed', False)
        raise AnsibleExitJson(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs['failed'] = True
        kwargs['msg'] = msg
        raise AnsibleFailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    return AnsibleExitJson, AnsibleFailJson


def module_args(args):
    """Context manager exposing args to the AnsibleModule created inside it."""
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:     # ansible-core before 2.19 (the oldest meta/runtime.yml declares is 2.16)
        return _module_args_before_2_19(args)
    return patch_module_args(args)


@contextlib.contextmanager
def _module_args_before_2_19(args):
    """What patch_module_args does, the way ansible-core 2.16 to 2.18 read a module's arguments."""
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes
    saved = basic._ANSIBLE_ARGS
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
    try:
        yield
    finally:
        basic._ANSIBLE_ARGS = saved


@pytest.fixture
def set_module_args():
    return module_args


# --------------------------------------------------------------------------
# A scripted database
# --------------------------------------------------------------------------

class FakeCursor(object):
    """Answers execute() from a script: a list of (pattern, answer).

    The first pattern (a regular expression searched in the SQL) that matches
    decides. An answer is a list of row dicts, a callable (sql, args) -> rows,
    or an exception instance to raise. Every statement is kept in executed.
    """

    def __init__(self, script):
        self.script = list(script)
        self.executed = []
        self._rows = []

    def execute(self, sql, args=None):
        self.executed.append((' '.join(sql.split()), args))
        for pattern, answer in self.script:
            if re.search(pattern, sql):
                break
        else:
            raise AssertionError('unexpected SQL: %s' % ' '.join(sql.split()))
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            answer = answer(sql, args)
        self._rows = [dict(r) for r in answer]

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self):
        return list(self._rows)

    def ran(self, pattern):
        return [s for s, a in self.executed if re.search(pattern, s)]


class FakeConn(object):
    def __init__(self, server_version=150020):
        self.server_version = server_version
        self.closed = False

    def close(self):
        self.closed = True


class FakeClock(object):
    """Stands in for the time module: sleep() advances monotonic()."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_db():
    return FakeCursor, FakeConn


@pytest.fixture
def fake_clock():
    return FakeClock()

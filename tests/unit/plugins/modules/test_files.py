"""pgha.cluster.files: several files put in place in one call, on a real temporary directory: created with
their parents, left alone when they match, rewritten when the content differs, chmod'ed when only the mode
differs, nothing written in check mode, a diff per changed content, a relative path refused."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import grp
import os
import pwd
import stat

import pytest

from ansible_collections.pgha.cluster.plugins.modules import files

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture
def run_module(module_harness, set_module_args):
    exit_exc, fail_exc = module_harness

    def run(specs, check=False, diff=False):
        args = {'files': specs, '_ansible_check_mode': check, '_ansible_diff': diff}
        with set_module_args(args):
            with pytest.raises((exit_exc, fail_exc)) as caught:
                files.main()
        return caught.value.result
    return run


def spec(path, content, mode='0644'):
    return {'dest': str(path), 'content': content, 'owner': ME, 'group': MY_GROUP, 'mode': mode}


def mode_of(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_creates_the_files_and_their_parents_then_changes_nothing(run_module, tmp_path):
    unit = tmp_path / 'system' / 'x.service.d' / 'guard.conf'
    script = tmp_path / 'sbin' / 'guard'
    wanted = [spec(unit, '[Service]\nExecStartPre=/bin/true\n'), spec(script, '#!/bin/sh\n', '0755')]
    result = run_module(wanted)
    assert result['changed'] and result['changed_files'] == [str(unit), str(script)]
    assert unit.read_text() == '[Service]\nExecStartPre=/bin/true\n' and script.read_text() == '#!/bin/sh\n'
    assert mode_of(unit) == 0o644 and mode_of(script) == 0o755
    assert mode_of(unit.parent) == 0o755
    # no temporary file left behind
    assert sorted(os.listdir(str(unit.parent))) == ['guard.conf']
    again = run_module(wanted)
    assert not again['changed'] and again['changed_files'] == []


def test_only_what_differs_is_rewritten(run_module, tmp_path):
    one, two, three = tmp_path / 'one', tmp_path / 'two', tmp_path / 'three'
    run_module([spec(one, 'a\n'), spec(two, 'b\n'), spec(three, 'c\n')])
    before = os.stat(str(one)).st_ino
    two.chmod(0o600)
    result = run_module([spec(one, 'a\n'), spec(two, 'b\n'), spec(three, 'C\n')])
    assert result['changed_files'] == [str(two), str(three)]
    assert os.stat(str(one)).st_ino == before
    assert mode_of(two) == 0o644 and two.read_text() == 'b\n'
    assert three.read_text() == 'C\n'


def test_check_mode_reports_and_writes_nothing(run_module, tmp_path):
    old, new = tmp_path / 'old', tmp_path / 'dir' / 'new'
    run_module([spec(old, 'before\n')])
    old.chmod(0o600)
    result = run_module([spec(old, 'after\n'), spec(new, 'x\n')], check=True, diff=True)
    assert result['changed'] and result['changed_files'] == [str(old), str(new)]
    assert old.read_text() == 'before\n' and mode_of(old) == 0o600
    assert not new.parent.exists()
    assert result['diff'] == [
        {'before_header': str(old), 'after_header': str(old), 'before': 'before\n', 'after': 'after\n'},
        {'before_header': str(new), 'after_header': str(new), 'before': '', 'after': 'x\n'}]


def test_mode_only_change_in_check_mode_is_reported(run_module, tmp_path):
    path = tmp_path / 'f'
    run_module([spec(path, 'x\n')])
    path.chmod(0o600)
    result = run_module([spec(path, 'x\n')], check=True, diff=True)
    assert result['changed_files'] == [str(path)] and result['diff'] == []
    assert mode_of(path) == 0o600


def test_a_relative_path_or_a_directory_is_refused(run_module, tmp_path):
    result = run_module([spec('etc/x.conf', 'x\n')])
    assert result['failed'] and 'absolute' in result['msg'] and 'etc/x.conf' in result['msg']
    result = run_module([spec(tmp_path, 'x\n')])
    assert result['failed'] and 'is a directory' in result['msg']

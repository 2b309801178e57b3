"""pgha-vip-state (roles/keepalived/files/pgha_vip_state.py): the verdicts keepalived tracks, the hold of a
stopped primary, what is left behind when the daemon stops, and the files it writes."""

import importlib.util
import json
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
SPEC = importlib.util.spec_from_file_location(
    'pgha_vip_state', os.path.join(ROOT, 'roles', 'keepalived', 'files', 'pgha_vip_state.py'))
vs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(vs)

PRIMARY = dict(in_recovery=False, streaming=False, replay_lag=None)
STANDBY = dict(in_recovery=True, streaming=True, replay_lag=0)
MAX = 16 * 1024 * 1024


def test_a_running_primary_is_the_only_one_out_of_fault():
    values, was = vs.decide(PRIMARY, False, False, MAX)
    assert values == dict(writer=0, up=0, reader=0, primary=1) and was is True
    values, was = vs.decide(STANDBY, False, True, MAX)
    assert values['writer'] == vs.FAULT and values['primary'] == 0 and was is False


def test_a_fenced_node_is_fault_everywhere_even_as_a_running_primary():
    values, was = vs.decide(PRIMARY, True, True, MAX)
    assert values == dict(writer=vs.FAULT, up=1, reader=0, primary=0) and was is False


def test_a_stopped_primary_holds_the_vip_at_a_lower_priority_until_it_answers_as_something_else():
    was = vs.decide(PRIMARY, False, False, MAX)[1]
    values, was = vs.decide(None, False, was, MAX)       # stopped: hold
    assert values['writer'] == vs.HOLD and values['up'] == 1 and was is True
    values, was = vs.decide(None, False, was, MAX)       # still silent: still hold
    assert values['writer'] == vs.HOLD
    values, was = vs.decide(None, True, was, MAX)        # fenced by promote.yml: FAULT at once
    assert values['writer'] == vs.FAULT and was is False
    values = vs.decide(None, False, was, MAX)[0]      # and no hold afterwards
    assert values['writer'] == vs.FAULT


def test_a_silent_node_that_was_no_primary_is_fault():
    values = vs.decide(None, False, False, MAX)[0]
    assert values == dict(writer=vs.FAULT, up=1, reader=0, primary=0)


def test_keepalived_priorities_of_the_values():
    # track_file pg_writer weight -1 on priority 100: 0 -> 100, hold -> 50, FAULT below -253
    assert 100 - vs.HOLD == 50 and -1 * vs.FAULT < -253


@pytest.mark.parametrize('answer,healthy', [
    (STANDBY, 1),
    (dict(STANDBY, replay_lag=MAX), 0),            # too far behind
    (dict(STANDBY, streaming=False), 0),           # not streaming
    (dict(STANDBY, replay_lag=None), 0),           # nothing received yet
])
def test_reader_health(answer, healthy):
    values = vs.decide(answer, False, False, MAX)[0]
    assert values['reader'] == healthy and values['up'] == 0 and values['writer'] == vs.FAULT


def test_stopped_values_keep_a_holder_holding_and_fault_the_rest():
    assert vs.stopped_values(0) == dict(writer=vs.HOLD, up=1, reader=0, primary=0)
    assert vs.stopped_values(vs.HOLD)['writer'] == vs.HOLD
    assert vs.stopped_values(vs.FAULT)['writer'] == vs.FAULT
    assert vs.stopped_values(None)['writer'] == vs.FAULT


def test_publish_writes_only_what_changed_and_replaces_foreign_files(tmp_path):
    d = str(tmp_path)
    # keepalived's init_file left a file the daemon cannot read (root, 0600): it is replaced
    (tmp_path / 'writer').write_text('254\n')
    os.chmod(d + '/writer', 0)
    values = dict(writer=0, up=0, reader=0, primary=1)
    written = vs.publish(d, values)
    assert sorted(written) == ['primary', 'reader', 'up', 'writer']
    assert [vs.read_value(os.path.join(d, n)) for n in vs.FILES] == [0, 0, 0, 1]
    assert vs.publish(d, values) == []
    assert vs.publish(d, dict(values, writer=vs.HOLD)) == ['writer']
    assert (tmp_path / 'writer').read_text() == '50\n'
    assert oct(os.stat(d + '/writer').st_mode & 0o777) == '0o644'
    assert not [f for f in os.listdir(d) if f.endswith('.tmp')]


def test_once_prints_a_verdict_without_writing(tmp_path, monkeypatch, capsys):
    cfg = dict(socket_dir='/nonexistent', port=5432, user='pgha_check', fence_marker=str(tmp_path / 'fenced'),
               state_dir=str(tmp_path / 'state'), interval=0.1, reader_max_lag_bytes=MAX)
    (tmp_path / 'cfg.json').write_text(json.dumps(cfg))
    monkeypatch.setattr(vs, 'CONFIG', str(tmp_path / 'cfg.json'))
    monkeypatch.setattr(vs.Server, 'ask', lambda self: dict(STANDBY))
    monkeypatch.setattr(vs.sys, 'argv', ['pgha-vip-state', '--once'])
    assert vs.main() == 0
    out = json.loads(capsys.readouterr().out)
    assert out['writer'] == vs.FAULT and out['reader'] == 1 and out['state'].startswith('standby (streaming')
    assert not (tmp_path / 'state').exists()

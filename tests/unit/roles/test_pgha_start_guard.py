"""pgha-start-guard (roles/postgresql/files/pgha_start_guard.py): the split-brain decisions (newer peer,
fence marker, standby, alone), the crash record of ExecStopPost and the crash-loop refusal."""

import importlib.util
import json
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
SPEC = importlib.util.spec_from_file_location(
    'pgha_start_guard', os.path.join(ROOT, 'roles', 'postgresql', 'files', 'pgha_start_guard.py'))
guard = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(guard)

PEERS = [{'name': 'pg2', 'host': '10.0.0.12', 'port': 5432}, {'name': 'pg3', 'host': '10.0.0.13', 'port': 5432}]


@pytest.fixture
def cfg(tmp_path):
    data = tmp_path / 'main'
    (data / 'global').mkdir(parents=True)
    (data / 'global' / 'pg_control').write_text('x')
    conf = {'name': 'pg1', 'service': 'postgresql@17-main', 'data_dir': str(data), 'bin_dir': '/usr/lib/postgresql/17/bin',
            'socket_dir': '/run/postgresql', 'port': 5432, 'fence_marker': str(tmp_path / '.pgha-fenced-main'),
            'user': 'replicator', 'passfile': '/var/lib/postgresql/.pgpass', 'wait_seconds': 0, 'when_alone': 'start',
            'watch_interval': 2, 'peers': PEERS, 'home': '/var/lib/postgresql', 'start_guard': True,
            'crashloop_marker': str(tmp_path / '.pgha-crashloop-main'),
            'crash_record': str(tmp_path / 'run' / 'crashes-17-main.json'),
            'restart_attempts': 3, 'restart_window': 300}
    path = tmp_path / 'guard.json'
    path.write_text(json.dumps(conf))
    guard.CONFIG = str(path)
    return conf


def run(argv=(), environ=None):
    return guard.main(list(argv), environ or {})


def test_the_rules_are_the_collections():
    """The guard decides with plugins/plugin_utils/primary.py (installed beside it as pgha_primary)."""
    assert guard.pgha_primary.newer_peer is not None and not hasattr(guard, 'newer_peer')


def test_a_primary_starts_when_its_peers_are_on_its_timeline(cfg, monkeypatch):
    monkeypatch.setattr(guard, 'controldata', lambda c: ('7311', 1))
    monkeypatch.setattr(guard, 'ask_peers', lambda c: [(PEERS[0], ('7311', 1)), (PEERS[1], 'down')])
    assert run() == 0
    assert not os.path.exists(cfg['fence_marker'])


def test_a_primary_replaced_by_a_peer_is_fenced_and_refused(cfg, monkeypatch, capsys):
    monkeypatch.setattr(guard, 'controldata', lambda c: ('7311', 1))
    monkeypatch.setattr(guard, 'ask_peers', lambda c: [(PEERS[0], ('7311', 2))])
    assert run() == 1
    assert 'peer pg2 is on timeline 2' in json.load(open(cfg['fence_marker']))['reason']
    assert 'REFUSING to start as a primary' in capsys.readouterr().out
    # and the next start refuses on the marker alone, before asking anyone
    monkeypatch.setattr(guard, 'ask_peers', lambda c: pytest.fail('asked the peers'))
    assert run() == 1


def test_a_standby_always_starts(cfg, monkeypatch):
    open(os.path.join(cfg['data_dir'], 'standby.signal'), 'w').close()
    monkeypatch.setattr(guard, 'ask_peers', lambda c: pytest.fail('asked the peers'))
    assert run() == 0


def test_alone(cfg, monkeypatch):
    monkeypatch.setattr(guard, 'controldata', lambda c: ('7311', 1))
    monkeypatch.setattr(guard, 'ask_peers', lambda c: [(PEERS[0], None), (PEERS[1], None)])
    assert run() == 0
    cfg['when_alone'] = 'refuse'
    with open(guard.CONFIG, 'w') as f:
        json.dump(cfg, f)
    assert run() == 1


def test_without_the_start_guard_only_the_crash_loop_counts(cfg, monkeypatch):
    cfg['start_guard'] = False
    with open(guard.CONFIG, 'w') as f:
        json.dump(cfg, f)
    open(cfg['fence_marker'], 'w').close()
    monkeypatch.setattr(guard, 'ask_peers', lambda c: pytest.fail('asked the peers'))
    assert run() == 0
    open(cfg['crashloop_marker'], 'w').close()
    assert run() == 1


def crash(at):
    return {'SERVICE_RESULT': 'signal', 'EXIT_CODE': 'killed', 'EXIT_STATUS': 'KILL'}


def test_abnormal_ends_are_counted_and_the_loop_leaves_a_marker(cfg, capsys):
    results = [guard.record_stop(cfg, crash(t), 1000.0 + t) for t in range(4)]
    assert results == ['crash', 'crash', 'crash', 'crash loop']
    marker = json.load(open(cfg['crashloop_marker']))
    assert marker['crashes'] == 4 and marker['window'] == 300 and marker['last'] == 'killed KILL'
    out = capsys.readouterr().out
    assert 'systemd starts it again (1 of 3 within 300s)' in out
    assert 'CRASH LOOP: PostgreSQL ended abnormally 4 times within 300s' in out
    # every start is refused now, naming the marker and the journal
    assert run() == 1
    assert 'REFUSING to start: PostgreSQL is in a crash loop (4 abnormal ends within 300s' in capsys.readouterr().out
    # once a person removes the marker the count starts again: one crash is one crash
    os.remove(cfg['crashloop_marker'])
    assert not os.path.exists(cfg['crash_record'])
    assert guard.record_stop(cfg, crash(9), 1009.0) == 'crash'


def test_old_crashes_leave_the_window(cfg):
    for t in (0, 1, 2):
        assert guard.record_stop(cfg, crash(t), 1000.0 + t) == 'crash'
    # 301 s after the last one the first three are forgotten: this is crash 1 of a new window
    assert guard.record_stop(cfg, crash(0), 1303.0) == "crash"
    assert len(json.load(open(cfg['crash_record']))) == 1
    assert not os.path.exists(cfg['crashloop_marker'])


def test_a_clean_stop_clears_the_record_and_other_ends_keep_it(cfg):
    guard.record_stop(cfg, crash(0), 1000.0)
    assert guard.record_stop(cfg, {'SERVICE_RESULT': 'exit-code', 'EXIT_CODE': 'exited', 'EXIT_STATUS': '1'},
                             1001.0) == 'kept'
    assert len(json.load(open(cfg['crash_record']))) == 1
    assert guard.record_stop(cfg, {'SERVICE_RESULT': 'success'}, 1002.0) == 'cleared'
    assert not os.path.exists(cfg['crash_record'])
    assert guard.record_stop(cfg, {'SERVICE_RESULT': 'core-dump'}, 1003.0) == 'crash'


def test_the_stopped_mode_reads_systemds_environment(cfg):
    assert run(['--stopped'], {'SERVICE_RESULT': 'signal', 'EXIT_CODE': 'killed', 'EXIT_STATUS': 'KILL'}) == 0
    assert json.load(open(cfg['crash_record']))[0]['status'] == 'KILL'

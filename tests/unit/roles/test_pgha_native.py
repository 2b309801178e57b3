"""pgha-native (roles/backup/files/pgha_native.py): labels, parent choice, chains, retention, backup_label
and manifest parsing, WAL names, the info JSON, and the commands that need no PostgreSQL."""

import fcntl
import hashlib
import importlib.util
import json
import os
import struct

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
SPEC = importlib.util.spec_from_file_location(
    'pgha_native', os.path.join(ROOT, 'roles', 'backup', 'files', 'pgha_native.py'))
nat = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(nat)

F1, I1, D1, I2 = '20261201-010000F', '20261201-020000I', '20261201-030000D', '20261201-040000I'
F2, I3 = '20261202-010000F', '20261202-020000I'

LABEL_FILE = """START WAL LOCATION: 0/6000028 (file 000000010000000000000006)
CHECKPOINT LOCATION: 0/6000080
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-12-03 12:05:39 UTC
LABEL: pgha-20261203-120539I
START TIMELINE: 1
INCREMENTAL FROM LSN: 0/5000028
INCREMENTAL FROM TLI: 1
"""


def meta(label, prior=None, chain=None, **extra):
    btype = {'F': 'full', 'D': 'diff', 'I': 'incr'}[label[-1]]
    out = dict(label=label, type=btype, prior=prior, reference=chain or [label], repo_size=10, size=100,
               timeline=1, timestamp={'start': 1, 'stop': 2}, lsn={'start': '0/1', 'stop': '0/2'},
               archive={'start': '000000010000000000000001', 'stop': '000000010000000000000001'})
    out.update(extra)
    return out


def repo_of(*metas):
    return {m['label']: m for m in metas}


def sample():
    """F1 <- I1 <- I2, F1 <- D1, then F2 <- I3."""
    return repo_of(meta(F1), meta(I1, F1, [F1, I1]), meta(D1, F1, [F1, D1]), meta(I2, D1, [F1, D1, I2]),
                   meta(F2), meta(I3, F2, [F2, I3]))


# --- labels ---------------------------------------------------------------------------------------

def test_a_label_is_the_utc_start_time_and_the_type_letter_and_parses_back():
    epoch = 1796299816            # 2026-12-03 12:10:16 UTC
    assert nat.make_label(epoch, 'full') == '20261203-121016F'
    assert nat.make_label(epoch, 'diff') == '20261203-121016D'
    assert nat.make_label(epoch, 'incr') == '20261203-121016I'
    assert nat.parse_label('20261203-121016I') == (epoch, 'incr')


@pytest.mark.parametrize('name', ['20261203-121016F.partial', '20261203-121016X', '20261399-121016F',
                                  'latest', '', None, '20261203121016F'])
def test_anything_else_is_not_a_label(name):
    assert nat.parse_label(name) is None


def test_a_new_label_sorts_after_every_existing_one_even_within_the_same_second():
    epoch = nat.parse_label('20261203-121249I')[0]
    assert nat.next_label(epoch, 'full', ['20261203-121249I']) == '20261203-121250F'
    assert nat.next_label(epoch, 'full', ['20261203-121250I.partial']) == '20261203-121251F'
    assert nat.next_label(epoch + 5, 'incr', ['20261203-121249I', 'junk']) == '20261203-121254I'
    assert nat.next_label(epoch, 'full', []) == '20261203-121249F'


# --- parent and chains ----------------------------------------------------------------------------

def test_without_a_full_every_type_becomes_a_full():
    for btype in ('full', 'diff', 'incr'):
        assert nat.choose_parent({}, btype) == (None, 'full')
    # an incremental whose full is gone does not count as a full either
    assert nat.choose_parent(repo_of(meta(I1, F1, [F1, I1])), 'incr') == (None, 'full')


def test_incr_builds_on_the_newest_backup_diff_on_the_newest_full_full_on_nothing():
    backups = repo_of(meta(F1), meta(I1, F1, [F1, I1]), meta(D1, F1, [F1, D1]))
    assert nat.choose_parent(backups, 'incr') == (D1, 'incr')
    assert nat.choose_parent(backups, 'diff') == (F1, 'diff')
    assert nat.choose_parent(backups, 'full') == (None, 'full')
    backups[F2] = meta(F2)
    assert nat.choose_parent(backups, 'diff') == (F2, 'diff')
    assert nat.choose_parent(backups, 'incr') == (F2, 'incr')


def test_a_backup_with_a_broken_chain_is_never_a_parent():
    backups = repo_of(meta(F1), meta(D1, F1, [F1, D1]), meta(I2, I1, [F1, I1, I2]))   # I1 is gone
    assert nat.choose_parent(backups, 'incr') == (D1, 'incr')


def test_the_reference_chain_runs_from_the_full_to_the_new_backup():
    assert nat.reference_chain(None, F1) == [F1]
    assert nat.reference_chain(meta(F1), I1) == [F1, I1]
    assert nat.reference_chain(meta(I1, F1, [F1, I1]), I2) == [F1, I1, I2]


def test_chain_resolution_names_the_missing_members_and_latest_is_the_newest_usable_backup():
    backups = sample()
    assert nat.resolve_chain(I2, backups) == ([F1, D1, I2], [])
    assert nat.resolve_chain('latest', backups) == ([F2, I3], [])
    del backups[D1]
    assert nat.resolve_chain(I2, backups) == ([F1, D1, I2], [D1])
    del backups[F2]                               # I3 broken too: latest falls back to I1
    assert nat.resolve_chain('latest', backups)[0] == [F1, I1]
    with pytest.raises(KeyError):
        nat.resolve_chain('20200101-000000F', backups)
    with pytest.raises(KeyError):
        nat.resolve_chain('latest', {})


# --- retention ------------------------------------------------------------------------------------

def test_retention_keeps_whole_chains_of_the_newest_fulls_and_deletes_children_first():
    backups = sample()
    assert nat.retention(backups, 2) == []
    assert nat.retention(backups, 1) == [I2, D1, I1, F1]          # newest first: no orphan on a crash
    assert nat.retention(backups, 0) == [I2, D1, I1, F1]          # never everything


def test_retention_removes_backups_whose_full_is_gone_and_keeps_a_kept_chain_with_a_hole():
    backups = repo_of(meta(I1, F1, [F1, I1]), meta(F2), meta(I3, '20261202-015000I', [F2, '20261202-015000I', I3]))
    assert nat.retention(backups, 1) == [I1]


def test_retention_refuses_to_delete_a_backup_that_a_kept_one_references():
    backups = repo_of(meta(F1), meta(I1, F1, [F1, I1]), meta(F2), meta(I3, I1, [F2, I1, I3]))
    with pytest.raises(AssertionError):
        nat.retention(backups, 1)


# --- LSNs and WAL names ---------------------------------------------------------------------------

def test_lsn_text_round_trips():
    assert nat.parse_lsn('0/5000028') == 0x5000028
    assert nat.parse_lsn('1A/FF000000') == (0x1A << 32) | 0xFF000000
    assert nat.format_lsn(0x5000028) == '0/5000028'
    for bad in ('', '0x5', '1/2/3', 'G/0'):
        with pytest.raises(ValueError):
            nat.parse_lsn(bad)


@pytest.mark.parametrize('timeline,lsn,previous,name', [
    (1, '0/5000028', False, '000000010000000000000005'),
    (1, '0/6000120', True, '000000010000000000000006'),
    (1, '0/6000000', True, '000000010000000000000005'),      # a stop exactly on a boundary
    (1, '0/6000000', False, '000000010000000000000006'),
    (2, '1/2A000000', False, '00000002000000010000002A'),
    (0x1F, 'FF/FFFFFFFF', False, '0000001F000000FF000000FF'),
    (3, 0x100000000, True, '0000000300000000000000FF'),
])
def test_wal_file_names_follow_postgresql(timeline, lsn, previous, name):
    assert nat.wal_file_name(timeline, lsn, previous=previous) == name


@pytest.mark.parametrize('name', ['000000010000000000000005', '00000002.history', '0000000A00000001000000FF'])
def test_wal_get_serves_segments_and_history_files(name):
    assert nat.valid_wal_name(name)


@pytest.mark.parametrize('name', ['000000010000000000000005.partial', '../000000010000000000000005',
                                  '000000010000000000000005.00000028.backup', '00000001000000000000000a',
                                  '0000000100000000000000050', '00000002.history/x', '', None, '/etc/passwd'])
def test_wal_get_refuses_everything_else(name):
    assert not nat.valid_wal_name(name)


def test_the_wal_range_counts_only_complete_segments():
    names = ['000000010000000000000007', '00000002.history', '000000020000000000000009.partial',
             '000000010000000000000008', '000000020000000000000008', 'archive_status']
    assert nat.wal_range(names) == ('000000010000000000000007', '000000020000000000000008')
    assert nat.wal_range(['000000010000000000000007.partial']) == (None, None)


def test_the_wal_cleanup_point_never_passes_the_segment_pg_receivewal_is_writing():
    start = '00000001000000000000000F'
    assert nat.wal_cleanup_point(start, ['000000010000000000000010.partial', '00000001000000000000000E']) == start
    assert nat.wal_cleanup_point(start, []) == start
    assert nat.wal_cleanup_point(start, ['00000001000000000000000C.partial']) == '00000001000000000000000C'
    # timelines do not count, as in pg_archivecleanup: the newest segment number is the growing one
    names = ['000000010000000000000009.partial', '00000002000000000000000D.partial']
    assert nat.wal_cleanup_point(start, names) == '00000002000000000000000D'


def test_a_partial_segment_left_on_an_old_timeline_does_not_hold_back_the_cleanup():
    start = '000000020000000000000034'
    names = ['000000010000000000000031.partial', '00000002.history', '000000020000000000000031',
             '000000020000000000000034']
    assert nat.wal_cleanup_point(start, names) == start
    assert nat.wal_cleanup_point(start, names + ['000000020000000000000030.partial']) == '000000020000000000000030'


# --- backup_label and manifest --------------------------------------------------------------------

def test_backup_label_gives_the_start_lsn_time_and_timeline():
    parsed = nat.parse_backup_label(LABEL_FILE)
    assert parsed == dict(start_lsn='0/6000028', start_segment='000000010000000000000006',
                          start_time=nat.parse_label('20261203-120539F')[0], timeline=1,
                          incremental_from='0/5000028')
    with pytest.raises(ValueError):
        nat.parse_backup_label('LABEL: x\n')


def test_start_times_in_other_zones_are_converted():
    utc = nat.parse_label('20261203-120539F')[0]
    assert nat.parse_pg_time('2026-12-03 12:05:39 GMT') == utc
    assert nat.parse_pg_time('2026-12-03 13:05:39 +01') == utc
    assert nat.parse_pg_time('2026-12-03 06:35:39 -0530') == utc
    # an abbreviation (log_timezone = Europe/Berlin): the offset comes from the local clock
    assert nat.parse_pg_time('2026-12-03 13:05:39 CET', near=utc + 2) == utc
    assert nat.parse_pg_time('2026-12-03 13:05:39 CET') is None
    assert nat.parse_pg_time('yesterday') is None


def test_the_stop_lsn_is_the_end_of_the_last_wal_range():
    manifest = {'WAL-Ranges': [{'Timeline': 2, 'Start-LSN': '0/31000000', 'End-LSN': '0/32000120'},
                               {'Timeline': 1, 'Start-LSN': '0/30000028', 'End-LSN': '0/31000000'}]}
    assert nat.manifest_wal_end(manifest) == (2, '0/32000120')
    with pytest.raises(ValueError):
        nat.manifest_wal_end({'WAL-Ranges': []})


def incremental(truncate, blocks):
    return struct.pack('=III', nat.INCREMENTAL_MAGIC, len(blocks), truncate) + struct.pack(
        '=%dI' % len(blocks), *blocks)


def test_an_incremental_file_rebuilds_to_its_truncation_length_or_its_last_block():
    assert nat.incremental_block_length(incremental(7, [])) == 7
    assert nat.incremental_block_length(incremental(5, [3, 12])) == 13
    assert nat.incremental_block_length(incremental(20, [3, 12])) == 20
    assert nat.incremental_block_length(b'\0' * 12) is None
    assert nat.incremental_block_length(incremental(5, [3, 12])[:14]) is None


def test_the_restored_size_counts_rebuilt_files_and_leaves_out_pg_wal():
    manifest = {'Files': [{'Path': 'PG_VERSION', 'Size': 3},
                          {'Path': 'base/5/INCREMENTAL.16384', 'Size': 8204},
                          {'Path': 'pg_wal/000000010000000000000006', 'Size': 16777216}]}
    headers = {'base/5/INCREMENTAL.16384': incremental(10, [2])}
    assert nat.restored_size(manifest, headers.get) == 3 + 10 * nat.BLCKSZ
    assert nat.restored_size(manifest) == 3 + 8204


def test_the_metadata_of_a_backup():
    info = nat.parse_backup_label(LABEL_FILE)
    parent = meta(F1)
    got = nat.make_metadata(I1, 'incr', parent, info, (1, '0/7000000'), 1796299600.7, 1234, 99)
    assert got == {'label': I1, 'type': 'incr', 'prior': F1, 'reference': [F1, I1],
                   'timestamp': {'start': info['start_time'], 'stop': 1796299600},
                   'lsn': {'start': '0/6000028', 'stop': '0/7000000'}, 'timeline': 1,
                   'archive': {'start': '000000010000000000000006', 'stop': '000000010000000000000006'},
                   'size': 1234, 'repo_size': 99}
    assert nat.make_metadata(F1, 'full', None, info, (1, '0/6000120'), 1, 1, 1)['reference'] == [F1]


def manifest_text(paths):
    lines = ['{ "PostgreSQL-Backup-Manifest-Version": 2,', '"System-Identifier": 1,', '"Files": [']
    lines += ['{ "Path": %s, "Size": 1 },' % json.dumps(p) for p in paths]
    lines[-1] = lines[-1][:-1]
    lines += ['],', '"WAL-Ranges": [', '{ "Timeline": 1, "Start-LSN": "0/1", "End-LSN": "0/2" }', '],']
    body = ('\n'.join(lines) + '\n').encode()
    return body + b'"Manifest-Checksum": "' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'


def checksum_ok(data):
    cut = data.rfind(b'"Manifest-Checksum"')
    return json.loads(data)['Manifest-Checksum'] == hashlib.sha256(data[:cut]).hexdigest()


@pytest.mark.parametrize('paths', [['PG_VERSION', nat.META, 'global/1262'], ['PG_VERSION', nat.META]])
def test_the_metadata_file_leaves_the_combined_manifest_with_a_valid_checksum(paths):
    data = manifest_text(paths)
    assert checksum_ok(data)
    got = nat.manifest_without(data, nat.META)
    assert checksum_ok(got)
    assert [f['Path'] for f in json.loads(got)['Files']] == [p for p in paths if p != nat.META]
    assert nat.manifest_without(got, nat.META) is None


# --- info -----------------------------------------------------------------------------------------

def test_info_is_shaped_like_pgbackrest_info_oldest_first():
    backups = sample()
    del backups[D1]
    info = nat.shape_info('main', backups, ['000000010000000000000003', '000000010000000000000002',
                                            '000000010000000000000004.partial'])
    assert len(info) == 1 and info[0]['name'] == 'main'
    assert info[0]['status'] == {'code': 0, 'message': 'ok'}
    assert info[0]['archive'] == [{'min': '000000010000000000000002', 'max': '000000010000000000000003'}]
    rows = info[0]['backup']
    assert [b['label'] for b in rows] == [F1, I1, I2, F2, I3]
    i1 = rows[1]
    assert i1['type'] == 'incr' and i1['prior'] == F1 and i1['reference'] == [F1, I1] and i1['error'] is False
    assert i1['info'] == {'size': 100, 'delta': 10, 'repository': {'size': 20, 'delta': 10}}
    assert set(i1) >= {'timestamp', 'lsn', 'archive', 'timeline'} and 'missing' not in i1
    i2 = rows[2]
    assert i2['error'] is True and i2['missing'] == [D1]
    text = nat.info_table(info)
    assert 'missing ' + D1 in text and I3 in text


def test_an_empty_repository_has_status_2():
    info = nat.shape_info('main', {}, [])
    assert info[0]['status'] == {'code': 2, 'message': 'no valid backups'}
    assert info[0]['backup'] == [] and info[0]['archive'] == [{'min': None, 'max': None}]
    assert 'no valid backups' in nat.info_table(info)


def test_the_configuration_gets_defaults_and_is_checked():
    cfg, errors = nat.validate_config({'repo': '/r', 'bin_dir': '/b', 'conninfo': 'host=x'})
    assert errors == [] and cfg['retention_full'] == 2 and cfg['stanza'] == 'main' and cfg['timeout'] == 120
    cfg, errors = nat.validate_config({'repo': 'rel', 'conninfo': 'x', 'retention_full': 0, 'timeout': True})
    assert len(errors) == 4
    assert nat.validate_config([])[1]
    cfg, errors = nat.validate_config({'repo': '/r', 'bin_dir': '/b', 'conninfo': 'x', 'retention_full': '3',
                                       'timeout': ' 60'})
    assert errors == [] and cfg['retention_full'] == 3 and cfg['timeout'] == 60
    assert nat.validate_config({'repo': '/r', 'bin_dir': '/b', 'conninfo': 'x', 'retention_full': 'two'})[1]


def test_sizes_and_error_lines_for_humans():
    assert nat.human_size(512) == '512B' and nat.human_size(188205960) == '179.5MiB' and nat.human_size(None) == '-'
    assert nat.last_line('a\nerror: b\n\n') == 'error: b' and nat.last_line(None) == ''


# --- commands without PostgreSQL ------------------------------------------------------------------

@pytest.fixture(name='repo')
def fixture_repo(tmp_path, monkeypatch):
    """A repository with F1 <- I1 and F2, a WAL directory, a fake pg_archivecleanup, and the config."""
    root = tmp_path / 'repo'
    for m in (meta(F1, archive={'start': '000000010000000000000002', 'stop': '000000010000000000000002'}),
              meta(I1, F1, [F1, I1]), meta(F2, archive={'start': '000000010000000000000005', 'stop': ''})):
        (root / 'backup' / m['label']).mkdir(parents=True)
        (root / 'backup' / m['label'] / nat.META).write_text(json.dumps(m))
    (root / 'wal').mkdir()
    for name in ('000000010000000000000002', '000000010000000000000006', '000000010000000000000007.partial'):
        (root / 'wal' / name).write_bytes(name.encode())
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    fake = bindir / 'pg_archivecleanup'
    fake.write_text('#!/bin/sh\necho "$@" > %s\necho "removing file x" >&2\n' % (tmp_path / 'cleanup.args'))
    fake.chmod(0o755)
    config = tmp_path / 'native.json'
    config.write_text(json.dumps({'repo': str(root), 'bin_dir': str(bindir), 'conninfo': 'host=x',
                                  'retention_full': 1, 'log': str(tmp_path / 'log' / 'native.log')}))
    monkeypatch.setenv('PGHA_NATIVE_CONFIG', str(config))
    monkeypatch.setattr(nat, 'catch_signals', lambda: None)      # leave pytest's own handlers alone
    return root


def test_expire_deletes_the_old_chain_and_prunes_wal_up_to_the_oldest_kept_backup(repo, capsys):
    assert nat.main(['expire']) == 0
    assert sorted(os.listdir(repo / 'backup')) == [F2]
    assert (repo.parent / 'cleanup.args').read_text().split() == ['-d', str(repo / 'wal'), '000000010000000000000005']
    out = capsys.readouterr().out
    assert I1 in out and F1 in out and '1 file(s)' in out
    assert 'expire' in (repo.parent / 'log' / 'native.log').read_text()


def test_info_json_latest_and_a_refused_combine_read_the_repository(repo, capsys):
    assert nat.main(['info', '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert [b['label'] for b in info[0]['backup']] == [F1, I1, F2]
    assert info[0]['archive'] == [{'min': '000000010000000000000002', 'max': '000000010000000000000006'}]
    assert nat.main(['latest']) == 0 and capsys.readouterr().out == F2 + '\n'
    (repo / 'backup' / F1 / nat.META).unlink()
    assert nat.main(['combine', I1, str(repo.parent / 'dest')]) == 1
    err = capsys.readouterr().err
    assert ('backup %s needs %s, which is missing from %s' % (I1, F1, repo / 'backup')) in err
    assert 'take a new full backup' in err and not (repo.parent / 'dest').exists()


def test_latest_without_a_backup_exits_2(repo, capsys):
    for label in (F1, I1, F2):
        (repo / 'backup' / label / nat.META).unlink()
    assert nat.main(['latest']) == 2
    assert 'no backup in' in capsys.readouterr().err


def test_latest_is_the_newest_backup_even_with_a_broken_chain(repo, capsys):
    """The drill restores `latest`: a newest backup whose parent is gone must fail the drill, not let an older,
    whole backup pass it."""
    import shutil
    shutil.rmtree(repo / 'backup' / F2)            # I1 is the newest now
    shutil.rmtree(repo / 'backup' / F1)            # and its parent is gone
    assert nat.main(['latest']) == 0 and capsys.readouterr().out == I1 + '\n'
    assert nat.main(['combine', I1, str(repo.parent / 'dest')]) != 0
    assert 'needs %s, which is missing' % F1 in capsys.readouterr().err


def test_wal_get_copies_a_segment_and_refuses_partial_and_foreign_names(repo, capsysbinary):
    assert nat.main(['wal-get', '000000010000000000000006']) == 0
    assert capsysbinary.readouterr().out == b'000000010000000000000006'
    assert nat.main(['wal-get', '000000010000000000000007']) == 1          # only the .partial exists
    assert capsysbinary.readouterr().out == b''
    assert nat.main(['wal-get', '000000010000000000000007.partial']) == 2
    assert b'refused' in capsysbinary.readouterr().err
    assert nat.main(['wal-get', '../backup']) == 2


def test_a_second_backup_while_one_runs_exits_2(repo, capsys):
    fd = os.open(str(repo / '.lock'), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert nat.main(['backup', 'incr']) == 2
        assert 'another backup is running' in capsys.readouterr().err
        assert nat.main(['expire']) == 2
    finally:
        os.close(fd)
    assert sorted(os.listdir(repo / 'backup')) == sorted([F1, I1, F2])


def test_a_missing_configuration_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('PGHA_NATIVE_CONFIG', str(tmp_path / 'none.json'))
    assert nat.main(['info']) == 2
    assert 'run the backup role' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        nat.main(['backup', 'weekly'])
    assert e.value.code == 2


# --- wal-put: the members' archive command -----------------------------------------------------------

def _wal_cfg(tmp_path):
    (tmp_path / 'wal').mkdir()
    return {'repo': str(tmp_path)}


def test_wal_put_stores_a_segment_atomically_and_accepts_the_same_one_again(tmp_path, monkeypatch):
    import io
    cfg = _wal_cfg(tmp_path)
    monkeypatch.setattr(nat, 'wal_dir', lambda c: str(tmp_path / 'wal'))
    segment = b'\x01' * nat.SEGMENT_SIZE
    assert nat.cmd_wal_put(cfg, '000000010000000000000005', io.BytesIO(segment)) == nat.EXIT_OK
    stored = tmp_path / 'wal' / '000000010000000000000005'
    assert stored.read_bytes() == segment and oct(stored.stat().st_mode & 0o777) == '0o600'
    assert sorted(p.name for p in (tmp_path / 'wal').iterdir()) == ['000000010000000000000005']
    # the archiver retries after a lost answer: the same content again is fine
    assert nat.cmd_wal_put(cfg, '000000010000000000000005', io.BytesIO(segment)) == nat.EXIT_OK
    # a different file under the same name is refused, the stored one kept
    with pytest.raises(nat.Failure, match='already holds a different'):
        nat.cmd_wal_put(cfg, '000000010000000000000005', io.BytesIO(b'\x02' * nat.SEGMENT_SIZE))
    assert stored.read_bytes() == segment


def test_wal_put_refuses_names_and_torn_input(tmp_path, monkeypatch):
    import io
    cfg = _wal_cfg(tmp_path)
    monkeypatch.setattr(nat, 'wal_dir', lambda c: str(tmp_path / 'wal'))
    for name in ('../etc/passwd', '000000010000000000000005.partial', 'x'):
        with pytest.raises(nat.Failure) as err:
            nat.cmd_wal_put(cfg, name, io.BytesIO(b'x'))
        assert err.value.code == nat.EXIT_USAGE
    with pytest.raises(nat.Failure, match='is not a WAL segment'):
        nat.cmd_wal_put(cfg, '000000010000000000000006', io.BytesIO(b'\x01' * 1000))
    with pytest.raises(nat.Failure, match='empty input'):
        nat.cmd_wal_put(cfg, '00000002.history', io.BytesIO(b''))
    assert nat.cmd_wal_put(cfg, '00000002.history', io.BytesIO(b'1\t0/5000000\tno recovery target\n')) == 0
    assert list(p.name for p in (tmp_path / 'wal').iterdir()) == ['00000002.history']


def test_wal_put_takes_backup_history_files(tmp_path, monkeypatch):
    import io
    cfg = _wal_cfg(tmp_path)
    monkeypatch.setattr(nat, 'wal_dir', lambda c: str(tmp_path / 'wal'))
    label = b'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n'
    assert nat.cmd_wal_put(cfg, '000000010000000000000002.00000028.backup', io.BytesIO(label)) == nat.EXIT_OK
    assert (tmp_path / 'wal' / '000000010000000000000002.00000028.backup').read_bytes() == label
    # never served back: recovery asks for segments and .history files only
    assert not nat.valid_wal_name('000000010000000000000002.00000028.backup')

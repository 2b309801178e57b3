"""Pure helpers and connection handling of module_utils/pgha_pg.py."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import decimal

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import pgha_pg
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import (
    LsnError,
    check_segment_size,
    check_timeline,
    conn_params,
    describe_target,
    error_text,
    format_table,
    int_to_lsn,
    interval_seconds,
    iso_timestamp,
    lsn_diff,
    lsn_diff_or_none,
    lsn_to_int,
    lsn_to_walfile,
    normalize_lsn,
    primary_timeline,
    standby_timeline,
)


# --- LSN parsing --------------------------------------------------------------

@pytest.mark.parametrize('lsn, value', [
    ('0/0', 0),
    ('0/1', 1),
    ('16/B374D848', (0x16 << 32) + 0xB374D848),
    ('16/b374d848', (0x16 << 32) + 0xB374D848),
    ('0/3000000', 0x3000000),
    ('FFFFFFFF/FFFFFFFF', (1 << 64) - 1),
    ('00000001/00000000', 1 << 32),
    (' 4/DF75D0E0\n', (4 << 32) + 0xDF75D0E0),
])
def test_lsn_to_int(lsn, value):
    assert lsn_to_int(lsn) == value


@pytest.mark.parametrize('bad', ['', '0', '0/', '/0', '1/2/3', '123456789/0', '0/123456789', 'G/0', '0x1/2',
                                 '-1/0', '1 /0', '0/0 junk'])
def test_lsn_to_int_rejects_malformed_strings(bad):
    with pytest.raises(LsnError) as err:
        lsn_to_int(bad)
    assert repr(bad) in str(err.value)


@pytest.mark.parametrize('bad', [None, 5, 1.5, ['0/0'], b'0/0'])
def test_lsn_to_int_rejects_non_strings(bad):
    with pytest.raises(LsnError, match='not an LSN'):
        lsn_to_int(bad)


@pytest.mark.parametrize('value', [0, 1, 0x3000000, (4 << 32) + 0xDF75D0E0, (1 << 64) - 1])
def test_int_to_lsn_round_trip(value):
    assert lsn_to_int(int_to_lsn(value)) == value


def test_int_to_lsn_spelling():
    assert int_to_lsn((0x16 << 32) + 0xB374D848) == '16/B374D848'
    assert int_to_lsn(0) == '0/0'


@pytest.mark.parametrize('bad', [-1, 1 << 64, True, '1', None])
def test_int_to_lsn_rejects(bad):
    with pytest.raises(LsnError, match='not a WAL position'):
        int_to_lsn(bad)


def test_normalize_lsn():
    assert normalize_lsn('00000016/0000d848') == '16/D848'


# --- LSN arithmetic -------------------------------------------------------------

@pytest.mark.parametrize('a, b, diff', [
    ('0/3000000', '0/2FFFF00', 256),
    ('0/2FFFF00', '0/3000000', -256),
    ('1/0', '0/FFFFFFFF', 1),
    ('16/B374D848', '16/B374D848', 0),
    ('FFFFFFFF/FFFFFFFF', '0/0', (1 << 64) - 1),
])
def test_lsn_diff(a, b, diff):
    assert lsn_diff(a, b) == diff


def test_lsn_diff_names_the_bad_side():
    with pytest.raises(LsnError, match="'nope'"):
        lsn_diff('0/1', 'nope')


def test_lsn_diff_or_none():
    assert lsn_diff_or_none('0/10', '0/1') == 15
    assert lsn_diff_or_none(None, '0/1') is None
    assert lsn_diff_or_none('0/1', None) is None


# --- WAL file names -------------------------------------------------------------

@pytest.mark.parametrize('lsn, tli, size, name', [
    ('4/DF75D0E0', 1, 16 << 20, '0000000100000004000000DF'),
    ('0/2FFFFFF', 1, 16 << 20, '000000010000000000000002'),
    ('0/3000000', 1, 16 << 20, '000000010000000000000003'),    # the segment that starts there
    ('0/367CED0', 2, 16 << 20, '000000020000000000000003'),
    ('4/DF75D0E0', 2, 64 << 20, '000000020000000400000037'),
    ('4/DF75D0E0', 1, 1 << 30, '000000010000000400000003'),
    ('4/DF75D0E0', 1, 1 << 20, '000000010000000400000DF7'),
    ('FFFFFFFF/FFFFFFFF', 0xFFFFFFFF, 16 << 20, 'FFFFFFFFFFFFFFFF000000FF'),
])
def test_lsn_to_walfile(lsn, tli, size, name):
    assert lsn_to_walfile(lsn, tli, size) == name


def test_lsn_to_walfile_default_segment_size_and_string_timeline():
    assert lsn_to_walfile('4/DF75D0E0', 1) == '0000000100000004000000DF'
    assert lsn_to_walfile('4/DF75D0E0', '1') == '0000000100000004000000DF'


@pytest.mark.parametrize('bad', [0, -1, 1 << 32, 'one', None, 1.0, True])
def test_check_timeline_rejects(bad):
    with pytest.raises(LsnError, match='not a timeline ID'):
        check_timeline(bad)


@pytest.mark.parametrize('bad', [0, 1000, 3 << 20, 2 << 30, 512 << 10, 'big', None])
def test_check_segment_size_rejects(bad):
    with pytest.raises(LsnError, match='not a WAL segment size'):
        check_segment_size(bad)


def test_check_segment_size_accepts_digit_strings():
    assert check_segment_size('16777216') == 16 << 20


# --- value conversion and messages ----------------------------------------------------

def test_interval_seconds():
    assert interval_seconds(None) is None
    assert interval_seconds(datetime.timedelta(seconds=1, microseconds=500)) == pytest.approx(1.0005)
    assert interval_seconds(decimal.Decimal('2.25')) == 2.25
    assert isinstance(interval_seconds(decimal.Decimal('2.25')), float)


def test_iso_timestamp():
    ts = datetime.datetime(2026, 11, 25, 12, 21, 57, 656734, tzinfo=datetime.timezone.utc)
    assert iso_timestamp(ts) == '2026-11-25T12:21:57.656734+00:00'
    assert iso_timestamp(None) is None


def test_format_table_pads_columns_and_shows_null_as_dash():
    text = format_table(('name', 'lag_bytes'), [('pg2', 16777560), ('a_long_name', None)])
    assert text.splitlines() == [
        'name         lag_bytes',
        'pg2          16777560',
        'a_long_name  -',
    ]


# --- timelines ---------------------------------------------------------------------

class OneRowCursor(object):
    def __init__(self, row):
        self.row = row
        self.sql = None

    def execute(self, sql, args=None):
        self.sql = sql

    def fetchone(self):
        return self.row


def test_primary_timeline_reads_the_wal_file_name():
    cursor = OneRowCursor({'tli_hex': '0000000A', 'current_lsn': '0/5000060'})
    assert primary_timeline(cursor) == (10, '0/5000060')
    assert 'pg_walfile_name(pg_current_wal_lsn())' in cursor.sql


@pytest.mark.parametrize('state, receiver, expected', [
    # streaming: the receiver knows (the control file lags after a timeline switch)
    ({'checkpoint_timeline': 1, 'min_recovery_timeline': 1}, {'status': 'streaming', 'received_tli': 2},
     (2, 'wal_receiver')),
    # not streaming: the larger of the control file's two lower bounds
    ({'checkpoint_timeline': 1, 'min_recovery_timeline': 2}, {'status': 'waiting', 'received_tli': 2},
     (2, 'control_file')),
    ({'checkpoint_timeline': 3, 'min_recovery_timeline': 0}, None, (3, 'control_file')),
    ({'checkpoint_timeline': None, 'min_recovery_timeline': None}, None, (None, 'control_file')),
])
def test_standby_timeline(state, receiver, expected):
    assert standby_timeline(state, receiver) == expected


# --- connection handling -------------------------------------------------------------

PARAMS = dict(login_host='', login_port=5432, login_user='postgres', login_password='', login_db='postgres',
              login_unix_socket='/var/run/postgresql', connect_timeout=10)


def test_argument_spec_defaults():
    spec = pgha_pg.pgha_argument_spec()
    assert spec['login_port'] == dict(type='int', default=5432)
    assert spec['login_user']['default'] == 'postgres'
    assert spec['login_db']['default'] == 'postgres'
    assert spec['login_unix_socket']['default'] == '/var/run/postgresql'
    assert spec['login_password']['no_log'] is True
    assert spec['connect_timeout']['type'] == 'int'


def test_conn_params_socket_by_default():
    assert conn_params(PARAMS, 'pgha.cluster.x') == dict(
        host='/var/run/postgresql', port=5432, user='postgres', dbname='postgres', connect_timeout=10,
        application_name='pgha.cluster.x')


def test_conn_params_host_wins_and_password_is_sent():
    params = dict(PARAMS, login_host='10.0.0.2', login_password='s3cret', login_db='app')
    kw = conn_params(params)
    assert kw['host'] == '10.0.0.2' and kw['password'] == 's3cret' and kw['dbname'] == 'app'
    assert 'application_name' not in kw


def test_describe_target():
    assert describe_target(PARAMS) == ('unix socket /var/run/postgresql/.s.PGSQL.5432 '
                                       '(login_user postgres, login_db postgres)')
    assert describe_target(dict(PARAMS, login_host='db1', login_port=6432)).startswith('host db1 port 6432 ')


class FakeModule(object):
    def __init__(self, params):
        self.params = params

    def fail_json(self, msg, **kwargs):
        raise RuntimeError(msg, kwargs)


def test_connect_without_psycopg2(monkeypatch):
    monkeypatch.setattr(pgha_pg, 'HAS_PSYCOPG2', False)
    monkeypatch.setattr(pgha_pg, 'PSYCOPG2_IMPORT_ERROR', 'Traceback: No module named psycopg2')
    with pytest.raises(RuntimeError) as err:
        pgha_pg.connect(FakeModule(PARAMS))
    msg, kwargs = err.value.args
    assert 'psycopg2' in msg and 'python3-psycopg2' in msg
    assert kwargs['exception'] == 'Traceback: No module named psycopg2'


def test_connect_failure_names_the_target(monkeypatch):
    def refuse(**kw):
        raise pgha_pg.psycopg2.OperationalError(
            'connection to server on socket "/var/run/postgresql/.s.PGSQL.5499" failed: No such file or directory\n'
            '\tIs the server running locally and accepting connections on that socket?\n')
    monkeypatch.setattr(pgha_pg.psycopg2, 'connect', refuse)
    with pytest.raises(RuntimeError) as err:
        pgha_pg.connect(FakeModule(dict(PARAMS, login_port=5499)))
    msg = err.value.args[0]
    assert msg.startswith('Cannot connect to PostgreSQL at unix socket /var/run/postgresql/.s.PGSQL.5499 ')
    assert 'No such file or directory Is the server running' in msg     # one line
    assert '\n' not in msg


def test_connect_sets_autocommit_and_no_statement_timeout(monkeypatch):
    seen = {}

    class Cursor(object):
        def execute(self, sql, args=None):
            seen['sql'] = sql

    class Conn(object):
        autocommit = False

        def cursor(self, cursor_factory=None):
            seen['factory'] = cursor_factory
            return Cursor()

    def fake_connect(**kw):
        seen['kw'] = kw
        return Conn()

    monkeypatch.setattr(pgha_pg.psycopg2, 'connect', fake_connect)
    conn, cursor = pgha_pg.connect(FakeModule(dict(PARAMS, login_host='db1', login_password='pw')), 'pgha.x')
    assert conn.autocommit is True
    assert seen['sql'] == 'SET statement_timeout = 0'
    assert seen['factory'] is pgha_pg.psycopg2.extras.RealDictCursor
    assert seen['kw'] == dict(host='db1', port=5432, user='postgres', password='pw', dbname='postgres',
                              connect_timeout=10, application_name='pgha.x')


def test_error_text():
    class Diag(object):
        message_primary = 'permission denied for function pg_promote'

    class Err(Exception):
        diag = Diag()
    assert error_text(Err('ERROR:  permission denied ...\nHINT: x')) == 'permission denied for function pg_promote'
    assert error_text(ValueError('first line\nsecond')) == 'first line'
    assert error_text(ValueError()) == 'ValueError'


def test_sqlstate():
    class Err(Exception):
        pgcode = '42501'
    assert pgha_pg.sqlstate(Err()) == '42501'
    assert pgha_pg.sqlstate(ValueError()) is None

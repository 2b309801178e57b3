# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared code of the pgha.cluster modules and filters.

Two halves:

* pure helpers (no database, no AnsibleModule): LSN parsing and arithmetic,
  WAL file names, timelines, interval conversion, text tables. The LSN filters
  run these on the controller, the modules on the target.
* connection handling for the modules: the common argument spec, the libpq
  parameters built from it, and connect(), which fails the module with a clear
  message when psycopg2 is missing or the server cannot be reached.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native

PSYCOPG2_IMPORT_ERROR = None
try:
    import psycopg2
    import psycopg2.extras
    HAS_PSYCOPG2 = True
except ImportError:
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

if HAS_PSYCOPG2:
    DatabaseError = psycopg2.Error
else:
    class DatabaseError(Exception):
        """Stands in for psycopg2.Error when psycopg2 is missing (connect() fails first)."""

# --------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------

#: Default WAL segment size (initdb --wal-segsize), in bytes.
DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024

_LSN_RE = re.compile(r'^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$')
_MAX_LSN = (1 << 64) - 1


class LsnError(ValueError):
    """A value is not a PostgreSQL LSN (or not a timeline ID or WAL segment size)."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def lsn_to_int(lsn):
    """Turn an LSN in PostgreSQL's text form ('16/B374D848') into an int.

    Both halves are hexadecimal, 1 to 8 digits, case-insensitive; surrounding
    blanks are ignored. Anything else raises LsnError naming the value.
    """
    if not isinstance(lsn, str):
        raise LsnError('not an LSN: %r (expected a string like "16/B374D848", got %s)'
                       % (lsn, type(lsn).__name__))
    match = _LSN_RE.match(lsn.strip())
    if not match:
        raise LsnError('not an LSN: %r (expected two hexadecimal numbers of 1-8 digits '
                       'separated by "/", like "16/B374D848")' % (lsn,))
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def int_to_lsn(value):
    """Turn an int into PostgreSQL's text form of an LSN ('16/B374D848')."""
    if not _is_int(value) or value < 0 or value > _MAX_LSN:
        raise LsnError('not a WAL position: %r (expected an integer from 0 to 2^64-1)' % (value,))
    return '%X/%X' % (value >> 32, value & 0xFFFFFFFF)


def normalize_lsn(lsn):
    """Return the LSN in PostgreSQL's canonical spelling (upper case, no leading zeros)."""
    return int_to_lsn(lsn_to_int(lsn))


def lsn_diff(a, b):
    """Bytes of WAL from b to a (a - b), like pg_wal_lsn_diff(a, b). Negative if a is behind b."""
    return lsn_to_int(a) - lsn_to_int(b)


def lsn_diff_or_none(a, b):
    """lsn_diff(a, b), or None when either side is None (a NULL LSN in a view)."""
    if a is None or b is None:
        return None
    return lsn_diff(a, b)


def check_timeline(timeline):
    """Return the timeline as an int, or raise LsnError: 1 to 0xFFFFFFFF."""
    if isinstance(timeline, str) and timeline.strip().isdigit():
        timeline = int(timeline.strip())
    if not _is_int(timeline) or timeline < 1 or timeline > 0xFFFFFFFF:
        raise LsnError('not a timeline ID: %r (expected an integer from 1 to 4294967295)' % (timeline,))
    return timeline


def check_segment_size(segment_size):
    """Return the WAL segment size as an int, or raise LsnError (a power of 2 from 1MB to 1GB)."""
    if isinstance(segment_size, str) and segment_size.strip().isdigit():
        segment_size = int(segment_size.strip())
    if (not _is_int(segment_size) or segment_size < 1024 * 1024 or segment_size > 1024 * 1024 * 1024
            or segment_size & (segment_size - 1)):
        raise LsnError('not a WAL segment size: %r (expected a power of 2 from 1048576 (1MB) '
                       'to 1073741824 (1GB) bytes)' % (segment_size,))
    return segment_size


def lsn_to_walfile(lsn, timeline, segment_size=DEFAULT_WAL_SEGMENT_SIZE):
    """Name of the WAL segment file that holds the byte at lsn on the given timeline.

    '4/DF75D0E0' on timeline 1 with 16MB segments is '0000000100000004000000DF'.
    PostgreSQL's pg_walfile_name() differs for an LSN exactly on a segment
    boundary: it names the previous segment (the one that ends there).
    """
    position = lsn_to_int(lsn)
    timeline = check_timeline(timeline)
    segment_size = check_segment_size(segment_size)
    segno = position // segment_size
    per_xlogid = 0x100000000 // segment_size
    return '%08X%08X%08X' % (timeline, segno // per_xlogid, segno % per_xlogid)


def parse_timeline_history(text):
    """The lines of a timeline history file (pg_wal/0000000N.history) as a list of
    {timeline, switchpoint, reason}: timeline T ended at switchpoint (an LSN) when
    timeline T+1... began. Comments and blank lines are skipped; a malformed line
    raises LsnError naming it."""
    entries = []
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.split('\t') if '\t' in line else line.split(None, 2)
        if len(fields) < 2 or not fields[0].strip().isdigit():
            raise LsnError('not a timeline history line: %r' % line)
        entries.append({'timeline': int(fields[0]), 'switchpoint': normalize_lsn(fields[1].strip()),
                        'reason': fields[2].strip() if len(fields) > 2 else ''})
    return entries


def interval_seconds(value):
    """Seconds as a float from an interval (timedelta) or number; None stays None."""
    if value is None:
        return None
    if hasattr(value, 'total_seconds'):
        return value.total_seconds()
    return float(value)


def iso_timestamp(value):
    """ISO 8601 text of a datetime; None stays None."""
    if value is None:
        return None
    return value.isoformat()


def format_table(headers, rows):
    """A plain-text table (columns padded with blanks), for failure messages."""
    cells = [[u'-' if c is None else u'%s' % (c,) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [u'  '.join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append(u'  '.join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return u'\n'.join(lines)


# --------------------------------------------------------------------------
# Connection handling (modules)
# --------------------------------------------------------------------------

def pgha_argument_spec():
    """The connection options every pgha.cluster database module takes."""
    return dict(
        login_host=dict(type='str', default=''),
        login_port=dict(type='int', default=5432),
        login_user=dict(type='str', default='postgres'),
        login_password=dict(type='str', default='', no_log=True),
        login_db=dict(type='str', default='postgres'),
        login_unix_socket=dict(type='str', default='/var/run/postgresql'),
        connect_timeout=dict(type='int', default=10),
    )


def conn_params(params, application_name=None):
    """libpq keywords for psycopg2.connect() from the module's parameters.

    login_host wins; without it the connection goes through login_unix_socket
    (a directory, as in libpq's host=/path). An empty password is not sent,
    so libpq may still use ~/.pgpass or PGPASSWORD.
    """
    kw = {
        'host': params.get('login_host') or params.get('login_unix_socket') or None,
        'port': params.get('login_port'),
        'user': params.get('login_user'),
        'dbname': params.get('login_db'),
        'connect_timeout': params.get('connect_timeout'),
    }
    if params.get('login_password'):
        kw['password'] = params['login_password']
    if application_name:
        kw['application_name'] = application_name
    return dict((k, v) for k, v in kw.items() if v is not None and v != '')


def describe_target(params):
    """Where we connect, for messages: 'host db1 port 5432' or 'unix socket /run/x port 5432'."""
    if params.get('login_host'):
        where = 'host %s port %s' % (params['login_host'], params.get('login_port'))
    elif params.get('login_unix_socket'):
        where = 'unix socket %s/.s.PGSQL.%s' % (params['login_unix_socket'].rstrip('/'), params.get('login_port'))
    else:
        where = 'libpq default host, port %s' % params.get('login_port')
    return '%s (login_user %s, login_db %s)' % (where, params.get('login_user'), params.get('login_db'))


def ensure_psycopg2(module):
    """Fail the module unless psycopg2 can be imported on the target."""
    if not HAS_PSYCOPG2:
        module.fail_json(
            msg=missing_required_lib(
                'psycopg2', reason='to connect to PostgreSQL. On Debian install the package python3-psycopg2 '
                '(the pgha.cluster.postgresql role installs it on every database host)'),
            exception=PSYCOPG2_IMPORT_ERROR)


def open_connection(params, application_name=None):
    """Connect with the login_* options in params; return (connection, cursor) or raise.

    The connection is in autocommit mode and the cursor returns dict rows.
    statement_timeout is switched off for the session: the modules bound
    their own waits.
    """
    conn = psycopg2.connect(**conn_params(params, application_name))
    try:
        conn.autocommit = True
        cursor = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        cursor.execute('SET statement_timeout = 0')
    except Exception:
        conn.close()
        raise
    return conn, cursor


def connect(module, application_name=None):
    """open_connection() with the module's options; any failure to connect fails the module,
    naming the target."""
    ensure_psycopg2(module)
    try:
        return open_connection(module.params, application_name)
    except Exception as e:  # psycopg2.Error, or a bad keyword
        module.fail_json(msg='Cannot connect to PostgreSQL at %s: %s'
                         % (describe_target(module.params), ' '.join(to_native(e).split())))


def query_one(cursor, sql, args=None):
    """Execute sql and return the first row as a dict (None if no row)."""
    cursor.execute(sql, args)
    row = cursor.fetchone()
    return dict(row) if row is not None else None


def query_all(cursor, sql, args=None):
    """Execute sql and return every row as a dict."""
    cursor.execute(sql, args)
    return [dict(row) for row in cursor.fetchall()]


def sqlstate(exc):
    """The SQLSTATE of a psycopg2 error (e.g. '42501'), else None."""
    return getattr(exc, 'pgcode', None)


def error_text(exc):
    """The server's message of a psycopg2 error, on one line."""
    diag = getattr(exc, 'diag', None)
    message = getattr(diag, 'message_primary', None) if diag is not None else None
    if not message:
        text = to_native(exc).strip()
        message = text.splitlines()[0] if text else exc.__class__.__name__
    return message


# --------------------------------------------------------------------------
# Server state shared by the modules
# --------------------------------------------------------------------------

STANDBY_STATE_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       (SELECT min_recovery_end_timeline FROM pg_control_recovery()) AS min_recovery_timeline
"""

WAL_RECEIVER_SQL = """
SELECT status, received_tli, sender_host, sender_port, slot_name,
       flushed_lsn::text AS flushed_lsn, latest_end_lsn::text AS latest_end_lsn
  FROM pg_stat_wal_receiver
"""

PRIMARY_TIMELINE_SQL = """
SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli_hex,
       pg_current_wal_lsn()::text AS current_lsn
"""


def primary_timeline(cursor):
    """(timeline, current_lsn) of a primary.

    The timeline is read from the name of the current WAL file, which
    switches at the moment of promotion; pg_control_checkpoint() keeps the
    old timeline until the end-of-recovery checkpoint completes, which takes
    minutes with a spread checkpoint.
    """
    row = query_one(cursor, PRIMARY_TIMELINE_SQL)
    return int(row['tli_hex'], 16), row['current_lsn']


def standby_timeline(state, receiver):
    """(timeline, source) of a standby from STANDBY_STATE_SQL's row and its WAL receiver row.

    A streaming WAL receiver knows the timeline it receives (received_tli).
    Otherwise the control file's values are lower bounds: the last restartpoint
    keeps an old timeline until the next restartpoint, the minimum recovery
    point moves on with the data written; take the larger.
    """
    if receiver and receiver.get('status') == 'streaming' and receiver.get('received_tli'):
        return int(receiver['received_tli']), 'wal_receiver'
    candidates = [t for t in (state.get('checkpoint_timeline'), state.get('min_recovery_timeline')) if t]
    if not candidates:
        return None, 'control_file'
    return int(max(candidates)), 'control_file'

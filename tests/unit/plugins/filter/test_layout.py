"""The cluster's layout (filter pg_layout) and the supported (Debian release, PostgreSQL) pairs."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.layout import (
    debian_postgresql, pg_layout, pgpass_escape, platform_errors)


def test_debian_17_layout():
    lay = pg_layout(17)
    assert lay['version'] == 17 and lay['cluster'] == 'main' and lay['port'] == 5432
    assert lay['bin_dir'] == '/usr/lib/postgresql/17/bin'
    assert lay['conf_dir'] == '/etc/postgresql/17/main'
    assert lay['data_dir'] == '/var/lib/postgresql/17/main'
    assert lay['service'] == 'postgresql@17-main'
    assert lay['socket_dir'] == '/var/run/postgresql'
    assert lay['pid_file'] == '/var/run/postgresql/17-main.pid'
    assert lay['log_file'] == '/var/log/postgresql/postgresql-17-main.log'
    assert lay['pgpass'] == '/var/lib/postgresql/.pgpass'
    assert lay['server_packages'] == ['postgresql-17', 'postgresql-client-17']
    assert lay['cron_package'] == 'postgresql-17-cron'
    # the markers are beside the data directory, never inside it
    for marker in ('initdb_marker', 'fence_marker'):
        assert lay[marker].startswith('/var/lib/postgresql/17/.pgha-') and not lay[marker].startswith(lay['data_dir'])


def test_another_cluster_and_port_and_version_as_text():
    lay = pg_layout('15', 'reports', '5433')
    assert (lay['version'], lay['port']) == (15, 5433)
    assert lay['data_dir'] == '/var/lib/postgresql/15/reports' and lay['service'] == 'postgresql@15-reports'
    assert lay['fence_marker'] == '/var/lib/postgresql/15/.pgha-fenced-reports'


def test_the_upgrade_markers_are_the_same_for_every_version():
    """upgrade.yml writes them on an old cluster (15) and reads them through a new one's
    layout (17): they must not depend on the version, nor sit in a data directory."""
    old, new = pg_layout(15), pg_layout(17)
    for marker in ('upgrade_handed_over', 'upgrade_cutover'):
        assert old[marker] == new[marker] and old[marker].startswith('/var/lib/postgresql/.pgha-upgrade-')
    assert old['upgrade_handed_over'] != old['upgrade_cutover']


@pytest.mark.parametrize('version,cluster', [('seventeen', 'main'), (9, 'main'), (None, 'main'), (17, '../x'),
                                             (17, ''), (17, '..')])
def test_bad_layout_input(version, cluster):
    with pytest.raises(AnsibleFilterError):
        pg_layout(version, cluster)


def test_debian_releases():
    assert debian_postgresql('trixie') == 17 and debian_postgresql('bookworm') == 15
    assert debian_postgresql('bullseye') is None and debian_postgresql(None) is None


@pytest.mark.parametrize('version,release', [(17, 'trixie'), ('15', 'bookworm')])
def test_the_pairs_debian_ships(version, release):
    assert platform_errors(version, 'Debian', release) == []


def test_a_version_the_release_does_not_ship_names_the_variable_and_the_fix():
    (err,) = platform_errors(17, 'Debian', 'bookworm', host='db1')
    assert err.startswith('postgresql_version=17, but db1 runs Debian 12 (bookworm), which ships PostgreSQL 15 only.')
    assert 'Fix: set postgresql_version to 15' in err and 'Debian 13' in err
    (err,) = platform_errors(15, 'Debian', 'trixie', host='db1')
    assert 'ships PostgreSQL 17 only' in err and 'set postgresql_version to 17' in err
    (err,) = platform_errors(16, 'Debian', 'trixie')
    assert 'none of the supported ones' in err


def test_pgdg_lifts_the_version_match_but_not_the_platform():
    assert platform_errors(16, 'Debian', 'trixie', pgdg=True) == []
    (err,) = platform_errors(17, 'Debian', 'bullseye', pgdg=True, host='old1')
    assert err.startswith('old1 runs Debian bullseye; pgha.cluster supports Debian 12 (bookworm) and Debian 13 (trixie)')
    (err,) = platform_errors(17, 'RedHat', '9')
    assert 'supports Debian 12' in err


def test_a_version_that_is_no_number():
    (err,) = platform_errors('latest', 'Debian', 'trixie')
    assert err.startswith("postgresql_version='latest' is not a PostgreSQL major version. Fix: set it to 17")


def test_missing_packages_from_dpkg_query():
    from ansible_collections.pgha.cluster.plugins.filter.layout import missing_packages
    out = ('ii  postgresql-17\nii  postgresql-client-17\nrc  keepalived\nun  acl\n'
           'ii  libssl3t64:amd64\n')
    wanted = ['postgresql-17', 'keepalived', 'acl', 'postgresql-client-17', 'python3-psycopg2', 'libssl3t64']
    # removed-but-configured (rc) and unknown (un) are missing; not listed at all is missing; :arch is ignored
    assert missing_packages(out, wanted) == ['keepalived', 'acl', 'python3-psycopg2']
    assert missing_packages('', ['a']) == ['a'] and missing_packages(out, []) == []


def _pgpass_fields(line):
    """How libpq splits a ~/.pgpass line: ':' separates, a backslash takes the next character as it is."""
    fields, cur, i = [], '', 0
    while i < len(line):
        if line[i] == '\\' and i + 1 < len(line):
            cur += line[i + 1]
            i += 2
            continue
        if line[i] == ':':
            fields.append(cur)
            cur = ''
        else:
            cur += line[i]
        i += 1
    return fields + [cur]


@pytest.mark.parametrize('password', ['plain-secret', 'with:colon', 'back\\slash', 'both\\:and::\\\\', 'end\\'])
def test_a_pgpass_field_reads_back_as_the_password(password):
    assert pgpass_escape('s3:cr\\et') == 's3\\:cr\\\\et'
    assert _pgpass_fields('*:5432:*:replicator:' + pgpass_escape(password)) == ['*', '5432', '*', 'replicator', password]

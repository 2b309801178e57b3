# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where the collection knows how Debian lays out a PostgreSQL
cluster: paths, service name, packages, and which PostgreSQL each Debian
release ships.

pg_layout(version, cluster, port) is what every role and runbook reads (the
postgresql role exposes it as pgha_layout); nothing else computes a
path from the version. debian_postgresql(release) and platform_errors(...)
decide which (Debian release, PostgreSQL version) pairs are supported.
Pure functions: unit-tested in tests/unit/plugins/filter/test_layout.py; a
unit test also checks that no role or runbook spells these paths itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

#: The PostgreSQL major version each supported Debian release ships (and the
#: only one its own packages provide).
DEBIAN_POSTGRESQL = {'bookworm': 15, 'trixie': 17}
#: Debian's major version numbers, for messages.
DEBIAN_NUMBER = {'bookworm': 12, 'trixie': 13}

SOCKET_DIR = '/var/run/postgresql'
HOME = '/var/lib/postgresql'


def pgpass_escape(value):
    """One field of a ~/.pgpass line: a backslash and a colon escaped with a backslash (libpq's rule).

    A filter, not replace() in the template: in Ansible's templates a backslash in a string literal is not
    an escape, so a replace() of backslashes written there does not mean what it reads as.
    """
    return str(value).replace('\\', '\\\\').replace(':', '\\:')


def _version(version):
    try:
        number = int(str(version).strip())
    except (TypeError, ValueError):
        raise AnsibleFilterError('pg_layout: the PostgreSQL major version must be a number such as 17, got %r'
                                 % (version,))
    if number < 10:
        raise AnsibleFilterError('pg_layout: %r is not a PostgreSQL major version (10 or later)' % (version,))
    return number


def pg_layout(version, cluster='main', port=5432):
    """Where Debian's postgresql-common puts cluster <cluster> of PostgreSQL <version>.

    Returns {version, cluster, port, bin_dir, conf_dir, data_dir, service, socket_dir,
    pid_file, log_file, home, pgpass, initdb_marker, fence_marker, crashloop_marker, crash_record,
    sync_relaxed_marker, metrics_dir, pgbackrest_conf_dir, pgbackrest_pki_dir, upgrade_handed_over, upgrade_cutover, server_packages, cron_package}.
    The markers live beside the data directory, outside it: a restore or a re-clone
    of the data directory never carries them along. The two upgrade markers (left by
    upgrade.yml's cutover: on the old cluster's members, which handed the writer VIP
    over; on the new cluster's, which took it) do not depend on the version: the old
    and the new cluster run different ones."""
    v = _version(version)
    cluster = str(cluster)
    if not cluster or '/' in cluster or cluster in ('.', '..'):
        raise AnsibleFilterError('pg_layout: %r is not a cluster name' % (cluster,))
    base = '%s/%d' % (HOME, v)
    return {
        'version': v,
        'cluster': cluster,
        'port': int(port),
        'bin_dir': '/usr/lib/postgresql/%d/bin' % v,
        'conf_dir': '/etc/postgresql/%d/%s' % (v, cluster),
        'data_dir': '%s/%s' % (base, cluster),
        'service': 'postgresql@%d-%s' % (v, cluster),
        'socket_dir': SOCKET_DIR,
        'pid_file': '%s/%d-%s.pid' % (SOCKET_DIR, v, cluster),
        'log_file': '/var/log/postgresql/postgresql-%d-%s.log' % (v, cluster),
        'home': HOME,
        'pgpass': HOME + '/.pgpass',
        'initdb_marker': '%s/.pgha-initdb-%s' % (base, cluster),
        'fence_marker': '%s/.pgha-fenced-%s' % (base, cluster),
        # left by the start guard after too many abnormal ends (a crash loop): no start until removed
        'crashloop_marker': '%s/.pgha-crashloop-%s' % (base, cluster),
        # the abnormal ends of the last restart window (tmpfs: a reboot forgets them)
        'crash_record': '/run/pgha/crashes-%d-%s.json' % (v, cluster),
        # left on every member by sync_relax.yml while synchronous replication is relaxed
        'sync_relaxed_marker': '%s/.pgha-sync-relaxed-%s' % (base, cluster),
        # Prometheus text files the node exporter publishes (pgha-metrics, the restore drill)
        'metrics_dir': '/var/lib/pgha/metrics',
        'upgrade_handed_over': '%s/.pgha-upgrade-handed-over' % HOME,
        'upgrade_cutover': '%s/.pgha-upgrade-cutover' % HOME,
        # pgBackRest's configuration and the backup role's TLS certificates (Debian's pgbackrest layout)
        'pgbackrest_conf_dir': '/etc/pgbackrest',
        'pgbackrest_pki_dir': '/etc/pgbackrest/pki',
        'server_packages': ['postgresql-%d' % v, 'postgresql-client-%d' % v],
        'cron_package': 'postgresql-%d-cron' % v,
    }


def debian_postgresql(release):
    """The PostgreSQL major version Debian <release> ships, or None for a release this
    collection does not support."""
    return DEBIAN_POSTGRESQL.get(str(release or '').lower())


def platform_errors(version, os_family, release, pgdg=False, host='this host', varname='postgresql_version'):
    """Why PostgreSQL <version> cannot run on this host: [] when Debian <release> ships it
    (or it comes from PGDG on a supported release). The message names the variable and the fix."""
    if str(os_family) != 'Debian' or debian_postgresql(release) is None:
        return ['%s runs %s %s; pgha.cluster supports %s. Use one of those.'
                % (host, os_family or 'an unknown OS', release or '',
                   ' and '.join('Debian %d (%s)' % (DEBIAN_NUMBER[r], r) for r in sorted(DEBIAN_NUMBER)))]
    try:
        v = _version(version)
    except AnsibleFilterError:
        return ['%s=%r is not a PostgreSQL major version. Fix: set it to %d on Debian %d (%s).'
                % (varname, version, DEBIAN_POSTGRESQL[release], DEBIAN_NUMBER[release], release)]
    shipped = DEBIAN_POSTGRESQL[release]
    if v == shipped or pgdg:
        return []
    return ['%s=%d, but %s runs Debian %d (%s), which ships PostgreSQL %d only. Fix: set %s to %d for this '
            'cluster (Debian %s), or use hosts of the Debian release that ships %d (%s).'
            % (varname, v, host, DEBIAN_NUMBER[release], release, shipped, varname, shipped,
               DEBIAN_NUMBER[release],
               v, ', '.join('Debian %d' % DEBIAN_NUMBER[r] for r in sorted(DEBIAN_POSTGRESQL)
                            if DEBIAN_POSTGRESQL[r] == v) or 'none of the supported ones')]


def missing_packages(dpkg_output, wanted):
    """The packages of wanted that `dpkg-query --show --showformat '${db:Status-Abbrev} ${Package}\\n' ...`
    does not show installed ('ii'), in wanted's order. The roles ask dpkg-query first and run apt only for
    what is missing: a run that installs nothing costs milliseconds, not apt's second of CPU per task."""
    installed = set()
    for line in str(dpkg_output or '').splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == 'ii':
            installed.add(fields[-1].partition(':')[0])
    return [p for p in wanted or [] if str(p).partition('=')[0] not in installed]


class FilterModule(object):
    def filters(self):
        return {
            'pgpass_escape': pgpass_escape,
            'missing_packages': missing_packages,
            'pg_layout': pg_layout,
            'debian_postgresql': debian_postgresql,
            'platform_errors': platform_errors,
        }

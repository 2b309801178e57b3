"""Logical replication as the course notes describe it, added to a running
cluster the way a DBA adds it: converge.yml provisioned the cluster and the
subscriber's server without publications, and created the application's
tables (acked and orders published, private not, and private has no primary
key). Here:

- bad input is refused before any host changes (an unknown table, a table
  without replica identity, a cluster member as a subscriber);
- site.yml with a publication of acked: the subscriber gets the table's
  schema and rows, then every INSERT, UPDATE and DELETE; orders and private
  stay away; the subscription goes through the writer VIP with a failover
  slot that the standbys synchronize;
- the inventory's publication (acked and orders): orders and its rows
  arrive (that site.yml then changes nothing anywhere, subscriber included,
  is checked after each runbook of test_lifecycle.py).

test_lifecycle.py (next: conftest.FILE_ORDER) kills the primary under a writer and
checks the subscriber follows the promoted node without losing or
duplicating a row, and without a new subscription.
"""

import json

import pgha_testlib as lib

NAMES = ['lifecycle-pg1', 'lifecycle-pg2', 'lifecycle-pg3']
SUB = 'lifecycle-sub'
WRITER_VIP = '10.89.73.100'
ONLY_ACKED = [{'name': 'app_pub', 'database': 'app', 'tables': ['acked']}]


def node(name):
    return lib.host(name)


def primary():
    return node('lifecycle-pg1')


def digest(host, table):
    return lib.table_digest(node(host) if isinstance(host, str) else host, table)


def wait_same(table, source='lifecycle-pg1', timeout=60):
    lib.wait_for(lambda: digest(SUB, table) == digest(source, table), timeout=timeout,
                 what='%s on the subscriber equal to %s' % (table, source))


def site(*extra):
    return lib.run_playbook('site.yml', *extra)


def refused(extra):
    """site.yml with these extra variables: refused, nothing changed on any host."""
    before = [lib.config_fingerprint(node(n)) for n in NAMES + [SUB]]
    proc = site('-e', json.dumps(extra))
    assert proc.returncode != 0
    assert lib.changed_hosts(proc.stdout) == {}
    assert [lib.config_fingerprint(node(n)) for n in NAMES + [SUB]] == before
    return ' '.join(proc.stdout.split())


def test_bad_input_is_refused_before_any_host_changes():
    flat = refused({'logical_publications': [{'name': 'app_pub', 'database': 'app',
                                              'tables': ['acked', 'nosuch', 'private']}]})
    assert 'tables that do not exist in database app: public.nosuch' in flat, flat[-4000:]
    assert 'public.private in database app has no primary key or replica identity' in flat, flat[-4000:]
    # extra variables reach every host: the members get a subscription too
    flat = refused({'logical_publications': ONLY_ACKED,
                    'logical_subscriptions': [{'name': 'app_sub', 'database': 'app', 'publications': ['app_pub']}]})
    assert 'lifecycle-pg2 is a member of the cluster (primary or replica) and has logical_subscriptions' in flat, \
        flat[-4000:]
    assert lib.psql(primary(), 'SHOW wal_level') == 'replica'


def test_a_publication_brings_its_table_and_every_change_to_the_subscriber():
    lib.psql(primary(), "INSERT INTO acked (id) SELECT g FROM generate_series(700001, 700020) g", db='app')
    lib.psql(primary(), "INSERT INTO orders (item, qty) VALUES ('apple', 1), ('pear', 2)", db='app')
    lib.psql(primary(), "INSERT INTO private VALUES ('not for the subscriber')", db='app')
    proc = site('-e', json.dumps({'logical_publications': ONLY_ACKED}))
    assert proc.returncode == 0, proc.stdout[-6000:]
    sub = node(SUB)
    for n in NAMES:
        assert lib.psql(node(n), 'SHOW wal_level') == 'logical', n
    # site.yml waited for the initial copy
    assert digest(SUB, 'acked') == digest('lifecycle-pg1', 'acked')
    assert lib.psql(sub, "SELECT to_regclass('orders') IS NULL AND to_regclass('private') IS NULL", db='app') == 't'
    # every kind of change
    lib.psql(primary(), 'INSERT INTO acked (id) VALUES (700021)', db='app')
    lib.psql(primary(), 'UPDATE acked SET at = now() - interval \'1 day\' WHERE id = 700001', db='app')
    lib.psql(primary(), 'DELETE FROM acked WHERE id = 700002', db='app')
    wait_same('acked')
    assert lib.psql(sub, 'SELECT count(*) FROM acked WHERE id = 700002', db='app') == '0'
    # its own login role (not a superuser), through the writer VIP, over TLS, with a failover slot
    assert lib.psql(primary(), "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = 'pgha_logical'") == 'f|t'
    conninfo = lib.psql(sub, "SELECT subconninfo FROM pg_subscription WHERE subname = 'app_sub'")
    assert 'host=%s' % WRITER_VIP in conninfo and 'user=pgha_logical' in conninfo and 'sslmode=require' in conninfo
    assert lib.psql(primary(), "SELECT failover, active FROM pg_replication_slots WHERE slot_name = 'app_sub'") == 't|t'
    assert lib.psql(primary(), "SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_replication USING (pid) "
                               "WHERE application_name = 'app_sub'") == 't'
    for n in NAMES[1:]:
        lib.wait_for(lambda: lib.psql(node(n), "SELECT synced FROM pg_replication_slots WHERE slot_name = 'app_sub'")
                     == 't', timeout=60, what='the failover slot synchronized to %s' % n)
    assert lib.psql(primary(), 'SHOW synchronized_standby_slots') == 'lifecycle_pg2, lifecycle_pg3'


def test_adding_a_table_brings_its_rows():
    """site.yml with the inventory's publication (acked and orders). That site.yml
    then changes nothing, on the members and on the subscriber, is checked after
    every runbook of test_lifecycle.py's walks (assert_site_changes_nothing)."""
    proc = site()    # the inventory publishes acked and orders
    assert proc.returncode == 0, proc.stdout[-6000:]
    sub = node(SUB)
    assert digest(SUB, 'orders') == digest('lifecycle-pg1', 'orders')
    assert lib.psql(sub, "SELECT to_regclass('private') IS NULL", db='app') == 't'
    lib.psql(primary(), "UPDATE orders SET qty = qty + 10 WHERE item = 'pear'", db='app')
    wait_same('orders')
    lib.SHARED['subscription_oid'] = lib.psql(sub, "SELECT oid FROM pg_subscription WHERE subname = 'app_sub'")

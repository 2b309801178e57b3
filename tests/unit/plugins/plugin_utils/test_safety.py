"""Inputs that silently break the collection's promises (plugins/plugin_utils/safety.py): each is
refused with a message naming the variable, the cost and the fix, and the named risk lifts it."""

import pytest

from ansible_collections.pgha.cluster.plugins.plugin_utils import safety


def hba(**entry):
    return safety.hba_errors([entry], 'postgresql_hba_entries')


GOOD_HBA = [
    {'contype': 'hostssl', 'databases': 'app', 'users': 'app', 'source': '10.0.0.0/24', 'method': 'scram-sha-256'},
    {'contype': 'hostssl', 'databases': 'app', 'users': 'app', 'source': '10.0.0.0/24', 'method': 'cert'},
    {'contype': 'local', 'databases': 'all', 'users': 'app', 'method': 'peer'},
    {'contype': 'local', 'databases': 'all', 'users': 'app', 'method': 'scram-sha-256'},
    {'contype': 'host', 'databases': 'all', 'users': 'all', 'source': '127.0.0.1/32', 'method': 'scram-sha-256'},
    {'contype': 'host', 'databases': 'all', 'users': 'all', 'source': '::1/128', 'method': 'md5'},
    {'contype': 'host', 'databases': 'all', 'users': 'all', 'address': '127.0.0.1', 'netmask': '255.0.0.0',
     'method': 'password'},
    {'contype': 'host', 'databases': 'all', 'users': 'all', 'source': '0.0.0.0/0', 'method': 'reject'},
    {'contype': 'hostgssenc', 'databases': 'all', 'users': 'all', 'source': '10.0.0.0/8', 'method': 'scram-sha-256'},
    {'contype': 'hostssl', 'databases': 'app', 'users': 'app', 'source': '10.0.0.0/24', 'method': 'ldap',
     'options': 'ldapserver=ldap.example.com ldapprefix="cn=" ldapsuffix=", dc=example, dc=com"'},
    {'contype': 'host', 'databases': 'all', 'users': 'all', 'source': '0.0.0.0/0', 'method': 'trust',
     'state': 'absent'},
]


def test_good_entries_pass():
    assert safety.hba_errors(GOOD_HBA) == []
    assert safety.hba_errors([]) == [] and safety.hba_errors(None) == []


def test_trust_from_the_network_is_refused_and_the_risk_lifts_it():
    entry = {'contype': 'host', 'databases': 'all', 'users': 'all', 'source': '0.0.0.0/0', 'method': 'trust'}
    errors = safety.hba_errors([entry])
    assert len(errors) == 1
    assert errors[0].startswith('postgresql_hba_entries[0] (host from 0.0.0.0/0, users all, method trust) is refused')
    assert 'without a password' in errors[0]
    assert 'add network_logins_without_password to postgresql_accepted_risks' in errors[0]
    assert safety.hba_errors([entry], accepted=['network_logins_without_password']) == []
    # hostssl does not make trust safe; samenet, all and host names are the network too
    for source in ('all', 'samenet', 'db.example.com', '.example.com', '10.0.0.5/32'):
        errs = hba(contype='hostssl', databases='all', users='all', source=source, method='trust')
        assert len(errs) == 1 and 'network_logins_without_password' in errs[0], source


def test_ident_over_the_network_and_weak_methods():
    errs = hba(contype='hostssl', databases='app', users='app', source='10.0.0.0/24', method='ident')
    assert len(errs) == 1 and 'ident over the network' in errs[0] and 'network_logins_without_password' in errs[0]
    for method in ('password', 'md5'):
        errs = hba(contype='hostssl', databases='app', users='app', source='10.0.0.0/24', method=method)
        assert len(errs) == 1 and 'weak_password_methods' in errs[0] and 'scram-sha-256' in errs[0]
    # the module's own default method is md5
    errs = hba(contype='hostssl', databases='app', users='app', source='10.0.0.0/24')
    assert len(errs) == 1 and 'method md5' in errs[0]


def test_plain_host_entries_with_passwords_are_refused():
    for contype in ('host', 'hostnossl', 'hostnogssenc'):
        errs = hba(contype=contype, databases='app', users='app', source='10.0.0.0/24', method='scram-sha-256')
        assert len(errs) == 1, contype
        assert 'a plain %s entry also matches connections without TLS' % contype in errs[0]
        assert 'passwords_without_tls' in errs[0] and 'hostssl' in errs[0]
    errs = hba(contype='host', databases='app', users='app', source='10.0.0.0/24', method='md5')
    assert len(errs) == 2   # weak and without TLS, each named
    assert safety.hba_errors([{'contype': 'host', 'databases': 'app', 'users': 'app', 'source': '10.0.0.0/24',
                               'method': 'md5'}], accepted=['weak_password_methods', 'passwords_without_tls']) == []


def test_local_trust_is_refused_and_loopback_trust_too():
    errs = hba(contype='local', databases='all', users='all', method='trust')
    assert len(errs) == 1 and 'local_logins_as_anyone' in errs[0] and 'every account on the host' in errs[0]
    errs = hba(contype='host', databases='all', users='all', source='127.0.0.1/32', method='trust')
    assert len(errs) == 1 and 'local_logins_as_anyone' in errs[0]
    errs = hba(contype='host', databases='all', users='all', source='samehost', method='trust')
    assert len(errs) == 1 and 'local_logins_as_anyone' in errs[0]
    assert safety.hba_errors([{'contype': 'local', 'databases': 'all', 'users': 'all', 'method': 'trust'}],
                             accepted=['local_logins_as_anyone']) == []


def test_fields_that_would_break_the_line():
    errs = hba(contype='hostssl', databases='app', users='app\nhost all all 0.0.0.0/0 trust', source='10.0.0.0/24',
               method='scram-sha-256')
    assert len(errs) == 1 and 'users holds a space, a newline' in errs[0]
    errs = hba(contype='hostssl', databases='app db', users='app', source='10.0.0.0/24', method='scram-sha-256')
    assert 'databases holds' in errs[0]
    errs = hba(contype='hostssl', databases='app', users='app', source='10.0.0.0/24', method='scram-sha-256',
               options='clientcert=verify-full\nlocal all all trust')
    assert 'options holds' in errs[0]


def test_shape_errors():
    assert 'must be a list' in safety.hba_errors({'contype': 'local'})[0]
    assert 'must be a dict' in safety.hba_errors(['local all all trust'])[0]
    assert 'unknown keys user' in safety.hba_errors([{'contype': 'local', 'user': 'x'}])[0]
    assert "contype 'hots' is not a pg_hba connection type" in hba(contype='hots', method='scram-sha-256')[0]
    assert "contype None" in hba(method='scram-sha-256')[0]
    assert 'peer works on local connections only' in hba(contype='hostssl', source='10.0.0.0/24', method='peer')[0]
    assert 'cert needs a TLS connection' in hba(contype='host', source='10.0.0.0/24', method='cert')[0]


def test_source_is_local():
    assert safety.source_is_local('127.0.0.1/32') and safety.source_is_local('127.0.0.0/8')
    assert safety.source_is_local('::1/128') and safety.source_is_local('samehost')
    assert safety.source_is_local('127.0.0.1', '255.255.255.255')
    assert not safety.source_is_local('127.0.0.1', '0.0.0.0')
    assert not safety.source_is_local('0.0.0.0/0') and not safety.source_is_local('::/0')
    assert not safety.source_is_local('all') and not safety.source_is_local('samenet')


# --------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------

def test_durability_settings_are_refused():
    errs = safety.settings_risk_errors({'fsync': 'off', 'full_page_writes': False}, {})
    assert len(errs) == 2
    assert errs[0].startswith('postgresql_settings.fsync=off is refused: a crash of the host can corrupt')
    assert 'add data_corruption to postgresql_accepted_risks' in errs[0]
    assert errs[1].startswith('postgresql_settings.full_page_writes=off is refused')
    assert safety.settings_risk_errors({'fsync': 'off', 'full_page_writes': False}, {},
                                       accepted=['data_corruption']) == []
    errs = safety.settings_risk_errors({}, {'zero_damaged_pages': 'on', 'ignore_checksum_failure': True,
                                            'data_sync_retry': 'yes'})
    assert len(errs) == 3 and all(e.startswith('postgresql_host_settings.') for e in errs)
    # safe values and case-insensitive names
    assert safety.settings_risk_errors({'FSync': 'on', 'full_page_writes': True, 'zero_damaged_pages': 'off'}, {}) == []
    assert len(safety.settings_risk_errors({'FSync': 'off'}, {})) == 1


def test_synchronous_commit_weaker_than_the_mode():
    errs = safety.settings_risk_errors({'synchronous_commit': 'local'}, {}, synchronous_mode='any')
    assert len(errs) == 1
    assert 'postgresql_settings.synchronous_commit=local is refused with postgresql_synchronous_mode=any' in errs[0]
    assert 'acknowledged_commit_loss' in errs[0] and 'remote_write' in errs[0]
    assert safety.settings_risk_errors({'synchronous_commit': 'local'}, {}, synchronous_mode='off') == []
    for value in ('on', 'remote_apply', 'remote_write'):
        assert safety.settings_risk_errors({'synchronous_commit': value}, {}, synchronous_mode='first') == []
    # off loses acknowledged commits on a crash, with or without standbys
    for mode in ('off', 'any'):
        errs = safety.settings_risk_errors({}, {'synchronous_commit': False}, synchronous_mode=mode)
        assert len(errs) == 1 and errs[0].startswith('postgresql_host_settings.synchronous_commit=false')
    assert safety.settings_risk_errors({'synchronous_commit': 'off'}, {}, synchronous_mode='any',
                                       accepted=['acknowledged_commit_loss']) == []


def test_wal_retention_passwords_in_the_log_and_read_only():
    errs = safety.settings_risk_errors({'max_slot_wal_keep_size': -1}, {})
    assert len(errs) == 1 and 'unbounded_wal_retention' in errs[0] and "disk is full" in errs[0]
    assert safety.settings_risk_errors({'max_slot_wal_keep_size': '-1'}, {}, accepted=['unbounded_wal_retention']) == []
    for value in ('ddl', 'mod', 'all', 'ALL'):
        errs = safety.settings_risk_errors({'log_statement': value}, {})
        assert len(errs) == 1 and 'passwords_in_server_log' in errs[0], value
    assert safety.settings_risk_errors({'log_statement': 'none', 'log_min_duration_statement': 250}, {}) == []
    errs = safety.settings_risk_errors({'log_min_duration_statement': 0}, {})
    assert len(errs) == 1 and 'it logs every statement' in errs[0]
    errs = safety.settings_risk_errors({'default_transaction_read_only': 'on'}, {})
    assert len(errs) == 1 and "write through the VIP would fail" in errs[0]
    errs = safety.settings_risk_errors({'wal_log_hints': 'off'}, {}, data_checksums=False)
    assert len(errs) == 1 and 'pg_rewind' in errs[0]
    assert safety.settings_risk_errors({'wal_log_hints': 'off'}, {}, data_checksums=True) == []


def test_the_baseline_and_addon_alone_are_never_refused():
    # only what the user sets is judged: the addon's own values pass
    assert safety.settings_risk_errors({}, {}, addon={'wal_level': 'logical', 'synchronous_commit': 'local'},
                                       synchronous_mode='any') == []


def test_a_setting_another_role_needs():
    errs = safety.settings_risk_errors({'wal_level': 'replica'}, {}, addon={'wal_level': 'logical'})
    assert errs == ['postgresql_settings.wal_level=replica is refused: the logical role needs wal_level=logical. '
                    'Fix: remove it.']
    assert safety.settings_risk_errors({'wal_level': 'logical'}, {}, addon={'wal_level': 'logical'}) == []
    assert safety.settings_risk_errors({'wal_level': 'replica'}, {}, addon={}) == []


def test_unknown_risks_are_known_to_the_spec():
    # the argument spec's choices are exactly these names
    import os
    import yaml
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
    with open(os.path.join(root, 'roles', 'postgresql', 'meta', 'argument_specs.yml')) as f:
        spec = yaml.safe_load(f)['argument_specs']['main']['options']['postgresql_accepted_risks']
    assert sorted(spec['choices']) == sorted(safety.RISKS)
    with open(os.path.join(root, 'roles', 'postgresql', 'defaults', 'main.yml')) as f:
        defaults = f.read()
    for risk in safety.RISKS:
        assert risk in defaults


# --------------------------------------------------------------------------
# replication role, sslmode, VIP conflicts
# --------------------------------------------------------------------------

def test_replication_role():
    assert safety.replication_role_errors('replicator', 'a-good-secret') == []
    errs = safety.replication_role_errors('postgres', 'a-good-secret')
    assert len(errs) == 1 and 'postgresql_replication_user=postgres is refused: it is a superuser' in errs[0]
    errs = safety.replication_role_errors('admin', None, superuser_in_cluster=True)
    assert len(errs) == 1 and 'postgresql_replication_user=admin is refused: it is a superuser' in errs[0]
    assert 'PostgreSQL\'s own' in safety.replication_role_errors('pg_monitor', 'x' * 10)[0]
    for bad in ('repl user', 'Repl', 'r:1', '', 'a' * 64):
        assert 'is refused: use 1-63 lower-case letters' in safety.replication_role_errors(bad, 'x' * 10)[0], bad
    errs = safety.replication_role_errors('replicator', 'secret\nline2')
    assert len(errs) == 1 and 'newline' in errs[0] and 'line2' not in errs[0]


def test_sslmode():
    assert safety.sslmode_errors('pg_replica_sslmode', 'require') == []
    for mode in ('disable', 'allow', 'prefer', 'verify-ca', 'verify-full', 'bogus'):
        errs = safety.sslmode_errors('pg_replica_sslmode', mode)
        assert len(errs) == 1 and errs[0].startswith('pg_replica_sslmode=%s is refused' % mode), mode
        assert 'Fix: require' in errs[0]
    assert 'hostssl' in safety.sslmode_errors('x', 'disable')[0]
    assert 'snakeoil' in safety.sslmode_errors('x', 'verify-full')[0]


def test_host_macs():
    hv = {'ansible_facts': {'interfaces': ['lo', 'eth0', 'eth-1'], 'lo': {'macaddress': '00:00:00:00:00:00'},
                            'eth0': {'macaddress': 'AA:BB:CC:00:00:01'}, 'eth_1': {'macaddress': 'aa:bb:cc:00:00:02'}}}
    assert safety.host_macs(hv) == ['aa:bb:cc:00:00:01', 'aa:bb:cc:00:00:02']
    assert safety.host_macs({}) == [] and safety.host_macs(None) == []


def test_vip_conflicts():
    clean = [{'probes': [{'address': '10.0.0.100', 'answers': ['aa:00'], 'foreign': [], 'holders': []}]}, {}]
    assert safety.vip_conflict_errors('keepalived_writer_vip', '10.0.0.100/24', clean, 'a cluster member') == []
    taken = clean + [{'probes': [{'address': '10.0.0.100', 'answers': ['bb:00'], 'foreign': ['bb:00'],
                                  'holders': ['spare1']}]}]
    errs = safety.vip_conflict_errors('keepalived_writer_vip', '10.0.0.100/24', taken, 'a cluster member')
    assert len(errs) == 1
    assert errs[0].startswith('keepalived_writer_vip=10.0.0.100/24 already answers on the network, from spare1 '
                              '(MAC bb:00), which is not a cluster member')
    assert 'Fix: choose a free address for keepalived_writer_vip, or take 10.0.0.100 off that host' in errs[0]
    unnamed = [{'probes': [{'address': '10.0.0.100', 'foreign': ['cc:00'], 'holders': []}]}]
    errs = safety.vip_conflict_errors('v', '10.0.0.100/24', unnamed, 'x')
    assert 'from a host outside the inventory (MAC cc:00)' in errs[0]
    # another address's answers do not count
    assert safety.vip_conflict_errors('keepalived_reader_vip', '10.0.0.101/24', taken, 'a cluster member') == []


@pytest.mark.parametrize('risk', sorted(safety.RISKS))
def test_every_risk_says_what_it_costs(risk):
    assert len(safety.RISKS[risk]) > 30


def test_identity():
    assert safety.identity_errors('main', 'C.UTF-8', ['postgresql-17-cron', 'pg-activity=3.5.1-1']) == []
    errs = safety.identity_errors('my cluster', 'C.UTF-8; rm', ['-oAPT::Get::x', 'Bad_Name'])
    assert len(errs) == 3
    assert errs[0].startswith("postgresql_cluster_name 'my cluster' is refused")
    assert errs[1].startswith("postgresql_locale 'C.UTF-8; rm' is not a locale name")
    assert "'-oAPT::Get::x', 'Bad_Name'" in errs[2] and 'reach apt as an option' in errs[2]
    assert 'postgresql_cluster_name' in safety.identity_errors('a/b', 'C', [])[0]

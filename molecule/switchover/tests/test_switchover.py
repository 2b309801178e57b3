"""Planned switchover there and back, with a client writing through the writer
VIP the whole time: no acknowledged commit lost, roles swapped, VIP followed,
and the window during which writes were refused measured."""

import pgha_testlib as lib

WRITER_VIP = '10.89.71.100'
IPS = {'switchover-pg1': '10.89.71.11', 'switchover-pg2': '10.89.71.12', 'switchover-pg3': '10.89.71.13'}
APP_PASSWORD = 'switchover-app-secret'
STATE = {}


def node(name):
    return lib.host(name)


def vip_holders():
    return [n for n in sorted(IPS) if lib.holds_address(node(n), WRITER_VIP)]


def switch(inventory, *extra):
    writer = lib.Writer(WRITER_VIP, APP_PASSWORD, STATE.get('next_id', 1))
    writer.start()
    lib.wait_for(lambda: len(writer.acked) >= 50, timeout=30, what='writes before the switchover')
    if inventory:
        proc = lib.run_playbook_with(inventory, 'switchover.yml', *extra)
    else:
        proc = lib.run_playbook('switchover.yml', *extra)
    after = len(writer.acked)
    lib.wait_for(lambda: len(writer.acked) >= after + 20, timeout=30, what='writes after the switchover')
    writer.stop.set()
    writer.join(10)
    STATE['next_id'] = writer.next_id + 1
    return proc, writer


def all_acked_present(primary, acked):
    assert len(acked) > 50
    return not lib.missing_ids(node(primary), acked)


def test_setup_and_check_mode_plan():
    assert lib.current_primary(IPS) == 'switchover-pg1'
    lib.wait_for(lambda: vip_holders() == ['switchover-pg1'], timeout=30, what='writer VIP on pg1')
    lib.psql(node('switchover-pg1'), 'CREATE TABLE acked (id int PRIMARY KEY)', db='app')
    lib.psql(node('switchover-pg1'), 'GRANT INSERT, SELECT ON acked TO app', db='app')
    proc = lib.run_playbook('switchover.yml', '--check', '-e', 'switchover_candidate=switchover-pg2')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'DECISION: SWITCHOVER' in proc.stdout and 'CHECK MODE' in proc.stdout
    assert lib.current_primary(IPS) == 'switchover-pg1'


def test_switchover_to_pg2_loses_nothing(tmp_path):
    proc, writer = switch(None, '-e', 'switchover_candidate=switchover-pg2')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'SWITCHOVER SUMMARY' in proc.stdout and 'data loss     : none' in proc.stdout
    assert lib.current_primary(IPS) == 'switchover-pg2'
    assert vip_holders() == ['switchover-pg2']
    assert all_acked_present('switchover-pg2', writer.acked)
    for other in ('switchover-pg1', 'switchover-pg3'):
        lib.wait_for(lambda: lib.psql(node(other), 'SELECT status, sender_host FROM pg_stat_wal_receiver')
                     == 'streaming|%s' % IPS['switchover-pg2'], timeout=60, what='%s follows pg2' % other)
    STATE['inventory'] = lib.write_inventory(tmp_path, ['switchover-pg2'], ['switchover-pg1', 'switchover-pg3'])
    print('client saw writes refused for %.1fs' % writer.window())


def test_switchover_back_to_pg1_loses_nothing():
    proc, writer = switch(STATE['inventory'], '-e', 'switchover_candidate=switchover-pg1')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.current_primary(IPS) == 'switchover-pg1'
    assert vip_holders() == ['switchover-pg1']
    assert all_acked_present('switchover-pg1', writer.acked)
    # every node ends with the same rows
    lib.psql(node('switchover-pg1'), 'INSERT INTO acked (id) VALUES (-1)', db='app')
    for n in sorted(IPS):
        lib.wait_for(lambda: lib.psql(node(n), 'SELECT count(*) FROM acked WHERE id = -1', db='app') == '1',
                     timeout=30, what='last row on %s' % n)
    digests = {n: lib.table_digest(node(n), 'acked') for n in sorted(IPS)}
    assert len(set(digests.values())) == 1, digests
    print('client saw writes refused for %.1fs' % writer.window())

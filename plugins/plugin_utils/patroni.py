# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Patroni's dynamic configuration (the part it keeps in etcd, shared by every member) from the collection's
variables, and what of it must change on a running cluster.

- PRESETS: the timing presets of patroni_rto (ttl, loop_wait, retry_timeout). A leader that cannot renew its
  lock within ttl seconds demotes itself; a replica takes the lock after it expired, at its next loop.
  Patroni requires ttl >= loop_wait + 2 * retry_timeout, and ttl >= 20.
- dcs_config(): the dynamic configuration for one preset, synchronous replication mapped from
  postgresql_synchronous_* and the parameters every member must share (PATRONI_SHARED_PARAMETERS, which Patroni
  puts on the postmaster's command line from the DCS and which must therefore come from the collection's
  settings, not Patroni's own defaults).
- config_patch(): the keys of a wanted configuration that differ from the running one (Patroni's GET /config),
  for a PATCH /config that changes only those: site.yml stays the source of truth and changes nothing when
  nothing differs.

Pure Python; unit-tested in tests/unit/plugins/plugin_utils/test_patroni.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

#: patroni_rto: (ttl, loop_wait, retry_timeout) in seconds.
PRESETS = {
    'fast': (20, 5, 5),
    'default': (30, 10, 10),
    'safe': (60, 10, 25),
}

#: Parameters Patroni takes from its dynamic configuration for every member alike.
PATRONI_SHARED_PARAMETERS = (
    'hot_standby', 'max_connections', 'max_locks_per_transaction', 'max_prepared_transactions',
    'max_replication_slots', 'max_wal_senders', 'max_worker_processes', 'track_commit_timestamp',
    'wal_keep_size', 'wal_level', 'wal_log_hints',
)

#: postgresql_synchronous_mode -> Patroni's synchronous_mode.
SYNCHRONOUS_MODES = {'off': False, 'first': True, 'any': 'quorum'}


def preset(name):
    """(ttl, loop_wait, retry_timeout) of a preset; ValueError naming the choices for an unknown one."""
    if name not in PRESETS:
        raise ValueError('patroni_rto must be one of %s, not %r' % (', '.join(sorted(PRESETS)), name))
    return PRESETS[name]


def worst_case_seconds(name):
    """The longest a dead leader's lock can still be held plus one replica loop: an upper bound of the time from a
    primary's death to a replica's decision to take over (promotion and the VIP come after)."""
    ttl, loop_wait, _retry = preset(name)
    return ttl + loop_wait


def shared_parameters(file_settings):
    """{name: value} of PATRONI_SHARED_PARAMETERS from [{name, setting}] (pg_file_settings rows of the
    collection's own files; a later row wins, as in PostgreSQL)."""
    out = {}
    for row in file_settings or []:
        name = str(row.get('name', '')).lower()
        if name in PATRONI_SHARED_PARAMETERS:
            out[name] = str(row.get('setting'))
    return out


def dcs_config(rto='default', synchronous_mode='off', synchronous_count=1, strict=False,
               maximum_lag_on_failover=1048576, parameters=None):
    """Patroni's dynamic configuration for the cluster."""
    ttl, loop_wait, retry_timeout = preset(rto)
    if synchronous_mode not in SYNCHRONOUS_MODES:
        raise ValueError('postgresql_synchronous_mode must be one of %s, not %r'
                         % (', '.join(sorted(SYNCHRONOUS_MODES)), synchronous_mode))
    sync = SYNCHRONOUS_MODES[synchronous_mode]
    config = {
        'ttl': ttl,
        'loop_wait': loop_wait,
        'retry_timeout': retry_timeout,
        'maximum_lag_on_failover': int(maximum_lag_on_failover),
        'synchronous_mode': sync,
        'synchronous_mode_strict': bool(strict) if sync else False,
        'synchronous_node_count': int(synchronous_count),
        'failsafe_mode': False,
        # The collection's own slots (the backup host's, the subscribers') are its roles' to keep: Patroni
        # keeps the members' slots and drops none of the others.
        'ignore_slots': [{'type': 'physical'}, {'type': 'logical'}],
        'postgresql': {
            'use_pg_rewind': True,
            'use_slots': True,
            'parameters': dict(parameters or {}),
        },
    }
    return config


def _same(current, wanted):
    if isinstance(wanted, dict):
        if not isinstance(current, dict):
            return False
        return all(_same(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and len(current) == len(wanted) and all(
            _same(c, w) for c, w in zip(current, wanted))
    if isinstance(wanted, bool) or isinstance(current, bool):
        return str(current).lower() == str(wanted).lower()
    return str(current) == str(wanted)


def config_patch(current, wanted):
    """The part of wanted that differs from current (nested dicts compared key by key, values as text), {} when
    nothing differs: the body of a PATCH /config."""
    patch = {}
    current = current or {}
    for key, value in wanted.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            sub = config_patch(current.get(key), value)
            if sub:
                patch[key] = sub
        elif not _same(current.get(key), value):
            patch[key] = value
    return patch

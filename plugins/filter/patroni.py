# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over plugins/plugin_utils/patroni.py: Patroni's dynamic configuration from the collection's
variables, and the change a running cluster needs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.pgha.cluster.plugins.plugin_utils import patroni


def patroni_dcs_config(parameters, rto='default', synchronous_mode='off', synchronous_count=1, strict=False,
                       maximum_lag_on_failover=1048576):
    """parameters (the shared ones, patroni_shared_parameters) | patroni_dcs_config(rto, ...)."""
    try:
        return patroni.dcs_config(rto, synchronous_mode, synchronous_count, strict, maximum_lag_on_failover,
                                  parameters)
    except ValueError as e:
        raise AnsibleFilterError(str(e))


def patroni_shared_parameters(file_settings):
    """pg_file_settings rows | patroni_shared_parameters: the parameters every member shares."""
    return patroni.shared_parameters(file_settings)


def patroni_config_patch(current, wanted):
    """GET /config's answer | patroni_config_patch(wanted): what a PATCH /config must send ({} for nothing)."""
    return patroni.config_patch(current, wanted)


class FilterModule(object):
    def filters(self):
        return {
            'patroni_config_patch': patroni_config_patch,
            'patroni_dcs_config': patroni_dcs_config,
            'patroni_shared_parameters': patroni_shared_parameters,
        }

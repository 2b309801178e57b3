# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over plugins/plugin_utils/safety.py and specs.py: the inputs site.yml's preflight
refuses because they would silently break the collection's promises (open access, lost
durability, broken replication, a stolen VIP), numeric variables outside their bounds, and
misspelled variable names. Each returns a list of messages; [] when the input is good."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.cluster.plugins.filter import validate
from ansible_collections.pgha.cluster.plugins.plugin_utils import safety, specs


def _hostvar(hostvars, host, name):
    try:
        hv = hostvars[host]
        return (True, hv[name]) if name in hv else (False, None)
    except KeyError:
        return (False, None)


def _group_values(hostvars, hosts, names):
    """{name: [(value, [hosts])]} for the names set on the hosts, hosts with one value grouped."""
    out = {}
    for host in hosts or []:
        for name in names:
            found, value = _hostvar(hostvars, host, name)
            if not found:
                continue
            groups = out.setdefault(name, [])
            for item in groups:
                if item[0] == value:
                    item[1].append(host)
                    break
            else:
                groups.append((value, [host]))
    return out


def _hosts_text(hosts, every):
    if len(hosts) == len(every) and len(every) > 1:
        return []
    return hosts[:3] + (['and %d more' % (len(hosts) - 3)] if len(hosts) > 3 else [])


def variable_bounds_errors(hostvars, hosts):
    """Numeric variables of the collection, as the inventory and extra vars set them on the hosts, outside
    the bounds their specs state (roles: "Bounds: ..." in the argument spec's description; runbooks:
    survey min/max)."""
    bounds = specs.bounded_variables()
    errors = []
    for name, groups in sorted(_group_values(hostvars, hosts, sorted(bounds)).items()):
        for value, on in groups:
            errors += specs.bounds_errors({name: (value, _hosts_text(on, hosts))}, bounds)
    return errors


def unknown_variable_errors(hostvars, hosts):
    """Variables of the inventory (and extra vars) with a role's prefix that no role or runbook of the
    collection reads, each with the closest known name."""
    names = set()
    for host in hosts or []:
        try:
            names.update(k for k in hostvars[host].keys() if isinstance(k, str) and k.startswith(specs.ROLE_PREFIXES))
        except KeyError:
            continue
    return specs.unknown_messages(specs.unknown_variables(names, specs.known_variables()))


def probe_candidates(hostvars, hosts):
    """[{name, address}] for every host of hosts with a known IP address (its member address: the inventory's,
    the gathered facts', or an ansible_host that is an IP): who address_probe may name as the holder of a VIP."""
    out = []
    for host in hosts or []:
        try:
            address = validate.member_address(hostvars[host])
        except KeyError:
            continue
        if address:
            out.append({'name': host, 'address': address})
    return out


class FilterModule(object):
    def filters(self):
        return {
            'hba_errors': safety.hba_errors,
            'host_macs': safety.host_macs,
            'identity_errors': safety.identity_errors,
            'probe_candidates': probe_candidates,
            'replication_role_errors': safety.replication_role_errors,
            'settings_risk_errors': safety.settings_risk_errors,
            'sslmode_errors': safety.sslmode_errors,
            'unknown_variable_errors': unknown_variable_errors,
            'variable_bounds_errors': variable_bounds_errors,
            'vip_conflict_errors': safety.vip_conflict_errors,
        }

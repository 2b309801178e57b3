"""The cron filters: one schedule for pg_cron and systemd timers."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.cron import (
    FilterModule, cron_error, cron_max_gap, cron_to_oncalendar, parse)


def test_filters_are_exported():
    assert FilterModule().filters() == {'cron_error': cron_error, 'cron_to_oncalendar': cron_to_oncalendar,
                                        'cron_max_gap': cron_max_gap}


@pytest.mark.parametrize('expr, expected', [
    ('0 1 * * 0', 'Sun *-*-* 01:00:00'),
    ('0 1 * * 7', 'Sun *-*-* 01:00:00'),
    ('30 2 * * 1-5', 'Mon..Fri *-*-* 02:30:00'),
    ('0 1 * * 1-6', 'Mon..Sat *-*-* 01:00:00'),
    ('0 3 * * mon,wed,fri', 'Mon,Wed,Fri *-*-* 03:00:00'),
    ('0 3 * * 0,6', 'Sun,Sat *-*-* 03:00:00'),
    ('*/15 * * * *', '*-*-* *:00,15,30,45:00'),
    ('* * * * *', '*-*-* *:*:00'),
    ('5 */6 * * *', '*-*-* 00,06,12,18:05:00'),
    ('0 4 1 * *', '*-*-01 04:00:00'),
    ('0 4 1,15 jan-mar *', '*-01,02,03-01,15 04:00:00'),
    ('10-20/5 0 * * *', '*-*-* 00:10,15,20:00'),
    ('@daily', '*-*-* 00:00:00'),
    ('@hourly', '*-*-* *:00:00'),
    ('@weekly', 'Sun *-*-* 00:00:00'),
    ('  0  1  *  *  0 ', 'Sun *-*-* 01:00:00'),
])
def test_cron_to_oncalendar(expr, expected):
    assert cron_error(expr) == ''
    assert cron_to_oncalendar(expr) == expected


@pytest.mark.parametrize('expr, words', [
    ('0 1 * *', 'has 4 fields'),
    ('0 1 * * * *', 'has 6 fields'),
    ('60 1 * * *', 'minute: 60 is out of range'),
    ('0 24 * * *', 'hour: 24 is out of range'),
    ('0 0 0 * *', 'day of month: 0 is out of range'),
    ('0 0 * 13 *', 'month: 13 is out of range'),
    ('0 0 * * 8', 'day of week: 8 is out of range'),
    ('0 0 1 * 1', 'restricts both the day of month and the day of week'),
    ('0 5-1 * * *', 'runs backwards'),
    ('*/0 * * * *', 'a step of 0'),
    ('x * * * *', "minute: 'x' is not a number"),
    ('1,,2 * * * *', 'is not a value'),
    ('30 seconds', 'has 2 fields'),
    ('', 'has 0 fields'),
])
def test_cron_error_names_the_problem(expr, words):
    assert words in cron_error(expr)
    with pytest.raises(AnsibleFilterError, match='cron_to_oncalendar'):
        cron_to_oncalendar(expr)


def test_not_a_string():
    assert 'must be a string' in cron_error(5)


def test_parse_star_and_sunday_seven():
    assert parse('* * * * 7') == [None, None, None, None, [0]]
    assert parse('0 0 * * 0-7')[4] == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize('expr,seconds', [
    ('0 1 * * 0', 7 * 86400),            # weekly
    ('0 1 * * 1-6', 2 * 86400),          # Saturday 01:00 -> Monday 01:00
    ('0 */4 * * *', 4 * 3600),
    ('30 2 * * *', 86400),
    ('@daily', 86400),
    ('0 0 1 * *', 31 * 86400),           # monthly: the longest month
    ('0 0 29 2 *', 1461 * 86400),        # leap days only
    ('15,45 * * * *', 30 * 60),
])
def test_cron_max_gap(expr, seconds):
    assert cron_max_gap(expr) == seconds


def test_cron_max_gap_of_a_schedule_that_never_runs_and_of_a_bad_one():
    assert cron_max_gap('0 0 31 2 *') is None
    with pytest.raises(AnsibleFilterError, match='cron_max_gap'):
        cron_max_gap('0 1 * *')

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cron schedules for the backup role: one syntax for both schedulers.

cron_error: '' for a 5-field cron expression pg_cron and systemd can both
run, else the reason in words. cron_to_oncalendar: the same schedule as a
systemd OnCalendar= expression. Pure functions: unit-tested in
tests/unit/plugins/filter/test_cron.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

MACROS = {
    '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *',
    '@weekly': '0 0 * * 0', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *',
}
# (name, lowest, highest, names accepted in place of numbers)
FIELDS = [
    ('minute', 0, 59, None),
    ('hour', 0, 23, None),
    ('day of month', 1, 31, None),
    ('month', 1, 12, ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']),
    ('day of week', 0, 7, ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']),
]
DOW_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']
_ITEM = re.compile(r'^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$')


class CronError(ValueError):
    pass


def _number(text, field):
    name, low, high, names = field
    if text.isdigit():
        value = int(text)
    elif names and text in names:
        value = names.index(text) + (1 if name == 'month' else 0)
    else:
        raise CronError('%s: %r is not a number' % (name, text))
    if not low <= value <= high:
        raise CronError('%s: %d is out of range %d-%d' % (name, value, low, high))
    return value


def _parse_field(text, field):
    """Return the sorted values one cron field selects, and whether it is '*'."""
    name, low, high, names = field
    if text == '*':
        return None
    values = set()
    for item in text.split(','):
        m = _ITEM.match(item)
        if not m:
            raise CronError('%s: %r is not a value, range, list or step' % (name, item))
        span, step = m.group(1), m.group(2)
        if step is not None and int(step) == 0:
            raise CronError('%s: a step of 0 in %r' % (name, item))
        step = int(step) if step else 1
        if span == '*':
            start, end = low, high
        elif '-' in span:
            a, b = span.split('-')
            start, end = _number(a, field), _number(b, field)
            if start > end:
                raise CronError('%s: the range %r runs backwards' % (name, item))
        else:
            start = _number(span, field)
            end = high if m.group(2) else start
        values.update(range(start, end + 1, step))
    if name == 'day of week':
        values = set(0 if v == 7 else v for v in values)
    return sorted(values)


def parse(expr):
    """[minutes, hours, days, months, weekdays]: each a sorted list, or None for '*'."""
    if not isinstance(expr, str):
        raise CronError('a schedule must be a string like "0 1 * * 0", not %r' % (expr,))
    text = MACROS.get(expr.strip().lower(), expr.strip().lower())
    parts = text.split()
    if len(parts) != 5:
        raise CronError('%r has %d fields; a schedule has 5: minute hour day-of-month month day-of-week '
                        '(for example "0 1 * * 0": Sundays at 01:00)' % (expr, len(parts)))
    fields = [_parse_field(p, f) for p, f in zip(parts, FIELDS)]
    if fields[2] is not None and fields[4] is not None:
        raise CronError('%r restricts both the day of month and the day of week; cron runs when EITHER '
                        'matches and systemd when BOTH do: restrict only one of them' % expr)
    return fields


def cron_error(expr):
    """'' when expr is a schedule both pg_cron and systemd can run, else why not."""
    try:
        parse(expr)
    except CronError as e:
        return str(e)
    return ''


def _join(values, width=2):
    return ','.join('%0*d' % (width, v) for v in values)


def _runs(values):
    """[(start, end)] for consecutive runs of a sorted list."""
    runs = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return runs


def cron_to_oncalendar(expr):
    """'30 2 * * 1-5' -> 'Mon..Fri *-*-* 02:30:00' (systemd.time(7) calendar event)."""
    try:
        minutes, hours, days, months, weekdays = parse(expr)
    except CronError as e:
        raise AnsibleFilterError('cron_to_oncalendar: %s' % e)
    dow = ''
    if weekdays is not None:
        dow = ','.join(DOW_NAMES[a] if a == b else '%s..%s' % (DOW_NAMES[a], DOW_NAMES[b])
                       for a, b in _runs(weekdays)) + ' '
    return '%s*-%s-%s %s:%s:00' % (
        dow,
        '*' if months is None else _join(months),
        '*' if days is None else _join(days),
        '*' if hours is None else _join(hours),
        '*' if minutes is None else _join(minutes))


def cron_max_gap(expr):
    """The longest time, in seconds, between two consecutive runs of a schedule (UTC), over
    the 8 years from 2024 (every leap-year and weekday combination); None when it never
    runs in them (say "0 0 31 2 *")."""
    import datetime
    try:
        minutes, hours, days, months, weekdays = parse(expr)
    except CronError as e:
        raise AnsibleFilterError('cron_max_gap: %s' % e)
    minutes = minutes if minutes is not None else list(range(60))
    hours = hours if hours is not None else list(range(24))
    epoch = datetime.datetime(1970, 1, 1)
    runs = []
    day = datetime.date(2024, 1, 1)
    while day.year < 2032:
        if ((months is None or day.month in months) and (days is None or day.day in days)
                and (weekdays is None or (day.weekday() + 1) % 7 in weekdays)):
            base = int((datetime.datetime(day.year, day.month, day.day) - epoch).total_seconds())
            runs.extend(base + h * 3600 + m * 60 for h in hours for m in minutes)
        day += datetime.timedelta(days=1)
    if len(runs) < 2:
        return None if not runs else 8 * 366 * 86400
    return max(b - a for a, b in zip(runs, runs[1:]))


class FilterModule(object):
    def filters(self):
        return {'cron_error': cron_error, 'cron_to_oncalendar': cron_to_oncalendar, 'cron_max_gap': cron_max_gap}

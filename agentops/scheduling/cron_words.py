"""Cron expressions in words, for the common forms: `0 9 * * 1-5` is "weekdays at 09:00". An expression outside
those forms has no words (None), and is shown as the expression alone."""

from __future__ import annotations

DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
NAMED = {name[:3].lower(): n for n, name in enumerate(DAYS)} | {"7": 0}


def cron_words(expression: str) -> str | None:
    """"weekdays at 09:00", "every 15 minutes", "on the 1st of every month at 06:30"; None for other forms."""
    fields = expression.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    try:
        when = _clock(minute, hour)
        if when is None:
            return None
        days = _days(dom, month, dow)
    except ValueError:
        return None
    if days is None:
        return None
    if when.startswith("every"):
        return when if days == "every day" else f"{when}, {days}"
    return f"{days} at {when}"


def _number(text: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(text)
    return int(text)


def _clock(minute: str, hour: str) -> str | None:
    """`09:00`, `09:00 and 17:00`, `every 15 minutes`, `every hour at :30`, `every 2 hours at :00`."""
    if minute == "*" and hour == "*":
        return "every minute"
    if minute.startswith("*/") and hour == "*":
        step = _number(minute[2:], 1, 59)
        return "every minute" if step == 1 else f"every {step} minutes"
    if not minute.isdigit():
        return None
    m = _number(minute, 0, 59)
    if hour == "*":
        return "every hour on the hour" if m == 0 else f"every hour at :{m:02d}"
    if hour.startswith("*/"):
        step = _number(hour[2:], 1, 23)
        return f"every {step} hours at :{m:02d}" if step > 1 else f"every hour at :{m:02d}"
    hours = [_number(h, 0, 23) for h in hour.split(",")]
    return _and([f"{h:02d}:{m:02d}" for h in hours])


def _days(dom: str, month: str, dow: str) -> str | None:
    if dom == "*" and month == "*":
        return _weekdays(dow)
    if dow != "*" or not dom.isdigit():
        return None
    day = _ordinal(_number(dom, 1, 31))
    if month == "*":
        return f"on the {day} of every month"
    return f"on {MONTHS[_number(month, 1, 12) - 1]} {_number(dom, 1, 31)}" if month.isdigit() else None


def _weekdays(dow: str) -> str | None:
    if dow == "*":
        return "every day"
    days = _day_set(dow)
    if days is None:
        return None
    if days == {1, 2, 3, 4, 5}:
        return "weekdays"
    if days == {0, 6}:
        return "weekends"
    if len(days) == 7:
        return "every day"
    order = sorted(days, key=lambda d: (d + 6) % 7)  # Monday first
    return "on " + _and([DAYS[d] + "s" for d in order]) if len(order) < 3 else "on " + _and([DAYS[d] for d in order])


def _day_set(dow: str) -> set[int] | None:
    days: set[int] = set()
    for part in dow.lower().split(","):
        if "-" in part:
            start, end = (_day(p) for p in part.split("-", 1))
            if start > end and end != 0:
                return None
            days.update(range(start, 7 if end == 0 else end + 1))
            if end == 0:
                days.add(0)
        else:
            days.add(_day(part))
    return days


def _day(text: str) -> int:
    if text in NAMED:
        return NAMED[text]
    return _number(text, 0, 6)


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

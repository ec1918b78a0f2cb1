"""The dated BR rules, checked on the day before and the day of each change."""

from __future__ import annotations

from datetime import date

import pytest

from ecert.core import rule_dates


@pytest.mark.parametrize(
    ("function", "day", "expected"),
    [
        (rule_dates.max_validity_days, date(2026, 3, 14), 398),
        (rule_dates.max_validity_days, date(2026, 3, 15), 200),
        (rule_dates.max_validity_days, date(2027, 3, 15), 100),
        (rule_dates.max_validity_days, date(2029, 3, 14), 100),
        (rule_dates.max_validity_days, date(2029, 3, 15), 47),
        (rule_dates.dcv_reuse_days, date(2026, 3, 15), 200),
        (rule_dates.dcv_reuse_days, date(2027, 3, 14), 200),
        (rule_dates.dcv_reuse_days, date(2027, 3, 15), 100),
        (rule_dates.dcv_reuse_days, date(2029, 3, 15), 10),
        (rule_dates.remote_perspectives_required, date(2026, 12, 14), 4),
        (rule_dates.remote_perspectives_required, date(2026, 12, 15), 5),
        (rule_dates.email_dcv_status, date(2026, 3, 14), "allowed"),
        (rule_dates.email_dcv_status, date(2026, 3, 15), "discouraged"),
        (rule_dates.email_dcv_status, date(2028, 3, 14), "discouraged"),
        (rule_dates.email_dcv_status, date(2028, 3, 15), "forbidden"),
    ],
)
def test_rule_on_the_day_before_and_the_day_of_each_change(function, day, expected) -> None:  # type: ignore[no-untyped-def]
    assert function(day) == expected


def test_every_row_cites_its_source() -> None:
    for table in (rule_dates.MAX_VALIDITY_DAYS, rule_dates.DCV_REUSE_DAYS, rule_dates.MPIC_REMOTE_PERSPECTIVES):
        assert all(row.source.startswith("BR ") for row in table)

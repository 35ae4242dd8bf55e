"""The six bioS attributes, in the seed's rule order (``rule_idx`` is the position here)."""

from __future__ import annotations

ATTRIBUTES: tuple[str, ...] = ("birth_date", "birth_city", "university", "major", "employer", "work_city")

MONTHS: tuple[str, ...] = ("January", "February", "March", "April", "May", "June", "July", "August",
                           "September", "October", "November", "December")

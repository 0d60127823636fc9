"""Supplier lead times learned from deliveries: from the day a purchase order was expected
(ExpectReplenishment) to the day it was received, with the product's lead time as the prior."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist, fmean

PRIOR_WEIGHT = 2  # the product's lead time counts as this many deliveries that came exactly on time
ETA_QUANTILE = 0.95  # ETAs promise the lead time that 19 deliveries in 20 keep
DELAY_SIGMAS = 2.0  # later than mean + 2 standard deviations is more than the usual spread explains


@dataclass(frozen=True, slots=True)
class Delivery:
    po_id: str
    ordered_on: date
    expected_on: date
    received_on: date

    @property
    def days(self) -> int:
        return (self.received_on - self.ordered_on).days


@dataclass(frozen=True, slots=True)
class LeadTime:
    mean: float
    std: float
    on_time_rate: float  # of deliveries received by their expected date; 1.0 without history
    deliveries: int
    quantile_days: int  # a high quantile: what an ETA resting on the lead time promises
    delay_days: int = 0  # a high quantile of the days deliveries came after their expected date

    @property
    def overdue_after_days(self) -> int:
        """Days after ordering beyond which a delivery is later than the spread explains."""
        return math.ceil(self.mean + DELAY_SIGMAS * self.std)


def learn(deliveries: Sequence[Delivery], prior_days: int) -> LeadTime:
    """Mean and spread of the lead time, shrunk towards the product's lead time while deliveries are few;
    without any, the product's lead time itself."""
    if not deliveries:
        return LeadTime(float(prior_days), 0.0, 1.0, 0, prior_days)
    days = [d.days for d in deliveries]
    weight = PRIOR_WEIGHT + len(days)
    mean = (PRIOR_WEIGHT * prior_days + sum(days)) / weight
    variance = (PRIOR_WEIGHT * (prior_days - mean) ** 2 + sum((x - mean) ** 2 for x in days)) / weight
    std = math.sqrt(variance)
    on_time = sum(d.received_on <= d.expected_on for d in deliveries) / len(deliveries)
    z = NormalDist().inv_cdf(ETA_QUANTILE)
    quantile = math.ceil(mean + z * std)
    # Lateness against the date promised, with the prior's deliveries as on time.
    late = [max(0, (d.received_on - d.expected_on).days) for d in deliveries] + [0] * PRIOR_WEIGHT
    late_mean = fmean(late)
    delay = math.ceil(late_mean + z * math.sqrt(fmean((x - late_mean) ** 2 for x in late)))
    return LeadTime(mean, std, on_time, len(days), max(quantile, 0), delay)


def days_overdue(lead: LeadTime, ordered_on: date, expected_on: date, today: date) -> int:
    """How many days a purchase order still open today is later than both its expected date and what the
    learned lead time and its spread explain; 0 when it is not."""
    explained = max((expected_on - ordered_on).days, lead.overdue_after_days)
    return max(0, (today - ordered_on).days - explained)

"""Demand forecasts with statsforecast: AutoETS with weekly seasonality (level, trend and season chosen by
information criterion) for regular demand, Croston (optimized) for intermittent demand, and the seasonal
naive forecast they are measured against. statsforecast is imported on first use: a service that never
forecasts never pays its start-up."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import fmean, pstdev

from services.inventory.planning.demand import is_intermittent

SEASON = 7  # days: weekly seasonality
WINDOW = 182  # days of history a forecast fits: half a year follows a trend and keeps fitting quick
MIN_HISTORY = 2 * SEASON  # fewer days than this: the plain mean is the forecast
# Croston learns the interval between demands: a history (starting at its first demand) with a single one
# has none, and Croston would forecast that demand every day. The plain mean it is, until a second one.
MIN_DEMANDS = 2
SPREAD_DAYS = 56  # the spread of daily demand around the fit is measured over the last 8 weeks
_START = date(2000, 1, 3)  # series are given as plain lists; statsforecast wants dates (a Monday)


@dataclass(frozen=True, slots=True)
class Forecast:
    daily: tuple[float, ...]  # expected demand on each of the next days
    std: float  # standard deviation of daily demand around the forecast (σd)
    method: str

    @property
    def rate(self) -> float:
        """Expected demand per day over the horizon."""
        return fmean(self.daily) if self.daily else 0.0

    def over(self, days: float) -> float:
        """Expected demand over the next `days` days (past the horizon at the horizon's rate)."""
        whole = int(days)
        known = sum(self.daily[:whole])
        return known + max(0.0, days - min(whole, len(self.daily))) * self.rate


def forecast(histories: Mapping[str, Sequence[float]], horizon: int) -> dict[str, Forecast]:
    """A forecast of the next `horizon` days for each SKU from its daily demand so far."""
    regular = {sku: s[-WINDOW:] for sku, s in histories.items() if len(s) >= MIN_HISTORY and not is_intermittent(s[-WINDOW:])}
    sparse = {sku: s[-WINDOW:] for sku, s in histories.items()
              if len(s) >= MIN_HISTORY and sku not in regular and sum(q > 0 for q in s[-WINDOW:]) >= MIN_DEMANDS}
    predicted = _predict(regular, horizon, "AutoETS") | _predict(sparse, horizon, "CrostonOptimized")
    result = {}
    for sku, series in histories.items():
        if sku in predicted:
            daily, spread = predicted[sku]
            result[sku] = Forecast(tuple(max(0.0, q) for q in daily), spread, "AutoETS" if sku in regular else "Croston")
        else:
            spread = pstdev(series[-SPREAD_DAYS:]) if len(series) > 1 else 0.0
            result[sku] = Forecast(tuple([fmean(series) if series else 0.0] * horizon), spread, "mean")
    return result


def seasonal_naive(histories: Mapping[str, Sequence[float]], horizon: int) -> dict[str, list[float]]:
    """Each day forecast as the same weekday a week before the last one known: the baseline."""
    return {sku: [s[len(s) - SEASON + (h % SEASON)] for h in range(horizon)] for sku, s in histories.items()}


def _predict(histories: Mapping[str, Sequence[float]], horizon: int, model: str
             ) -> dict[str, tuple[list[float], float]]:
    """The forecast of each series, and the spread of demand around the model: the standard deviation of
    the in-sample one-step errors for AutoETS (its weekly pattern and trend are not noise); of demand itself
    for Croston, whose level carries no pattern (and whose fitted values are costly)."""
    if not histories:
        return {}
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, CrostonOptimized

    models = {"AutoETS": lambda: AutoETS(season_length=SEASON, model="ZZA"), "CrostonOptimized": CrostonOptimized}
    frame = pd.DataFrame(
        [(sku, _START + timedelta(days=n), float(q)) for sku, s in histories.items() for n, q in enumerate(s)],
        columns=["unique_id", "ds", "y"])
    frame["ds"] = pd.to_datetime(frame["ds"])
    fitted = model == "AutoETS"
    forecaster = StatsForecast(models=[models[model]()], freq="D", n_jobs=1)
    predicted = forecaster.forecast(df=frame, h=horizon, fitted=fitted)
    if fitted:
        fits = forecaster.forecast_fitted_values()
        errors = {sku: (rows["y"] - rows[model]).tail(SPREAD_DAYS).tolist() for sku, rows in fits.groupby("unique_id")}
    else:
        errors = {sku: list(s[-SPREAD_DAYS:]) for sku, s in histories.items()}
    return {sku: (rows[model].tolist(), pstdev(errors[sku])) for sku, rows in predicted.groupby("unique_id")}


@dataclass(frozen=True, slots=True)
class Accuracy:
    wape: float  # sum |error| / sum demand, over every SKU and held-out day
    wape_naive: float  # the same for the seasonal naive forecast
    mase: float  # mean absolute error over the in-sample mean absolute error of the seasonal naive, mean of SKUs
    days: int


def backtest(histories: Mapping[str, Sequence[float]], holdout: int = 28, step: int = SEASON) -> Accuracy:
    """Forecast the last `holdout` days a week at a time, each week from the days before it only (as a
    weekly re-forecast would), and score against what happened."""
    errors: dict[str, list[float]] = {sku: [] for sku in histories}
    naive_errors: dict[str, list[float]] = {sku: [] for sku in histories}
    demand = 0.0
    for origin in range(-holdout, 0, step):
        known = {sku: list(s[:origin]) for sku, s in histories.items()}
        h = min(step, -origin)
        predicted = forecast(known, h)
        naive = seasonal_naive(known, h)
        for sku, s in histories.items():
            actual = s[len(s) + origin:len(s) + origin + h]
            demand += sum(actual)
            errors[sku] += [abs(a - p) for a, p in zip(actual, predicted[sku].daily)]
            naive_errors[sku] += [abs(a - p) for a, p in zip(actual, naive[sku])]
    mases = []
    for sku, s in histories.items():
        train = s[:-holdout]
        scale = fmean(abs(train[n] - train[n - SEASON]) for n in range(SEASON, len(train))) if len(train) > SEASON else 0
        if scale > 0:
            mases.append(fmean(errors[sku]) / scale)
    wape = sum(map(sum, errors.values())) / demand if demand else 0.0
    wape_naive = sum(map(sum, naive_errors.values())) / demand if demand else 0.0
    return Accuracy(wape, wape_naive, fmean(mases) if mases else 0.0, holdout)

"""Reads for the portfolio page: which runs to show, and a run's result shaped for display.

The result document is the DESIGN.md CLI JSON plus optional keys (summary, relaxations, est_costs,
est_taxes, stress, backtest, views, unpriced; since issue 15 notes, orders, funds_bought, tradeoffs, tax_budget,
tax_spent_usd and before/after volatility_sample). Everything here degrades gracefully when a key is
missing or has an unexpected shape: the page shows what the run carries and never errors.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.db.models import CharField, DateField, Func, IntegerField, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT
from django.utils import timezone

from portfolios.compiled_query import CompiledQuery
from portfolios.marketdata.selectors import prices_are_stale
from portfolios.models import Account, DriftCheck, ExecutedPlan, Holding, Portfolio, Price, RebalanceRun

ACTIVE_STATUSES = (RebalanceRun.Status.PENDING, RebalanceRun.Status.RUNNING)
# A pending run older than this has probably not reached a worker (broker or worker down).
PENDING_SLOW_SECONDS = 60
POLL_SECONDS_FAST = 2
POLL_SECONDS_SLOW = 10

SIZE_ORDER = ("large", "mid", "small")
SIZE_LABELS = {"large": "Large cap", "mid": "Mid cap", "small": "Small cap", "total": "Total market"}
ASSET_CLASS_ORDER = ("equity", "bond", "commodity", "cash")
ASSET_CLASS_LABELS = {"equity": "Stocks", "bond": "Bonds", "commodity": "Commodities", "cash": "Cash"}
LIMIT_LABELS = {
    "volatility_cap": "Volatility cap",
    "max_turnover": "Maximum turnover",
    "max_single_stock": "Maximum single-stock weight",
    "max_sector": "Maximum sector weight",
    "min_small_cap": "Minimum small-cap exposure",
    "min_financials": "Minimum financials exposure",
    "cash": "Cash floor",
}


# --- which runs the page shows ---------------------------------------------------------------


@dataclass(frozen=True)
class PortfolioPageState:
    portfolio: Portfolio
    has_holdings: bool
    active_run: RebalanceRun | None  # newest pending/running run, if any
    queued_after_active: bool  # a pending run waits behind a running one
    shown_run: RebalanceRun | None  # newest done run: its result stays visible while others work or fail
    failed_run: RebalanceRun | None  # newest failed run when it is newer than shown_run
    latest_run: RebalanceRun | None
    history: list[RebalanceRun] = field(default_factory=list)

    @property
    def polling(self) -> bool:
        return self.active_run is not None

    @property
    def pending_slow(self) -> bool:
        """The active run has been waiting for a worker for a while (broker or worker down)."""
        run = self.active_run
        if run is None or run.status != RebalanceRun.Status.PENDING:
            return False
        return (timezone.now() - run.created_at).total_seconds() > PENDING_SLOW_SECONDS

    @property
    def queue_unreachable(self) -> bool:
        """The active run is pending and the task queue refused it (Redis down): the sweep queues it
        once the queue answers again."""
        run = self.active_run
        return run is not None and run.status == RebalanceRun.Status.PENDING and run.queue_failed_at is not None

    @property
    def poll_seconds(self) -> int:
        return POLL_SECONDS_SLOW if self.pending_slow else POLL_SECONDS_FAST


class _TradeCount(Func):
    """How many trades a run's result lists (NULL when it has no list), without loading the document."""

    output_field = IntegerField()
    template = "json_array_length(%(expressions)s, '$.trades')"  # SQLite

    def as_postgresql(self, compiler, connection, **extra_context):
        template = ("jsonb_array_length(CASE WHEN jsonb_typeof(%(expressions)s -> 'trades') = 'array' "
                    "THEN %(expressions)s -> 'trades' END)")
        return self.as_sql(compiler, connection, template=template, **extra_context)


def portfolios_for_page() -> QuerySet[Portfolio]:
    """Portfolios with what the portfolio page needs besides its runs, read in the same query:
    `page_prices_as_of` (the newest price date, as `prices_as_of()` gives it) and versions of what the page
    shows from other tables, for its cache key (recommendations/page_cache.py): `page_holdings_version`
    (accounts, their cash and lots; it starts with the number of lots, which says whether there are
    holdings), `page_executed_version` (executed plans) and `page_drift_version` (drift checks). The runs
    the page lists are read in full (`runs_for_page`)."""
    # Written as SQL: the ORM's Subquery costs more to compile than the query to run.
    # Only the models' own table and column names are formatted in; nothing from a request.
    holding, account, price, portfolio, plan, check = (m._meta.db_table for m in (
        Holding, Account, Price, Portfolio, ExecutedPlan, DriftCheck))
    this = f'"{portfolio}".id'
    newest_price = f'(SELECT MAX(date) FROM "{price}")'  # noqa: S608
    # Each version changes when a row is added or deleted, or a column it sums or counts changes. (An account's
    # cash is summed once per lot it holds: still a sum that moves whenever the cash does.)
    versions = {
        "page_holdings_version": _version_sql(
            f'"{account}" a LEFT JOIN "{holding}" h ON h.account_id = a.id WHERE a.portfolio_id = {this}',
            "COUNT(h.id)", "MAX(h.id)", "SUM(h.shares)", "SUM(a.cash_usd)"),
        "page_executed_version": _version_sql(f'"{plan}" WHERE portfolio_id = {this}',
                                              "COUNT(*)", "MAX(id)", "COUNT(run_id)", "COUNT(executed_by_id)"),
        "page_drift_version": _version_sql(f'"{check}" WHERE portfolio_id = {this}',
                                           "COUNT(*)", "MAX(id)", "COUNT(plan_run_id)"),
    }
    return Portfolio.objects.annotate(
        page_prices_as_of=RawSQL(newest_price, (), output_field=DateField()),  # noqa: S611
        **{name: RawSQL(sql, (), output_field=CharField()) for name, sql in versions.items()},  # noqa: S611
    )


def _version_sql(rows: str, *aggregates: str) -> str:
    """`(SELECT agg1 || '/' || agg2 ... FROM rows)`: one string that changes when any aggregate does."""
    joined = " || '/' || ".join(f"COALESCE({a}, 0)" for a in aggregates)
    return f"(SELECT {joined} FROM {rows})"  # noqa: S608 (table and column names of our own models only)


_PORTFOLIO_FOR_PAGE: CompiledQuery[Portfolio] = CompiledQuery(
    lambda portfolio_id, owner_id: portfolios_for_page().filter(pk=portfolio_id, owner_id=owner_id),
    "portfolio_id", "owner_id")


def portfolio_for_page(*, portfolio_id: int, owner_id: int) -> Portfolio | None:
    """`owner_id`'s portfolio `portfolio_id` as `portfolios_for_page` reads it (None: not theirs, or none)."""
    rows = _PORTFOLIO_FOR_PAGE.run(portfolio_id=portfolio_id, owner_id=owner_id)
    return rows[0] if rows else None


HISTORY_LIMIT = 20  # runs in the page's history table


def _runs_queryset(portfolio_id: int, limit: int) -> QuerySet[RebalanceRun]:
    return (
        RebalanceRun.objects.filter(portfolio_id=portfolio_id)
        .defer("result")
        .annotate(result_as_of=KT("result__as_of"), trade_count=_TradeCount("result"))
        .order_by("-created_at", "-id")[:limit]
    )


@lru_cache(maxsize=4)
def _runs_query(limit: int) -> CompiledQuery[RebalanceRun]:
    return CompiledQuery(lambda portfolio_id: _runs_queryset(portfolio_id, limit), "portfolio_id")


def runs_for_page(*, portfolio: Portfolio, limit: int = HISTORY_LIMIT) -> list[RebalanceRun]:
    """The newest runs, without their result documents (the page reads the shown one's from the fragment
    cache); each carries `result_as_of` and `trade_count` for the history table."""
    return _runs_query(limit).run(portfolio_id=portfolio.pk)


def portfolio_page_state(*, portfolio: Portfolio, history_limit: int = HISTORY_LIMIT) -> PortfolioPageState:
    runs = runs_for_page(portfolio=portfolio, limit=history_limit)
    shown = next((r for r in runs if r.status == RebalanceRun.Status.DONE), None)
    if shown is None and len(runs) == history_limit:  # an older done run beyond the history window
        shown = run_latest_done(portfolio=portfolio)
    # A run older than the shown result is superseded: whatever it is doing, it is never "in progress".
    active = [r for r in runs if r.status in ACTIVE_STATUSES and (shown is None or _run_order(r) > _run_order(shown))]
    failed = next((r for r in runs if r.status == RebalanceRun.Status.FAILED), None)
    if failed is not None and shown is not None and _run_order(failed) < _run_order(shown):
        failed = None
    running = [r for r in active if r.status == RebalanceRun.Status.RUNNING]
    return PortfolioPageState(
        portfolio=portfolio,
        has_holdings=_has_holdings(portfolio),
        active_run=active[0] if active else None,
        queued_after_active=bool(running) and len(active) > 1,
        shown_run=shown,
        failed_run=failed,
        latest_run=runs[0] if runs else None,
        history=runs,
    )


def _has_holdings(portfolio: Portfolio) -> bool:
    version = getattr(portfolio, "page_holdings_version", None)  # read with the row (portfolios_for_page)
    if version is not None:
        return not version.startswith("0/")  # it starts with the number of lots
    return Holding.objects.filter(account__portfolio=portfolio).exists()


LATEST_DONE_ORDER = ("-created_at", "-id")  # "latest done run": the one requested last, whenever it finished


def run_latest_done(*, portfolio: Portfolio) -> RebalanceRun | None:
    """The newest done run: the one requested last (created_at, then id), whenever it finished.

    The one definition of "latest done run", for the page, the API and both CSV exports.
    """
    return (
        RebalanceRun.objects.filter(portfolio=portfolio, status=RebalanceRun.Status.DONE)
        .order_by(*LATEST_DONE_ORDER)
        .first()
    )


def run_done_for_portfolio(*, portfolio: Portfolio, run_id: int | None) -> RebalanceRun | None:
    """The done run `run_id` of `portfolio`, or its newest done run when `run_id` is None."""
    if run_id is None:
        return run_latest_done(portfolio=portfolio)
    return RebalanceRun.objects.filter(
        portfolio=portfolio, pk=run_id, status=RebalanceRun.Status.DONE
    ).first()


def _run_order(run: RebalanceRun) -> tuple:
    return (run.created_at, run.pk)


# --- a result shaped for display -------------------------------------------------------------


@dataclass(frozen=True)
class ExposureRow:
    label: str
    before: float | None
    after: float | None

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass(frozen=True)
class ExposureBlock:
    key: str
    title: str
    caption: str
    rows: list[ExposureRow]

    def chart(self) -> dict[str, list]:
        return {
            "labels": [r.label for r in self.rows],
            "before": [r.before for r in self.rows],
            "after": [r.after for r in self.rows],
        }


@dataclass(frozen=True)
class RiskRow:
    label: str
    before: str
    after: str
    better: bool | None  # True when after improves on before (for a visual cue), None when not comparable


@dataclass(frozen=True)
class TradeTotals:
    count: int
    buys_usd: float
    sells_usd: float
    net_cash_usd: float  # sells minus buys (positive = cash freed)
    est_costs_usd: float
    est_taxes_usd: float
    realized_gain_usd: float


@dataclass(frozen=True)
class PlanFacts:
    """The plan in the figures a planner checks first: orders, funds bought, estimated tax against the budget."""

    orders: int
    funds_bought: int
    est_taxes_usd: float
    est_tax_pct: float | None  # of the portfolio's value
    budget_known: bool  # False for a run from before the tax budget (its document does not say)
    tax_budget: float | None  # fraction of value per calendar year; None = no limit
    tax_spent_usd: float  # already realised this calendar year by executed plans, taken off the budget

    @property
    def over_budget(self) -> bool:
        if not self.budget_known or self.tax_budget is None or self.est_tax_pct is None:
            return False
        return self.est_tax_pct > self.tax_budget + 1e-6


@dataclass(frozen=True)
class TradeOffRow:
    """One row of the tax trade-off table (engine.types.TradeOff)."""

    budget: float | None  # fraction of value; None = no limit
    est_taxes_usd: float | None
    est_tax_pct: float | None
    volatility: float | None
    limits_met: int | None
    limits_total: int | None
    current: bool


@dataclass(frozen=True)
class StressRow:
    name: str
    kind: str
    before: float | None
    after: float | None
    start: str = ""
    end: str = ""
    missing: list[str] = field(default_factory=list)
    note: str = ""
    description: str = ""
    assumptions: list[tuple[str, float | str]] = field(default_factory=list)

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass(frozen=True)
class ResultDisplay:
    as_of: str
    profile: str
    status: str
    value: float | None
    summary: str
    trades: list[dict[str, Any]]
    totals: TradeTotals
    exposures: list[ExposureBlock]
    risk: list[RiskRow]
    warnings: list[str]
    relaxations: list[dict[str, Any]]
    unpriced: list[str]
    stress_historical: list[StressRow]
    stress_hypothetical: list[StressRow]
    backtest: dict[str, Any] | None
    views: dict[str, Any] | None
    charts: dict[str, Any]
    coverage: dict[str, Any] | None = None  # value modelled directly / by proxy / held fixed (proxies.coverage)
    facts: PlanFacts | None = None
    notes: list[str] = field(default_factory=list)  # the planner's notes in plain words
    tradeoffs: list[TradeOffRow] = field(default_factory=list)  # what other tax budgets would buy
    volatility_sampled: bool = False  # the risk rows carry the plain 3-year sample estimate too

    @property
    def coverage_shown(self) -> bool:
        """True when part of the value is modelled by a proxy or held fixed (worth a line on the page)."""
        cover = self.coverage or {}
        return bool(_num(cover.get("proxy")) or _num(cover.get("fixed")) or self.status == "partial")

    @property
    def unpriced_unmentioned(self) -> list[str]:
        """Unpriced tickers that none of the result's own warnings already names."""
        return [t for t in self.unpriced if not any(re.search(rf"\b{re.escape(t)}\b", w) for w in self.warnings)]

    @property
    def has_stress(self) -> bool:
        return bool(self.stress_historical or self.stress_hypothetical)


def result_display(*, result: dict | None) -> ResultDisplay | None:
    """Shape a run's result document for the templates; None when there is nothing to show."""
    if not isinstance(result, dict):
        return None
    before = _dict(result.get("before"))
    after = _dict(result.get("after"))
    trades = [_trade(t) for t in _list(result.get("trades")) if isinstance(t, dict)]
    exposures = [
        ExposureBlock(
            "sectors", "GICS sectors", "Look-through share of the stock part of the portfolio",
            _rows(_dict(before.get("sectors")), _dict(after.get("sectors"))),
        ),
        ExposureBlock(
            "size", "Company size", "Large, mid and small caps, share of the stock part",
            _rows(_dict(before.get("size")), _dict(after.get("size")), order=SIZE_ORDER, labels=SIZE_LABELS),
        ),
        ExposureBlock(
            "asset_class", "Asset class", "Share of total value, cash included",
            _rows(
                _dict(before.get("asset_class")), _dict(after.get("asset_class")),
                order=ASSET_CLASS_ORDER, labels=ASSET_CLASS_LABELS,
            ),
        ),
        ExposureBlock(
            "top_names", "10 largest single names",
            "Direct shares plus what funds hold; a dash means outside that side's top 10",
            _rows(_dict(before.get("top_names")), _dict(after.get("top_names")), missing_is_unknown=True),
        ),
    ]
    exposures = [block for block in exposures if block.rows]
    stress = [_stress(s) for s in _list(result.get("stress")) if isinstance(s, dict)]
    backtest = _backtest(result.get("backtest"))
    totals = _totals(trades, result)
    value = _num(result.get("value"))
    charts: dict[str, Any] = {block.key: block.chart() for block in exposures}
    if backtest and backtest.get("curve"):
        charts["backtest"] = backtest["curve"]
    return ResultDisplay(
        as_of=str(result.get("as_of") or ""),
        profile=str(result.get("profile") or ""),
        status=str(result.get("status") or ""),
        value=value,
        summary=str(result.get("summary") or ""),
        trades=trades,
        totals=totals,
        exposures=exposures,
        risk=_risk(before, after),
        warnings=[str(w) for w in _list(result.get("warnings"))],
        relaxations=[_relaxation(r) for r in _list(result.get("relaxations")) if isinstance(r, dict)],
        unpriced=[str(t) for t in _list(result.get("unpriced"))],
        stress_historical=[s for s in stress if s.kind != "hypothetical"],
        stress_hypothetical=[s for s in stress if s.kind == "hypothetical"],
        backtest=backtest,
        views=_views(result.get("views")),
        charts=charts,
        coverage=_dict(result.get("coverage")) or None,
        facts=_facts(result, trades, totals, value),
        notes=[str(n) for n in _list(result.get("notes")) if n],
        tradeoffs=[_tradeoff(t, value) for t in _list(result.get("tradeoffs")) if isinstance(t, dict)],
        volatility_sampled=any(_num(side.get("volatility_sample")) is not None for side in (before, after)),
    )


def _result_as_of(run: RebalanceRun) -> object:
    """The result document's `as_of`: from the page's annotation (`runs_for_page`) when the run carries it,
    so a run read without its document is not loaded again for it."""
    if "result_as_of" in run.__dict__:
        return run.__dict__["result_as_of"]
    return (run.result or {}).get("as_of")


def run_price_warnings(*, run: RebalanceRun, latest_prices_as_of: dt.date | None) -> list[str]:
    """Plain-words warnings about the prices a run used (stale, or newer prices exist)."""
    used = run.prices_as_of or _parse_date(_result_as_of(run))
    messages: list[str] = []
    if used is None:
        return messages
    if prices_are_stale(used):
        messages.append(
            f"This suggestion uses prices as of {used:%Y-%m-%d}, more than 5 trading days old; "
            "amounts will differ from today's prices."
        )
    if latest_prices_as_of is not None and latest_prices_as_of > used:
        messages.append(
            f"Newer prices exist (as of {latest_prices_as_of:%Y-%m-%d}) than this suggestion used "
            f"({used:%Y-%m-%d}); recompute to update it."
        )
    return messages


def run_inputs_display(*, run: RebalanceRun) -> list[tuple[str, str]]:
    """The options a run used, as (label, value) pairs in plain words."""
    inputs = run.inputs if isinstance(run.inputs, dict) else {}
    rows = [("Risk profile", str(inputs.get("profile") or run.profile).capitalize())]
    cash = _num(inputs.get("cash"))
    if cash:
        rows.append(("Cash change", f"{'add' if cash > 0 else 'withdraw'} ${abs(cash):,.2f}"))
    rows.append(("Buy only", "yes" if inputs.get("buy_only") else "no"))
    keep = inputs.get("keep") or []
    if keep:
        rows.append(("Keep", ", ".join(str(t) for t in keep)))
    rows.append(("Fractional shares", "yes" if inputs.get("fractional") else "no"))
    turnover = _num(inputs.get("max_turnover"))
    rows.append(("Max turnover", f"{turnover:.0%}" if turnover is not None else "profile default"))
    if "use_views" in inputs:
        rows.append(("Dated views", "on" if inputs.get("use_views") else "off"))
    return rows + _plan_limit_inputs(inputs)


def _plan_limit_inputs(inputs: dict) -> list[tuple[str, str]]:
    """The plan's own limits, for runs requested since they exist (older runs' inputs lack the keys)."""
    rows = []
    if "tax_budget" in inputs:
        budget = _num(inputs.get("tax_budget"))
        rows.append(("Tax budget", "no limit" if budget is None else f"{_setting_pct(budget)} of value a year"))
        spent = _num(inputs.get("tax_spent_usd")) or 0.0
        if spent:
            rows.append(("Tax already realised this year", f"${spent:,.0f} (executed plans)"))
    if "max_funds" in inputs:
        funds = _num(inputs.get("max_funds"))
        rows.append(("Most funds to buy", "no cap" if funds is None else str(int(funds))))
    usd, fraction = _num(inputs.get("min_trade_usd")), _num(inputs.get("min_trade_fraction"))
    if usd is not None and fraction is not None:
        rows.append(("Minimum order", f"${usd:,.0f} or {_setting_pct(fraction)} of value, whichever is larger"))
    return rows


def _setting_pct(fraction: float) -> str:
    """0.01 -> '1%', 0.0025 -> '0.25%'."""
    return f"{fraction * 100:.2f}".rstrip("0").rstrip(".") + "%"


# --- helpers -----------------------------------------------------------------------------------


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _parse_date(value: object) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _rows(
    before: dict, after: dict, *, order: tuple[str, ...] = (), labels: dict[str, str] | None = None,
    missing_is_unknown: bool = False,
) -> list[ExposureRow]:
    labels = labels or {}
    keys = [k for k in order if k in before or k in after]
    rest = [k for k in {**before, **after} if k not in keys]
    rest.sort(key=lambda k: -max(_num(before.get(k)) or 0.0, _num(after.get(k)) or 0.0))
    default = None if missing_is_unknown else 0.0
    rows = []
    for key in keys + rest:
        b = _num(before.get(key)) if key in before else default
        a = _num(after.get(key)) if key in after else default
        if not missing_is_unknown and not b and not a:
            continue
        rows.append(ExposureRow(labels.get(key, str(key)), b, a))
    return rows


def _trade(trade: dict) -> dict[str, Any]:
    action = str(trade.get("action") or "").lower()
    return {
        "ticker": str(trade.get("ticker") or ""),
        "account": str(trade.get("account") or ""),
        "action": action,
        "shares": _num(trade.get("shares")),
        "price": _num(trade.get("price")),
        "amount": _num(trade.get("amount")),
        "reason": str(trade.get("reason") or ""),
        "est_cost": _num(trade.get("est_cost")),
        "est_tax": _num(trade.get("est_tax")),
        "realized_gain": _num(trade.get("realized_gain")),
    }


def _totals(trades: list[dict[str, Any]], result: dict) -> TradeTotals:
    buys = sum(t["amount"] or 0.0 for t in trades if t["action"] == "buy")
    sells = sum(t["amount"] or 0.0 for t in trades if t["action"] == "sell")
    costs = _num(result.get("est_costs"))
    taxes = _num(result.get("est_taxes"))
    return TradeTotals(
        count=len(trades),
        buys_usd=buys,
        sells_usd=sells,
        net_cash_usd=sells - buys,
        est_costs_usd=costs if costs is not None else sum(t["est_cost"] or 0.0 for t in trades),
        est_taxes_usd=taxes if taxes is not None else sum(t["est_tax"] or 0.0 for t in trades),
        realized_gain_usd=sum(t["realized_gain"] or 0.0 for t in trades),
    )


def _count(value: object) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _share(amount: float | None, value: float | None) -> float | None:
    return None if amount is None or not value else amount / value


def _facts(result: dict, trades: list[dict[str, Any]], totals: TradeTotals, value: float | None) -> PlanFacts:
    """Orders, funds bought and tax; a document from before these keys gets them counted from its trades."""
    orders = _count(result.get("orders"))
    funds = _count(result.get("funds_bought"))
    budget = result.get("tax_budget")
    return PlanFacts(
        orders=orders if orders is not None else len(trades),
        funds_bought=funds if funds is not None else len({t["ticker"] for t in trades if t["action"] == "buy"}),
        est_taxes_usd=totals.est_taxes_usd,
        est_tax_pct=_share(totals.est_taxes_usd, value),
        budget_known="tax_budget" in result and (budget is None or _num(budget) is not None),
        tax_budget=_num(budget),
        tax_spent_usd=_num(result.get("tax_spent_usd")) or 0.0,
    )


def _tradeoff(item: dict, value: float | None) -> TradeOffRow:
    taxes = _num(item.get("est_taxes"))
    return TradeOffRow(
        budget=_num(item.get("budget")),
        est_taxes_usd=taxes,
        est_tax_pct=_share(taxes, value),
        volatility=_num(item.get("volatility")),
        limits_met=_count(item.get("limits_met")),
        limits_total=_count(item.get("limits_total")),
        current=item.get("current") is True,
    )


def _pair(value: object, keys: tuple[str, str]) -> tuple[str, float | None]:
    """largest_position/largest_sector as {ticker|sector, weight} or a [name, weight] pair."""
    if isinstance(value, dict):
        return str(value.get(keys[0]) or ""), _num(value.get(keys[1]))
    if isinstance(value, list | tuple) and len(value) == 2:
        return str(value[0] or ""), _num(value[1])
    return "", None


def _risk(before: dict, after: dict) -> list[RiskRow]:
    rows = []
    vb, va = _num(before.get("volatility")), _num(after.get("volatility"))
    sb, sa = _num(before.get("volatility_sample")), _num(after.get("volatility_sample"))
    sampled = sb is not None or sa is not None
    if vb is not None or va is not None:
        label = "Volatility (annualised, risk model)" if sampled else "Volatility (annualised)"
        rows.append(RiskRow(label, _pct(vb), _pct(va), _lower_is_better(vb, va)))
    if sampled:
        rows.append(RiskRow("Volatility (annualised, plain 3-year sample)", _pct(sb), _pct(sa),
                            _lower_is_better(sb, sa)))
    for label, key, names in (
        ("Largest position (look-through)", "largest_position", ("ticker", "weight")),
        ("Largest sector", "largest_sector", ("sector", "weight")),
    ):
        nb, wb = _pair(before.get(key), names)
        na, wa = _pair(after.get(key), names)
        if nb or na:
            rows.append(RiskRow(label, _named_pct(nb, wb), _named_pct(na, wa), _lower_is_better(wb, wa)))
    eb, ea = _num(before.get("effective_holdings")), _num(after.get("effective_holdings"))
    if eb is not None or ea is not None:
        better = None if eb is None or ea is None or eb == ea else ea > eb
        rows.append(RiskRow("Effective number of holdings", _plain(eb), _plain(ea), better))
    return rows


def _lower_is_better(before: float | None, after: float | None) -> bool | None:
    if before is None or after is None or before == after:
        return None
    return after < before


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _named_pct(name: str, weight: float | None) -> str:
    if not name:
        return "—"
    return f"{name} {_pct(weight)}" if weight is not None else name


def _plain(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _relaxation(item: dict) -> dict[str, Any]:
    limit = str(item.get("limit") or "")
    return {
        "limit": limit,
        "label": limit_label(limit),
        "requested": _num(item.get("requested")),
        "achieved": _num(item.get("achieved")),
        "message": str(item.get("message") or ""),
    }


def limit_label(limit: str) -> str:
    """'max_sector:Information Technology' -> 'Maximum sector weight (Information Technology)'."""
    name, _, detail = limit.partition(":")
    label = LIMIT_LABELS.get(name, name.replace("_", " ").capitalize())
    return f"{label} ({detail})" if detail else label


def _stress(item: dict) -> StressRow:
    assumptions = []
    for key, value in _dict(item.get("assumptions")).items():
        number = _num(value)
        label = SIZE_LABELS.get(key, ASSET_CLASS_LABELS.get(key, str(key)))
        assumptions.append((label, number if number is not None else str(value)))
    assumptions.sort(key=lambda pair: -abs(pair[1]) if isinstance(pair[1], float) else 0.0)
    return StressRow(
        name=str(item.get("name") or ""),
        kind=str(item.get("kind") or "historical"),
        before=_num(item.get("before")),
        after=_num(item.get("after")),
        start=str(item.get("start") or ""),
        end=str(item.get("end") or ""),
        missing=[str(t) for t in _list(item.get("missing"))],
        note=str(item.get("note") or ""),
        description=str(item.get("description") or ""),
        assumptions=assumptions,
    )


def _backtest(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    before, after = _dict(value.get("before")), _dict(value.get("after"))
    metrics = []
    for key, label in (("return_annual", "Annual return"), ("volatility", "Volatility"),
                       ("max_drawdown", "Maximum drawdown")):
        b, a = _num(before.get(key)), _num(after.get(key))
        if b is not None or a is not None:
            metrics.append({"label": label, "before": b, "after": a})
    note = str(value.get("note") or "")
    curve = _dict(value.get("curve"))
    dates, cb, ca = _list(curve.get("dates")), _list(curve.get("before")), _list(curve.get("after"))
    good_curve = bool(dates) and len(dates) == len(cb) == len(ca)
    return {
        "start": str(value.get("start") or ""),
        "end": str(value.get("end") or ""),
        "rebalance": str(value.get("rebalance") or ""),
        "metrics": metrics,
        "note": note,
        "note_repeats_caveat": "knowledge" in note.lower(),
        "curve": {"dates": [str(d) for d in dates], "before": [_num(x) for x in cb], "after": [_num(x) for x in ca]}
        if good_curve else None,
    }


def _views(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {
        "title": str(value.get("title") or "The dated investment views"),
        "as_of": str(value.get("as_of") or ""),
        "summary": str(value.get("summary") or ""),
        "source": str(value.get("source") or ""),
        "facts": [str(f) for f in _list(value.get("facts"))],
        "risks": [str(r) for r in _list(value.get("risks"))],
    }

"""Would a careful planner sign these plans? `.venv/bin/python bench/advice.py [--variants N] [--verbose]`.

Builds a corpus of realistic portfolios on the bundled prices (no Django), in five families, each in
`--variants` seeded variations: a concentrated taxable account, a retiree with low-basis stock and a
traditional IRA, a diversified account (401(k) and taxable), a young investor adding cash, and a
taxable + traditional IRA + Roth household with a large taxable loss. Each is planned under the
default options (the family's profile), and every plan is put through issue 15's checks:

- at most 12 orders and 6 funds bought; no two funds of one role (engine.roles), at most 2 bond/cash
  funds bought; no order under max($250, 0.25% of value); at most one fund bought in several accounts;
- estimated tax at most the budget (1% of value); no wash sale (nothing sold at a loss is bought back,
  nor a fund of the same role, in any account); a large taxable loss is harvested;
- bonds in tax-deferred accounts first; none bought in a Roth while a traditional IRA exists;
- a diversified portfolio: at most 3 orders and 10% turnover; new cash lands in at least 2 funds;
- every reason's "from X% to Y%" points the way its verb says (engine.reasons' grammar; numbers without a
  verb, or equal numbers, count as wrong);
- the volatility cap the plan claims to meet holds on the plain 3-year sample covariance.

Prints one row per plan (orders, funds, tax as % of value, the checks it fails), the failures per
check, and last: `RESULT plans=<n> signable=<k> median_orders=<o> median_tax_pct=<t>`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import engine
from engine.menu import default_menu
from engine.profiles import PROFILES
from engine.reasons import DOWN_VERBS, UP_VERBS
from engine.roles import BOND_ROLES, fund_roles
from engine.sample_data import load_bundled_market
from engine.types import AccountCash, MarketData, Options, Position, RebalanceRequest

TAX_BUDGET = 0.01  # of value per year: issue 15's default
TAX_DEFERRED = {"traditional_ira", "401k"}
LARGE_LOSS = 5_000.0  # USD: a taxable loss at least this large (and 0.5% of value) should be harvested
TECH = ["AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "AVGO", "TSLA"]
STEADY = ["JNJ", "KO", "PG", "XOM", "PEP", "WMT", "MRK", "CVX"]


@dataclass
class Case:
    """One portfolio of the corpus, with its family and options."""

    name: str
    family: str
    positions: list[Position]
    cash: list[AccountCash]
    options: Options


@dataclass
class Verdict:
    case: Case
    document: dict
    failures: list[str] = field(default_factory=list)

    @property
    def trades(self) -> list[dict]:
        return self.document["trades"]


# --- the corpus ----------------------------------------------------------------------------------


class Builder:
    """Positions at today's bundled prices, sized in dollars."""

    def __init__(self, market: MarketData):
        self.last = market.prices.ffill().iloc[-1]
        self.as_of = market.as_of

    def lot(self, ticker: str, account: str, account_type: str, usd: float, basis_frac: float | None,
            years_held: float = 5.0) -> Position:
        price = float(self.last[ticker])
        shares = float(max(1, round(usd / price)))
        basis = None if basis_frac is None else basis_frac * shares * price
        acquired = self.as_of - dt.timedelta(days=int(365 * years_held))
        return Position(ticker, account, account_type, shares, price, cost_basis=basis, acquired=acquired)


def concentrated(b: Builder, rng: np.random.Generator, i: int) -> Case:
    names = rng.choice(TECH, size=5, replace=False)
    weights = rng.dirichlet(np.ones(5)) * 0.9 + 0.02
    value = float(rng.uniform(150_000, 900_000))
    positions = [b.lot(t, "Brokerage", "taxable", value * w, float(rng.uniform(0.1, 0.7)), float(rng.uniform(2, 9)))
                 for t, w in zip(names, weights, strict=True)]
    positions.append(b.lot("QQQ", "Brokerage", "taxable", value * 0.1, 0.5))
    cash = [AccountCash("Brokerage", "taxable", float(rng.uniform(1_000, 10_000)))]
    return Case(f"concentrated-{i}", "concentrated", positions, cash, Options(profile="moderate"))


def retiree(b: Builder, rng: np.random.Generator, i: int) -> Case:
    value = float(rng.uniform(1_200_000, 2_500_000))
    steady = rng.choice(STEADY, size=4, replace=False)
    positions = [b.lot(t, "Joint", "taxable", value * 0.12, float(rng.uniform(0.05, 0.25)), 20.0) for t in steady]
    positions.append(b.lot("AAPL", "Joint", "taxable", value * 0.1, 0.05, 15.0))
    positions += [b.lot("SPY", "IRA", "traditional_ira", value * 0.25, None),
                  b.lot("XLK", "IRA", "traditional_ira", value * 0.12, None),
                  b.lot("BND", "IRA", "traditional_ira", value * 0.05, None)]
    cash = [AccountCash("Joint", "taxable", value * 0.02), AccountCash("IRA", "traditional_ira", 5_000.0)]
    return Case(f"retiree-{i}", "retiree", positions, cash, Options(profile="conservative"))


def diversified(b: Builder, rng: np.random.Generator, i: int) -> Case:
    value = float(rng.uniform(60_000, 600_000))
    account, kind = ("401k", "401k") if i % 2 == 0 else ("Brokerage", "taxable")
    mix = {"VTI": 0.55, "VXUS": 0.15, "BND": 0.25}
    jitter = rng.uniform(-0.03, 0.03, size=3)
    positions = [b.lot(t, account, kind, value * (w + j), float(rng.uniform(0.6, 0.95)), 4.0)
                 for (t, w), j in zip(mix.items(), jitter, strict=True)]
    cash = [AccountCash(account, kind, value * 0.04)]
    return Case(f"diversified-{kind}-{i}", "diversified", positions, cash, Options(profile="moderate"))


def young(b: Builder, rng: np.random.Generator, i: int) -> Case:
    value = float(rng.uniform(8_000, 40_000))
    names = rng.choice(["AAPL", "NVDA", "TSLA", "QQQ", "VOO", "AMZN"], size=3, replace=False)
    positions = [b.lot(t, "Roth", "roth_ira", value / 3, 0.8, 1.5) for t in names]
    cash = [AccountCash("Roth", "roth_ira", 200.0)]
    add = float(rng.choice([2_000, 5_000, 10_000]))
    return Case(f"young-cash-{i}", "new cash", positions, cash, Options(profile="aggressive", cash_change=add))


def household(b: Builder, rng: np.random.Generator, i: int) -> Case:
    value = float(rng.uniform(300_000, 1_200_000))
    loser = str(rng.choice(["UNH", "PFE", "INTC", "NKE", "BA"]))
    positions = [b.lot("NVDA", "Brokerage", "taxable", value * 0.18, 0.15),
                 b.lot("MSFT", "Brokerage", "taxable", value * 0.12, 0.4),
                 b.lot(loser, "Brokerage", "taxable", value * 0.06, 1.9, 2.0),  # a large loss
                 b.lot("SPY", "Traditional IRA", "traditional_ira", value * 0.25, None),
                 b.lot("AAPL", "Traditional IRA", "traditional_ira", value * 0.1, None),
                 b.lot("QQQ", "Roth", "roth_ira", value * 0.15, None),
                 b.lot("XLK", "Roth", "roth_ira", value * 0.1, None)]
    cash = [AccountCash("Brokerage", "taxable", 3_000.0), AccountCash("Traditional IRA", "traditional_ira", 1_000.0),
            AccountCash("Roth", "roth_ira", 500.0)]
    return Case(f"household-{i}", "multi-account", positions, cash, Options(profile="moderate"))


FAMILIES: tuple[Callable[[Builder, np.random.Generator, int], Case], ...] = (
    concentrated, retiree, diversified, young, household)


def corpus(market: MarketData, variants: int, seed: int) -> list[Case]:
    b = Builder(market)
    rng = np.random.default_rng(seed)
    return [family(b, rng, i) for family in FAMILIES for i in range(variants)]


# --- the checks ----------------------------------------------------------------------------------

_FROM_TO = re.compile(r"(?:\bfrom )?(-?\d+(?:\.\d+)?)% (?:to|->) (-?\d+(?:\.\d+)?)%")


@dataclass(frozen=True)
class StatedChange:
    """One "<verb> <subject> from X% to Y%<rest>" of a reason (engine.reasons' grammar); verb "" when the
    words before the numbers carry no verb of engine.reasons.DOWN_VERBS / UP_VERBS."""

    verb: str
    subject: str
    before: float  # percent, as printed
    after: float
    rest: str  # the words after the numbers, up to the next change or the end of the clause
    text: str  # the whole clause


def stated_changes(reason: str) -> list[StatedChange]:
    """Every "from X% to Y%" of a reason with the verb and subject before it (clauses split on "; ")."""
    found = []
    for clause in reason.split("; "):
        matches = list(_FROM_TO.finditer(clause))
        for k, match in enumerate(matches):
            start = matches[k - 1].end() if k else 0
            end = matches[k + 1].start() if k + 1 < len(matches) else len(clause)
            head = clause[start:match.start()].strip(" ,").split(" ", 1)
            verb = head[0] if head[0] in DOWN_VERBS + UP_VERBS else ""
            subject = head[1] if verb and len(head) > 1 else " ".join(head)
            found.append(StatedChange(verb, subject.strip(), float(match.group(1)), float(match.group(2)),
                                      clause[match.end():end], clause))
    return found


def reason_directions_wrong(reason: str) -> list[str]:
    """Clauses whose verb and numbers disagree ("adds bonds 37% -> 27%"), or whose numbers have no verb to
    check them by (a phrasing this parser does not know counts as wrong, so the check stays real)."""
    wrong = []
    for c in stated_changes(reason):
        agrees = (c.verb in DOWN_VERBS and c.after < c.before) or (c.verb in UP_VERBS and c.after > c.before)
        if not agrees:
            wrong.append(c.text)
    return wrong


def _after_holdings(case: Case, trades: list[dict]) -> dict[tuple[str, str], float]:
    """(account, ticker) -> shares after the trades."""
    held: dict[tuple[str, str], float] = {}
    for p in case.positions:
        held[(p.account, p.ticker)] = held.get((p.account, p.ticker), 0.0) + p.shares
    for t in trades:
        sign = 1.0 if t["action"] == "buy" else -1.0
        held[(t["account"], t["ticker"])] = held.get((t["account"], t["ticker"]), 0.0) + sign * t["shares"]
    return held


def plain_volatility(market: MarketData, weights: dict[str, float], years: float = 3.0) -> float:
    """Annualised volatility of `weights` on the plain sample covariance of the last `years` of daily returns."""
    tickers = [t for t in weights if t in market.prices.columns]
    start = pd.Timestamp(market.as_of) - pd.DateOffset(years=int(years))
    prices = market.prices.loc[market.prices.index >= start, tickers].ffill()
    returns = prices.pct_change().iloc[1:].fillna(0.0)
    w = np.array([weights[t] for t in tickers])
    cov = returns.cov().to_numpy() * 252
    return float(np.sqrt(max(w @ cov @ w, 0.0)))


class Checker:
    def __init__(self, market: MarketData):
        self.market = market
        self.roles = fund_roles(market.securities, market.etf_sectors)

    def role(self, ticker: str) -> str:
        return self.roles.get(ticker, f"unknown:{ticker}")

    def check(self, case: Case, doc: dict) -> list[str]:
        value = float(doc["value"])
        trades = doc["trades"]
        buys = [t for t in trades if t["action"] == "buy"]
        failures: list[str] = []
        checks = (self._orders(buys, trades), self._min_order(trades, value), self._accounts(buys),
                  self._tax(doc, value), self._wash_sale(trades), self._harvest(case, trades, value),
                  self._location(case, buys, trades), self._family(case, trades, buys, value),
                  self._reasons(trades), self._volatility(case, doc))
        for found in checks:
            failures.extend(found)
        return failures

    def _orders(self, buys: list[dict], trades: list[dict]) -> list[str]:
        out = []
        funds = {t["ticker"] for t in buys}
        if len(trades) > 12:
            out.append("orders>12")
        if len(funds) > 6:
            out.append("funds>6")
        roles = [self.role(t) for t in funds]
        if len(roles) != len(set(roles)):
            out.append("two funds of one role")
        if sum(1 for r in roles if r in BOND_ROLES or r.startswith("cash:")) > 2:
            out.append("bond/cash funds>2")
        return out

    @staticmethod
    def _min_order(trades: list[dict], value: float) -> list[str]:
        floor = max(250.0, 0.0025 * value)
        return ["order under minimum"] if any(t["amount"] < floor - 0.005 for t in trades) else []

    @staticmethod
    def _accounts(buys: list[dict]) -> list[str]:
        accounts: dict[str, set[str]] = {}
        for t in buys:
            accounts.setdefault(t["ticker"], set()).add(t["account"])
        return ["funds bought in several accounts>1"] if sum(len(a) > 1 for a in accounts.values()) > 1 else []

    @staticmethod
    def _tax(doc: dict, value: float) -> list[str]:
        return ["tax over budget"] if float(doc.get("est_taxes", 0.0)) > TAX_BUDGET * value + 0.01 else []

    def _wash_sale(self, trades: list[dict]) -> list[str]:
        losers = {t["ticker"] for t in trades if t["action"] == "sell" and t.get("realized_gain", 0.0) < -0.005}
        bought = {t["ticker"] for t in trades if t["action"] == "buy"}
        loser_roles = {self.role(t) for t in losers if not self.role(t).startswith("stock:")}
        if losers & bought or any(self.role(t) in loser_roles for t in bought):
            return ["wash sale"]
        return []

    @staticmethod
    def _harvest(case: Case, trades: list[dict], value: float) -> list[str]:
        sold = {(t["account"], t["ticker"]) for t in trades if t["action"] == "sell"}
        for p in case.positions:
            if p.account_type != "taxable" or p.cost_basis is None or p.price is None:
                continue
            loss = p.cost_basis - p.shares * p.price
            if loss >= max(LARGE_LOSS, 0.005 * value) and (p.account, p.ticker) not in sold:
                return ["large loss not harvested"]
        return []

    def _location(self, case: Case, buys: list[dict], trades: list[dict]) -> list[str]:
        types = {p.account: p.account_type for p in case.positions} | {c.account: c.account_type for c in case.cash}
        deferred = {a for a, k in types.items() if k in TAX_DEFERRED}
        is_bond = {t["ticker"]: self.role(t["ticker"]) in BOND_ROLES for t in buys}
        out = []
        if deferred and any(is_bond[t["ticker"]] and types.get(t["account"]) == "roth_ira" for t in buys):
            out.append("bonds bought in a Roth")
        if deferred and any(is_bond[t["ticker"]] and types.get(t["account"]) == "taxable" for t in buys):
            held = _after_holdings(case, trades)
            equity_left = any(
                shares > 1e-9 and account in deferred and self.role(ticker) not in BOND_ROLES
                and not self.role(ticker).startswith("cash:")  # a T-bill fund is not equity
                for (account, ticker), shares in held.items()
            )
            if equity_left:
                out.append("bonds in taxable before tax-deferred")
        return out

    @staticmethod
    def _family(case: Case, trades: list[dict], buys: list[dict], value: float) -> list[str]:
        out = []
        if case.family == "diversified":
            turnover = sum(t["amount"] for t in trades) / 2 / value
            if len(trades) > 3 or turnover > 0.10:
                out.append("diversified churned")
        if case.options.cash_change > 0 and len({t["ticker"] for t in buys}) < 2:
            out.append("new cash into fewer than 2 funds")
        return out

    @staticmethod
    def _reasons(trades: list[dict]) -> list[str]:
        return ["reason points the wrong way"] if any(reason_directions_wrong(t["reason"]) for t in trades) else []

    def _volatility(self, case: Case, doc: dict) -> list[str]:
        if any(r["limit"] == "volatility_cap" for r in doc.get("relaxations", [])):
            return []
        cap = PROFILES[case.options.profile].vol_cap
        weights = {t: w for t, w in doc["after"]["weights"].items() if t != "CASH"}
        broken = plain_volatility(self.market, weights) > cap + 1e-4
        return ["volatility cap broken on the plain estimate"] if broken else []


# --- running -------------------------------------------------------------------------------------


def plan(case: Case, market: MarketData, menu: list[str], views: dict, cache: object) -> dict:
    """The engine's document for one case (the one place this bench calls the engine)."""
    request = RebalanceRequest(case.positions, case.cash, menu, market, case.options, views)
    return engine.result_to_document(engine.rebalance(request, cache=cache))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", type=int, default=6, help="seeded variations of each family")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--verbose", action="store_true", help="print every plan's trades and reasons")
    args = parser.parse_args()

    market = load_bundled_market(years=3)
    menu = default_menu(market.securities, market.etf_sectors)
    views = engine.load_views()
    cache = engine.ProblemCache()
    checker = Checker(market)
    verdicts = []
    for case in corpus(market, args.variants, args.seed):
        doc = plan(case, market, menu, views, cache)
        verdicts.append(Verdict(case, doc, checker.check(case, doc)))

    print(f"{'plan':<26} {'orders':>6} {'funds':>5} {'tax %':>6}  fails")
    for v in verdicts:
        funds = len({t["ticker"] for t in v.trades if t["action"] == "buy"})
        tax_pct = 100 * float(v.document.get("est_taxes", 0.0)) / float(v.document["value"])
        print(f"{v.case.name:<26} {len(v.trades):>6} {funds:>5} {tax_pct:>6.2f}  {', '.join(v.failures) or '-'}")
        if args.verbose:
            for t in v.trades:
                print(f"    {t['action']:<4} {t['ticker']:<5} {t['account']:<16} ${t['amount']:>11,.2f}  {t['reason']}")
    counts: dict[str, int] = {}
    for v in verdicts:
        for failure in v.failures:
            counts[failure] = counts.get(failure, 0) + 1
    print("\nplans failing each check:")
    for failure, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {failure:<45} {n:>3} of {len(verdicts)}")
    signable = sum(not v.failures for v in verdicts)
    median_orders = statistics.median(len(v.trades) for v in verdicts)
    median_tax = statistics.median(100 * float(v.document.get("est_taxes", 0.0)) / float(v.document["value"])
                                   for v in verdicts)
    print(f"RESULT plans={len(verdicts)} signable={signable} median_orders={median_orders:g} "
          f"median_tax_pct={median_tax:.2f}")


if __name__ == "__main__":
    main()

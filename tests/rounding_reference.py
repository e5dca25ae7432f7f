"""The rounding repair's reference descent: the algorithm of `engine.rounding` as specified, one candidate
array at a time (`steps`, `single_scores`, `pair_scores`, `state_score`, `repair_reference`). Slow; the
engine runs `Repairer.repair` (its fast form, `engine.descent.Descent`), and the tests hold the fast form to
this one by properties: it never ends worse, and every score it computes agrees within rounding error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.limits import (
    CASH_WEIGHT,
    FINANCIALS,
    PENALTY_MINIMUM,
    PENALTY_SECTOR,
    PENALTY_SINGLE_STOCK,
    PENALTY_TURNOVER,
    PENALTY_VOLATILITY,
    PULL_WEIGHT,
    SMALL,
)
from engine.rounding import PAIR_POOL, SINGLE_STEP_PROGRESS, Repairer


@dataclass(frozen=True)
class _Steps:
    """Candidate one-slot steps (C of them) and their additive effects on the state."""

    slot: np.ndarray  # (C,) int
    new_q: np.ndarray  # (C,)
    asset: np.ndarray  # (C,) int
    account: np.ndarray  # (C,) int
    dollars: np.ndarray  # (C,) change of the slot's holding, USD
    cash: np.ndarray  # (C,) change of the account's cash, USD
    buys: np.ndarray  # (C,) change of total buys, USD
    sells: np.ndarray  # (C,) change of total sells, USD
    pull: np.ndarray  # (C,) change of the distance to the continuous trades, USD

    def take(self, index: np.ndarray) -> _Steps:
        return _Steps(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


class ReferenceRepairer(Repairer):
    """A `Repairer` with the reference descent and its scoring."""

    @classmethod
    def of(cls, r: Repairer) -> ReferenceRepairer:
        return cls(r.book, r.risk, r.exp, r.limits, r.allow, fractional=r.fractional, min_trade_usd=r.min_trade,
                   cash_drag=r.cash_drag)

    # ---- candidate steps

    def steps(self, q: np.ndarray, q_cont: np.ndarray) -> _Steps:
        """Every allowed one-step change from trades q."""
        b = self.book
        up = np.where(q == 0, self.open_size, q + self.step)
        if not self.fractional:  # from selling a whole fractional holding, step back to whole shares
            up = np.where(np.abs(q - np.round(q)) > 1e-9, np.ceil(q), up)
        up = np.where(q < 0, np.minimum(up, 0.0), up)
        up = np.where((q < 0) & (np.abs(up * b.prices) < self.min_trade), 0.0, up)
        up_ok = np.where(up > 0, b.can_buy, True) & (up != q)
        down = np.where(q == 0, -self.open_size, q - self.step)
        down = np.where(q > 0, np.maximum(down, 0.0), down)
        down = np.where((q > 0) & (down * b.prices < self.min_trade), 0.0, down)
        down = np.maximum(down, -b.sell_limit)
        down_ok = np.where(down < 0, b.can_sell, True) & (down != q)
        slot = np.concatenate([np.nonzero(up_ok)[0], np.nonzero(down_ok)[0]])
        new_q = np.concatenate([up[up_ok], down[down_ok]])
        old_amount = q[slot] * b.prices[slot]
        new_amount = new_q * b.prices[slot]
        cost = b.cost_rate[slot]

        def flow(amount: np.ndarray) -> np.ndarray:
            return np.where(amount > 0, -amount * (1 + cost), -amount * (1 - cost))

        return _Steps(
            slot=slot,
            new_q=new_q,
            asset=b.asset_of[slot],
            account=b.account_of[slot],
            dollars=new_amount - old_amount,
            cash=flow(new_amount) - flow(old_amount),
            buys=(np.clip(new_amount, 0.0, None) - np.clip(old_amount, 0.0, None)) * b.turnover_weights()[0][slot],
            sells=(np.clip(-new_amount, 0.0, None) - np.clip(-old_amount, 0.0, None)) * b.turnover_weights()[1][slot],
            pull=(np.abs(new_q - q_cont[slot]) - np.abs(q[slot] - q_cont[slot])) * b.prices[slot],
        )

    # ---- scoring

    def _state(self, q: np.ndarray, relief: np.ndarray, q_cont: np.ndarray) -> dict[str, np.ndarray | float]:
        b = self.book
        amount = q * b.prices
        dollars = b.asset_dollars(q)
        cash = b.cash_after(q, relief)
        return {
            "A": dollars,
            "cash": cash,
            "total": float(dollars.sum() + cash.sum()),
            "buys": float((amount * b.turnover_weights()[0])[amount > 0].sum()),
            "sells": float(-(amount * b.turnover_weights()[1])[amount < 0].sum()),
            "pull": float((np.abs(q - q_cont) * b.prices).sum()),
            "factor": self.risk.loadings @ dollars,
        }

    def _score(
        self,
        st: dict,
        *,
        sectors: np.ndarray,
        equity: np.ndarray,
        small: np.ndarray,
        names: np.ndarray,
        total: np.ndarray,
        var: np.ndarray,
        shortfall: np.ndarray,
        buys: np.ndarray,
        sells: np.ndarray,
        pull: np.ndarray,
        cash: np.ndarray,
        cash_weight: float,
        sector_rows: np.ndarray | None = None,
        name_rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(violation, whole score) from (broadcast) absolute quantities: sectors (11, ...), names (L, ...),
        others (...); `cash` is the total cash after (USD). `sector_rows` / `name_rows`: the rows that
        `sectors` / `names` hold when only some are passed (the others cannot be violated; the sector
        rows must include FINANCIALS)."""
        b, lim, al = self.book, self.limits, self.allow
        has_equity = equity > 1e-9
        safe = np.where(has_equity, equity, 1.0)
        score = cash_weight * shortfall / b.value
        frac = np.where(has_equity, sectors / safe, 0.0)
        caps_s = lim.max_sector + al.sectors
        fin = FINANCIALS
        if sector_rows is not None:
            caps_s = caps_s[sector_rows]
            fin = int(np.searchsorted(sector_rows, FINANCIALS))
        caps_s = caps_s.reshape((-1,) + (1,) * equity.ndim)
        score = score + PENALTY_SECTOR * np.clip(frac - caps_s, 0.0, None).sum(axis=0)
        fin_short = np.clip(lim.min_financials - al.financials - frac[fin], 0.0, None)
        small_short = np.clip(lim.min_small_cap - al.small - small / safe, 0.0, None)
        score = score + PENALTY_MINIMUM * np.where(has_equity, fin_short + small_short, 0.0)
        if names.shape[0]:
            caps_n = lim.max_single_stock + al.names
            caps_n = (caps_n if name_rows is None else caps_n[name_rows]).reshape((-1,) + (1,) * equity.ndim)
            score = score + PENALTY_SINGLE_STOCK * np.clip(names / total - caps_n, 0.0, None).sum(axis=0)
        vol = np.sqrt(np.clip(var, 0.0, None)) / total
        score = score + PENALTY_VOLATILITY * np.clip(vol - lim.vol_cap - al.vol, 0.0, None)
        turnover = np.clip(np.maximum(buys - b.cash_in, sells - b.cash_out), 0.0, None) / b.value
        score = score + PENALTY_TURNOVER * np.clip(turnover - lim.max_turnover - al.turnover, 0.0, None)
        return score, score + (PULL_WEIGHT * pull + self.cash_drag * cash) / b.value

    def single_scores(
        self, st: dict, steps: _Steps, *, cash_weight: float = CASH_WEIGHT
    ) -> tuple[np.ndarray, np.ndarray]:
        """(C,) violations and whole scores after each single step."""
        e, r = self.exp, self.risk
        A, a, d = st["A"], steps.asset, steps.dollars
        cash = st["cash"]
        short_now = np.clip(-cash, 0.0, None)
        shortfall = short_now.sum() - short_now[steps.account] + np.clip(-(cash[steps.account] + steps.cash), 0.0, None)
        u = r.loadings[:, a] * d
        f = st["factor"]
        spec = r.specific * A
        var = f @ f + 2 * (f @ u) + (u * u).sum(axis=0) + spec @ spec + (r.specific[a] ** 2) * (2 * A[a] * d + d * d)
        return self._score(
            st,
            sectors=(e.sectors @ A)[:, None] + e.sectors[:, a] * d,
            equity=e.equity @ A + e.equity[a] * d,
            small=e.size[SMALL] @ A + e.size[SMALL, a] * d,
            names=(e.names_matrix @ A)[:, None] + e.names_matrix[:, a] * d,
            total=st["total"] + d + steps.cash,
            var=var,
            shortfall=shortfall,
            buys=st["buys"] + steps.buys,
            sells=st["sells"] + steps.sells,
            pull=st["pull"] + steps.pull,
            cash=cash.sum() + steps.cash,
            cash_weight=cash_weight,
        )

    def pair_scores(self, st: dict, steps: _Steps) -> tuple[np.ndarray, np.ndarray]:
        """(C, C) violations and whole scores of taking two steps (on different slots); the diagonal and
        same-slot pairs are inf."""
        e, r = self.exp, self.risk
        A, a, d = st["A"], steps.asset, steps.dollars

        def both(x: np.ndarray) -> np.ndarray:
            return x[..., :, None] + x[..., None, :]

        cash = st["cash"]
        short_now = np.clip(-cash, 0.0, None)
        acc = steps.account
        same_acc = acc[:, None] == acc[None, :]
        c1 = cash[acc][:, None] + steps.cash[:, None] + np.where(same_acc, steps.cash[None, :], 0.0)
        c2 = cash[acc][None, :] + steps.cash[None, :]
        shortfall = (
            short_now.sum() - short_now[acc][:, None] - np.where(same_acc, 0.0, short_now[acc][None, :])
            + np.clip(-c1, 0.0, None) + np.where(same_acc, 0.0, np.clip(-c2, 0.0, None))
        )
        u = r.loadings[:, a] * d  # (k, C)
        f = st["factor"]
        fu = f @ u
        uu = (u * u).sum(axis=0)
        spec = r.specific * A
        s2 = r.specific[a] ** 2
        spec_single = s2 * (2 * A[a] * d + d * d)
        same_asset = a[:, None] == a[None, :]
        var = (
            f @ f + spec @ spec + both(2 * fu + uu + spec_single) + 2 * (u.T @ u)
            + np.where(same_asset, 2 * s2[:, None] * d[:, None] * d[None, :], 0.0)
        )
        # only rows some pair could push over their cap are scored (the others add exact zeros)
        sector_rows, name_rows = self._open_rows(st, steps)
        sec_d = e.sectors[sector_rows][:, a] * d
        name_d = e.names_matrix[name_rows][:, a] * d
        violation, scores = self._score(
            st,
            sectors=(e.sectors @ A)[sector_rows][:, None, None] + both(sec_d),
            equity=e.equity @ A + both(e.equity[a] * d),
            small=e.size[SMALL] @ A + both(e.size[SMALL, a] * d),
            names=(e.names_matrix @ A)[name_rows][:, None, None] + both(name_d),
            total=st["total"] + both(d + steps.cash),
            var=var,
            shortfall=shortfall,
            buys=st["buys"] + both(steps.buys),
            sells=st["sells"] + both(steps.sells),
            pull=st["pull"] + both(steps.pull),
            cash=cash.sum() + both(steps.cash),
            cash_weight=CASH_WEIGHT,
            sector_rows=sector_rows,
            name_rows=name_rows,
        )
        same = steps.slot[:, None] == steps.slot[None, :]
        violation[same] = np.inf
        scores[same] = np.inf
        return violation, scores

    def _open_rows(self, st: dict, steps: _Steps) -> tuple[np.ndarray, np.ndarray]:
        """Sector rows (always with FINANCIALS) and single-name rows that two of `steps` could push over
        their caps: a bound from the largest increases and the smallest denominators (conservative)."""
        e, lim, al = self.exp, self.limits, self.allow
        A, a, d = st["A"], steps.asset, steps.dollars
        n_sectors = e.sectors.shape[0]
        equity_low = float(e.equity @ A) + 2.0 * min(0.0, float((e.equity[a] * d).min(initial=0.0)))
        if equity_low > 1e-9:
            rise = np.clip((e.sectors[:, a] * d).max(axis=1, initial=0.0), 0.0, None)
            high = (e.sectors @ A + 2.0 * rise) / equity_low
            open_s = high > lim.max_sector + al.sectors - 1e-9
            open_s[FINANCIALS] = True
            sector_rows = np.nonzero(open_s)[0]
        else:
            sector_rows = np.arange(n_sectors)
        names = e.names_matrix
        total_low = st["total"] + 2.0 * min(0.0, float((d + steps.cash).min(initial=0.0)))
        if names.shape[0] and total_low > 0:
            rise = np.clip((names[:, a] * d).max(axis=1, initial=0.0), 0.0, None)
            high = (names @ A + 2.0 * rise) / total_low
            name_rows = np.nonzero(high > lim.max_single_stock + al.names - 1e-9)[0]
        else:
            name_rows = np.arange(names.shape[0])
        return sector_rows, name_rows

    def state_score(self, q: np.ndarray, relief: np.ndarray, q_cont: np.ndarray) -> tuple[float, float]:
        """(violation, whole score) of trades q as they stand (a no-op step on slot 0)."""
        st = self._state(q, relief, q_cont)
        b = self.book
        noop = _Steps(np.array([0]), q[[0]], b.asset_of[[0]], b.account_of[[0]], *(np.zeros(1) for _ in range(5)))
        violation, score = self.single_scores(st, noop)
        return float(violation[0]), float(score[0])

    # ---- search (reference: the descent as specified, one candidate array at a time)

    def repair_reference(
        self, q: np.ndarray, relief: np.ndarray, q_cont: np.ndarray, max_steps: int, *, trace: list | None = None
    ) -> tuple[np.ndarray, int]:
        """The descent of `repair`, written directly on `steps` / `single_scores` / `pair_scores` (slow; tests
        compare `repair` with it)."""
        q = q.copy()
        taken = 0
        violation, score = self.state_score(q, relief, q_cont)
        while taken < max_steps and violation > 1e-12:
            if trace is not None:
                trace.append((violation, score))
            steps = self.steps(q, q_cont)
            if len(steps.slot) == 0:
                break
            st = self._state(q, relief, q_cont)
            single_violation, singles = self.single_scores(st, steps)
            ok = (single_violation < violation - 1e-12) & (singles < score - 1e-12)
            best = int(np.argmin(np.where(ok, singles, np.inf))) if ok.any() else -1
            if best >= 0 and single_violation[best] < (1.0 - SINGLE_STEP_PROGRESS) * violation:
                q[steps.slot[best]] = steps.new_q[best]
                violation, score = float(single_violation[best]), float(singles[best])
                taken += 1
                continue
            # no single step makes real progress: score pairs of steps too and take the better move
            _, no_cash = self.single_scores(st, steps, cash_weight=0.0)
            traded = np.nonzero(q[steps.slot] != 0)[0]
            pick = np.unique(np.concatenate([np.argsort(singles)[:PAIR_POOL], np.argsort(no_cash)[:PAIR_POOL], traded]))
            pool = steps.take(pick)
            pair_violation, pairs = self.pair_scores(st, pool)
            ok = (pair_violation < violation - 1e-12) & (pairs < score - 1e-12)
            if not ok.any() or (best >= 0 and np.min(np.where(ok, pairs, np.inf)) >= singles[best]):
                if best < 0:
                    break
                q[steps.slot[best]] = steps.new_q[best]
                violation, score = float(single_violation[best]), float(singles[best])
                taken += 1
                continue
            i, j = np.unravel_index(int(np.argmin(np.where(ok, pairs, np.inf))), pairs.shape)
            q[pool.slot[i]] = pool.new_q[i]
            q[pool.slot[j]] = pool.new_q[j]
            violation, score = float(pair_violation[i, j]), float(pairs[i, j])
            taken += 2
        if trace is not None:
            trace.append((violation, score))
        return q, taken

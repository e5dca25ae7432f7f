"""Rebalance options: validate and convert only (saving and queuing happen in the view/service)."""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms

from engine.tickers import ticker_normalize
from engine.types import Options
from portfolios.models import MAX_FUNDS_LIMIT, MIN_TRADE_FRACTION_LIMIT, MIN_TRADE_USD_LIMIT, Portfolio

KEEP_MAX_CHARS = Portfolio._meta.get_field("keep_tickers").max_length
MAX_FUNDS = MAX_FUNDS_LIMIT
MAX_MIN_TRADE_USD = Decimal(MIN_TRADE_USD_LIMIT)
MAX_MIN_TRADE_PCT = Decimal(round(MIN_TRADE_FRACTION_LIMIT * 100))
DEFAULTS = Options()


def _plain(value: Decimal) -> str:
    """Decimal("250.00") -> "250", Decimal("0.250") -> "0.25" (no exponent)."""
    return f"{value.quantize(Decimal('0.01')).normalize():f}"


def _pct(fraction: float) -> str:
    """0.0025 -> "0.25": a stored fraction as the percentage the form shows."""
    return _plain(Decimal(str(fraction)) * 100)


def _fraction(pct: Decimal | None, default: float | None) -> float | None:
    """A percentage the form took -> the stored fraction; blank -> `default`."""
    return default if pct is None else float(pct) / 100


class RebalanceOptionsForm(forms.ModelForm):
    max_turnover_pct = forms.DecimalField(
        label="Max turnover (%)",
        required=False,
        min_value=Decimal("0"),
        max_value=Decimal("100"),
        max_digits=5,
        decimal_places=1,
        error_messages={
            "max_value": "Max turnover is a percentage from 0 to 100.",
            "min_value": "Max turnover is a percentage from 0 to 100.",
            "max_decimal_places": "Use at most one decimal place, e.g. 12.5.",
        },
        help_text="Share of the portfolio's value that may be traded, 0 to 100. Blank uses the profile's limit.",
        widget=forms.NumberInput(attrs={"step": "0.5", "min": "0", "max": "100", "inputmode": "decimal"}),
    )

    tax_budget_pct = forms.DecimalField(
        label="Tax budget (% of value per year)",
        required=False,  # blank: the default
        min_value=Decimal("0"),
        max_value=Decimal("100"),
        max_digits=5,
        decimal_places=2,
        error_messages={
            "invalid": "Tax budget: enter a percentage, e.g. 1 or 0.5.",
            "max_value": "Tax budget is a percentage of value from 0 to 100.",
            "min_value": "Tax budget is a percentage of value from 0 to 100.",
            "max_decimal_places": "Tax budget: use at most two decimal places, e.g. 0.75.",
            "max_digits": "Tax budget is a percentage of value from 0 to 100.",
        },
        help_text="Estimated tax a plan may realise in a calendar year, net of losses, less what executed plans "
        "already realised this year. 0 realises no net gains. Blank: 1.",
        widget=forms.NumberInput(attrs={"step": "0.25", "min": "0", "max": "100", "inputmode": "decimal"}),
    )
    tax_unlimited = forms.BooleanField(
        label="No tax limit", required=False,
        help_text="Ignore the tax budget (taxes still count as a cost).",
    )
    max_funds = forms.IntegerField(
        label="Most funds to buy",
        required=False,
        min_value=1,
        max_value=MAX_FUNDS,
        error_messages={
            "invalid": f"Most funds to buy is a whole number from 1 to {MAX_FUNDS}, or blank for no cap.",
            "min_value": f"Most funds to buy is a whole number from 1 to {MAX_FUNDS}, or blank for no cap.",
            "max_value": f"Most funds to buy is a whole number from 1 to {MAX_FUNDS}, or blank for no cap.",
        },
        help_text="Distinct funds one plan buys. Blank: no cap. Default 6.",
        widget=forms.NumberInput(attrs={"step": "1", "min": "1", "max": str(MAX_FUNDS), "inputmode": "numeric"}),
    )
    min_trade_usd = forms.DecimalField(
        label="Minimum order (USD)",
        required=False,  # blank: the default
        min_value=Decimal("0"),
        max_value=MAX_MIN_TRADE_USD,
        max_digits=9,
        decimal_places=2,
        error_messages={
            "invalid": "Minimum order (USD): enter an amount in dollars, e.g. 250.",
            "max_value": f"Minimum order (USD) is an amount from 0 to {MAX_MIN_TRADE_USD:,}.",
            "min_value": f"Minimum order (USD) is an amount from 0 to {MAX_MIN_TRADE_USD:,}.",
            "max_decimal_places": "Minimum order (USD): use at most two decimal places.",
            "max_digits": f"Minimum order (USD) is an amount from 0 to {MAX_MIN_TRADE_USD:,}.",
        },
        help_text="No order smaller than this or the percentage below, whichever is larger. Blank: 250.",
        widget=forms.NumberInput(attrs={"step": "1", "min": "0", "inputmode": "decimal"}),
    )
    min_trade_pct = forms.DecimalField(
        label="Minimum order (% of value)",
        required=False,  # blank: the default
        min_value=Decimal("0"),
        max_value=MAX_MIN_TRADE_PCT,
        max_digits=5,
        decimal_places=2,
        error_messages={  # "%%": Django %-formats a message that has parameters
            "invalid": "Minimum order (% of value): enter a percentage, e.g. 0.25.",
            "max_value": f"Minimum order (%% of value) is a percentage from 0 to {MAX_MIN_TRADE_PCT}.",
            "min_value": f"Minimum order (%% of value) is a percentage from 0 to {MAX_MIN_TRADE_PCT}.",
            "max_decimal_places": "Minimum order (%% of value): use at most two decimal places, e.g. 0.25.",
            "max_digits": f"Minimum order (%% of value) is a percentage from 0 to {MAX_MIN_TRADE_PCT}.",
        },
        help_text="Share of the portfolio's value. Blank: 0.25.",
        widget=forms.NumberInput(attrs={"step": "0.05", "min": "0", "max": str(MAX_MIN_TRADE_PCT),
                                        "inputmode": "decimal"}),
    )

    keep_tickers = forms.CharField(
        label="Keep these tickers",
        required=False,
        max_length=2000,  # raw input; the normalised list is checked against the model's limit below
        help_text="Never sold, e.g. AAPL, BRK.B. Separate with commas or spaces.",
        widget=forms.TextInput(attrs={"placeholder": "AAPL, MSFT", "autocapitalize": "characters"}),
    )

    class Meta:
        model = Portfolio
        fields = ["profile", "cash_change_usd", "buy_only", "keep_tickers", "fractional", "use_views"]
        labels = {
            "profile": "Risk profile",
            "cash_change_usd": "Cash to add or withdraw (USD)",
            "buy_only": "Buy only (never sell)",
            "fractional": "Allow fractional shares",
            "use_views": "Apply the dated investment views (January 2026)",
        }
        help_texts = {
            "cash_change_usd": "Positive to add cash, negative to withdraw, 0 for neither.",
            "buy_only": "Only add money: new cash is spent, nothing is sold.",
            "fractional": "Otherwise whole shares only.",
            "use_views": "Tilts toward financials, small caps and equal weight; see “Why this tilt”.",
        }
        widgets = {
            "cash_change_usd": forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance is not None and not self.is_bound:
            if instance.max_turnover is not None:
                self.initial["max_turnover_pct"] = (Decimal(str(instance.max_turnover)) * 100).quantize(
                    Decimal("0.1")
                )
            unlimited = instance.tax_budget is None
            self.initial["tax_unlimited"] = unlimited
            self.initial["tax_budget_pct"] = _pct(DEFAULTS.tax_budget if unlimited else instance.tax_budget)
            self.initial["max_funds"] = instance.max_funds
            self.initial["min_trade_usd"] = _plain(Decimal(str(instance.min_trade_usd)))
            self.initial["min_trade_pct"] = _pct(instance.min_trade_fraction)
        self.order_fields(["profile", "cash_change_usd", "buy_only", "keep_tickers", "fractional",
                           "max_turnover_pct", "tax_budget_pct", "tax_unlimited", "max_funds", "min_trade_usd",
                           "min_trade_pct", "use_views"])


    def clean_keep_tickers(self) -> str:
        raw = self.cleaned_data.get("keep_tickers") or ""
        tickers: list[str] = []
        bad: list[str] = []
        for part in re.split(r"[,;\s]+", raw):
            if not part.strip():
                continue
            try:
                ticker = ticker_normalize(part)
            except ValueError:
                bad.append(part.strip())
                continue
            if ticker not in tickers:
                tickers.append(ticker)
        if bad:
            raise forms.ValidationError(
                "Not a ticker: %(bad)s. Use letters, digits, '.' or '-', e.g. AAPL, BRK-B.",
                params={"bad": ", ".join(bad[:5])},
            )
        value = ", ".join(tickers)
        if len(value) > KEEP_MAX_CHARS:
            raise forms.ValidationError(f"Too many tickers to keep (at most {KEEP_MAX_CHARS} characters).")
        return value

    def save(self, commit: bool = True) -> Portfolio:
        portfolio = super().save(commit=False)
        pct = self.cleaned_data.get("max_turnover_pct")
        portfolio.max_turnover = None if pct is None else float(pct) / 100
        data = self.cleaned_data
        tax = data.get("tax_budget_pct")
        portfolio.tax_budget = None if data.get("tax_unlimited") else _fraction(tax, DEFAULTS.tax_budget)
        portfolio.max_funds = data.get("max_funds")
        usd = data.get("min_trade_usd")
        portfolio.min_trade_usd = DEFAULTS.min_trade_usd if usd is None else float(usd)
        portfolio.min_trade_fraction = _fraction(data.get("min_trade_pct"), DEFAULTS.min_trade_fraction)
        if commit:
            portfolio.save()
        return portfolio

"""Rebalance options: validate and convert only (saving and queuing happen in the view/service)."""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms

from engine.tickers import ticker_normalize
from portfolios.models import Portfolio

KEEP_MAX_CHARS = Portfolio._meta.get_field("keep_tickers").max_length


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
        if self.instance is not None and self.instance.max_turnover is not None and not self.is_bound:
            self.initial["max_turnover_pct"] = (Decimal(str(self.instance.max_turnover)) * 100).quantize(
                Decimal("0.1")
            )
        self.order_fields(["profile", "cash_change_usd", "buy_only", "keep_tickers", "fractional",
                           "max_turnover_pct", "use_views"])

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
        if commit:
            portfolio.save()
        return portfolio

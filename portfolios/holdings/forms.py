"""Forms for holdings: they validate and convert; services write."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.conf import settings

from engine.tickers import ticker_normalize
from portfolios.holdings.selectors import ExecutableTrade
from portfolios.holdings.services import MAX_FILL_PRICE, ExecutedSelection
from portfolios.models import Account, Portfolio


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Positions file",
        help_text="The positions file your broker exports (Fidelity, Schwab, Vanguard, E*TRADE, Merrill Edge, "
                  "Interactive Brokers, or an OFX/QFX statement) or your own CSV with columns ticker, shares and "
                  "optionally cost_basis, account, account_type.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.txt,.ofx,.qfx,text/csv"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.IMPORT_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is "
                                        f"{limit / 1024 / 1024:.1f} MB.")
        upload.seek(0)
        self.cleaned_data["data"] = upload.read(limit + 1)
        return upload


class ConfirmForm(forms.Form):
    mode = forms.ChoiceField(
        label="How to apply it",
        choices=[
            ("replace", "Replace: the portfolio becomes exactly this file"),
            ("merge", "Merge: update the accounts and tickers in this file, keep everything else"),
        ],
        initial="replace",
        widget=forms.RadioSelect,
    )
    token = forms.CharField(widget=forms.HiddenInput)


class AccountForm(forms.Form):
    name = forms.CharField(max_length=100)
    account_type = forms.ChoiceField(label="Type", choices=Account.Type.choices, initial=Account.Type.TAXABLE,
                                     help_text="Taxes on sales are estimated for taxable accounts only.")
    broker = forms.CharField(max_length=40, required=False)
    number_masked = forms.CharField(label="Account number (last digits)", max_length=20, required=False,
                                    help_text="Optional, e.g. ...1234. Never enter the full number.")
    cash_usd = forms.DecimalField(label="Cash (USD)", max_digits=18, decimal_places=2, initial=Decimal("0"),
                                  min_value=Decimal("-1e15"), max_value=Decimal("1e15"))

    def __init__(self, *args, portfolio: Portfolio, account: Account | None = None, **kwargs):
        self.portfolio, self.account = portfolio, account
        if account is not None and "initial" not in kwargs:
            kwargs["initial"] = {"name": account.name, "account_type": account.account_type,
                                 "broker": account.broker, "number_masked": account.number_masked,
                                 "cash_usd": account.cash_usd}
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the account a name.")
        clash = self.portfolio.accounts.filter(name=name)
        if self.account is not None:
            clash = clash.exclude(pk=self.account.pk)
        if clash.exists():
            raise forms.ValidationError("This portfolio already has an account with that name.")
        return name

    def clean_number_masked(self) -> str:
        number = self.cleaned_data["number_masked"].strip()
        digits = sum(ch.isdigit() for ch in number)
        if digits > 4:
            raise forms.ValidationError("Enter only the last 4 digits (e.g. ...1234).")
        return number


class HoldingForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.none(), required=False)
    ticker = forms.CharField(max_length=24, help_text="For example AAPL, VTI or BRK-B.")
    shares = forms.DecimalField(max_digits=20, decimal_places=6, min_value=Decimal("0.000001"),
                                max_value=Decimal("9999999999999"))
    cost_basis_usd = forms.DecimalField(label="Total cost basis (USD)", max_digits=18, decimal_places=2,
                                        min_value=Decimal("0"), required=False,
                                        help_text="What you paid for the whole lot; used to estimate taxes.")
    acquired_on = forms.DateField(label="Acquired on", required=False,
                                  widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, portfolio: Portfolio, **kwargs):
        super().__init__(*args, **kwargs)
        accounts = portfolio.accounts.order_by("name", "id")
        field = self.fields["account"]
        field.queryset = accounts
        if accounts.exists():
            field.required = True
            field.empty_label = None
        else:
            field.empty_label = "Taxable (a new account)"
            field.help_text = "The portfolio has no accounts yet; a taxable account is created."

    def clean_ticker(self) -> str:
        try:
            ticker = ticker_normalize(self.cleaned_data["ticker"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc))
        if ticker == "CASH":
            raise forms.ValidationError("Cash is entered on the account (edit the account), not as a holding.")
        return ticker

    def clean_acquired_on(self) -> dt.date | None:
        value = self.cleaned_data.get("acquired_on")
        if value and value > dt.date.today():
            raise forms.ValidationError("The date is in the future.")
        return value


class ExecutedTradesForm(forms.Form):
    """"I made these trades": which of a run's open trades were made, and at what fill price (blank: the plan's).

    `cleaned_data["selections"]` holds the `ExecutedSelection`s for the service.
    """

    trades = forms.TypedMultipleChoiceField(
        coerce=int, widget=forms.CheckboxSelectMultiple, label="Trades you made",
        error_messages={"required": "Tick at least one trade you made.",
                        "invalid_choice": "Trade %(value)s is not an open trade of this suggestion."},
    )

    def __init__(self, *args, trades: list[ExecutableTrade], **kwargs):
        super().__init__(*args, **kwargs)
        self.trades = trades
        open_trades = [t for t in trades if t.executed_at is None]
        self.fields["trades"].choices = [(t.index, str(t.index)) for t in open_trades]
        self.fields["trades"].initial = [t.index for t in open_trades]
        for t in open_trades:
            self.fields[f"price_{t.index}"] = forms.DecimalField(
                label=f"Fill price of trade {t.index + 1} ({t.trade.get('ticker')}, USD)", required=False,
                min_value=Decimal("0.000001"), max_value=MAX_FILL_PRICE, max_digits=16, decimal_places=6,
                error_messages={"min_value": "A fill price is above 0.", "invalid": "Enter a number, e.g. 181.25.",
                                "max_value": f"At most {MAX_FILL_PRICE:,.0f} USD.",
                                "max_decimal_places": "Use at most 6 decimals.", "max_digits": "Too many digits."},
                widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal",
                                                "placeholder": str(t.trade.get("price", ""))}),
            )

    def rows(self) -> list[tuple[ExecutableTrade, bool, forms.BoundField | None]]:
        """(trade, ticked, its fill-price field) for every trade; an executed trade has no field."""
        ticked = {str(v) for v in (self["trades"].value() or [])}
        return [(t, t.executed_at is None and str(t.index) in ticked,
                 self[f"price_{t.index}"] if t.executed_at is None else None) for t in self.trades]

    def price_errors(self) -> list[str]:
        """Each fill-price problem with the trade it belongs to, for the summary above the table."""
        return [f"{self.fields[name].label}: {message}" for name, errors in self.errors.items()
                if name.startswith("price_") for message in errors]

    def clean(self) -> dict:
        data = super().clean()
        data["selections"] = [ExecutedSelection(index=i, fill_price=data.get(f"price_{i}"))
                              for i in data.get("trades") or []]
        return data

"""Forms for the target, the bands and the alert setting: validate and convert only."""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms

from engine.exposures import GICS_SECTORS, SIZES
from portfolios.models import DriftAlertSetting
from portfolios.targets import KINDS, TargetInvalid, bands_validate, target_validate

_FUND = re.compile(r"^\s*([A-Za-z0-9.\-^=]+)\s*[:=\s]\s*([0-9]+(?:\.[0-9]+)?)\s*%?\s*$")
KIND_LABELS = {"thesis": "The dated thesis (January 2026)", "neutral": "Neutral market", "custom": "Custom"}


def _pct(label: str, *, low: int = 0, high: int = 100, required: bool = False) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, required=required, min_value=Decimal(low), max_value=Decimal(high), max_digits=5,
        decimal_places=1, widget=forms.NumberInput(attrs={"step": "0.5", "min": str(low), "max": str(high)}),
    )


def sector_field(sector: str) -> str:
    return "sector_" + re.sub(r"\W+", "_", sector.lower())


class TargetForm(forms.Form):
    kind = forms.ChoiceField(label="Target", choices=[(k, KIND_LABELS[k]) for k in KINDS],
                             widget=forms.RadioSelect)
    stocks_pct = _pct("Stocks (%)")
    bonds_pct = _pct("Bonds (%)")
    cash_pct = _pct("Cash (%)")
    stock_funds = forms.CharField(
        label="Stock funds", required=False, max_length=300,
        help_text="Menu funds and their share of stocks, e.g. VTI 80, VXUS 20. Blank: VTI 80, VXUS 20.",
    )
    bond_funds = forms.CharField(label="Bond funds", required=False, max_length=300,
                                 help_text="Menu funds and their share of bonds, e.g. BND 100. Blank: the profile's.")
    size_large_pct = _pct("Large caps (% of stocks)")
    size_mid_pct = _pct("Mid caps (% of stocks)")
    size_small_pct = _pct("Small caps (% of stocks)")
    band_absolute_pct = _pct("Band: absolute (points)", low=1, high=50, required=True)
    band_relative_pct = _pct("Band: relative (% of the target)", low=1, high=100, required=True)

    def __init__(self, *args, menu: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.menu = menu
        for sector in GICS_SECTORS:
            self.fields[sector_field(sector)] = _pct(f"{sector} tilt (points)", low=-50, high=50)

    @staticmethod
    def initial_for(target: dict, use_views: bool, bands: dict) -> dict:
        kind = target.get("kind") if target.get("kind") == "custom" else ("thesis" if use_views else "neutral")
        initial: dict = {"kind": kind, "band_absolute_pct": round(bands.get("absolute", 0.05) * 100, 1),
                         "band_relative_pct": round(bands.get("relative", 0.25) * 100, 1)}
        if kind == "custom":
            for key in ("stocks", "bonds", "cash"):
                initial[f"{key}_pct"] = round(target["mix"][key] * 100, 1)
            funds = target.get("funds") or {}
            for sleeve in ("stocks", "bonds"):
                chosen = funds.get(sleeve) or {}
                initial[f"{sleeve[:-1]}_funds"] = ", ".join(f"{t} {w * 100:g}" for t, w in chosen.items())
            for sector, tilt in (target.get("sectors") or {}).items():
                initial[sector_field(sector)] = round(tilt * 100, 1)
            for size, share in (target.get("size") or {}).items():
                initial[f"size_{size}_pct"] = round(share * 100, 1)
        return initial

    def _funds(self, name: str) -> dict[str, float] | None:
        raw = self.cleaned_data.get(name) or ""
        if not raw.strip():
            return None
        funds: dict[str, float] = {}
        for part in re.split(r"[,;\n]+", raw):
            if not part.strip():
                continue
            match = _FUND.match(part)
            if match is None:
                self.add_error(name, f"{part.strip()!r}: write a ticker and its percentage, e.g. VTI 80.")
                return None
            funds[match.group(1).upper()] = float(match.group(2)) / 100
        return funds

    def _custom(self) -> dict:
        data = self.cleaned_data
        raw: dict = {"kind": "custom",
                     "mix": {k: float(data.get(f"{k}_pct") or 0) / 100 for k in ("stocks", "bonds", "cash")}}
        funds = {"stocks": self._funds("stock_funds"), "bonds": self._funds("bond_funds")}
        raw["funds"] = {k: v for k, v in funds.items() if v}
        raw["sectors"] = {s: float(data[sector_field(s)]) / 100 for s in GICS_SECTORS if data.get(sector_field(s))}
        sizes = {s: data.get(f"size_{s}_pct") for s in SIZES}
        if any(v is not None for v in sizes.values()):
            raw["size"] = {s: float(v or 0) / 100 for s, v in sizes.items()}
        return raw

    _FIELD_OF = (("target.mix", "stocks_pct"), ("target.funds.stocks", "stock_funds"),
                 ("target.funds.bonds", "bond_funds"), ("target.size", "size_small_pct"),
                 ("bands.absolute", "band_absolute_pct"), ("bands.relative", "band_relative_pct"))

    def _field_for(self, key: str) -> str | None:
        if key.startswith("target.sectors."):
            return sector_field(key.split(".", 2)[2])
        return next((f for prefix, f in self._FIELD_OF if key.startswith(prefix)), None)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        raw = self._custom() if data.get("kind") == "custom" else {"kind": data.get("kind")}
        if self.errors:
            return data
        try:
            data["target"] = target_validate(raw, menu=self.menu)
            data["bands"] = bands_validate({"absolute": float(data["band_absolute_pct"]) / 100,
                                            "relative": float(data["band_relative_pct"]) / 100})
        except TargetInvalid as exc:
            for key, message in exc.errors.items():
                field = self._field_for(key)
                label = self.fields[field].label if field else key
                if key == "target.mix":
                    label = "Stocks + bonds + cash"
                self.add_error(field, f"{label}: {message}")
        return data


class AlertSettingForm(forms.Form):
    mode = forms.ChoiceField(label="Drift e-mails", choices=DriftAlertSetting.Mode.choices, widget=forms.RadioSelect)

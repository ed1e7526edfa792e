"""Money on the wire: Decimal amounts with explicit precision and ISO 4217 currency codes.

Amounts travel as JSON strings ("125.40") so no publisher ever passes through a binary float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

from contracts.wire import decimal_text, fixed_point

#: Active ISO 4217 codes (2026). Funds and precious-metal codes are left out on purpose.
ISO_CURRENCIES: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)

#: Money is kept to the cent everywhere; currencies without cents simply carry ".00".
CENT = Decimal("0.01")


def _iso_currency(code: str) -> str:
    if code not in ISO_CURRENCIES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


CurrencyCode = Annotated[
    str,
    Field(min_length=3, max_length=3),
    AfterValidator(_iso_currency),
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 currency code"}),
]

#: A non-negative amount with at most two decimals.
def _to_cents(value: Decimal) -> Decimal:
    # Canonical form on the way out: "100" and "100.0" both travel on as "100.00".
    return value.quantize(CENT)


#: On the wire only a JSON string of the documented form: "125.40", never 125.4, "1e2" or " 125.40 ".
Amount = Annotated[
    Decimal,
    # The constraints first: placed after a validator, pydantic checks them in Python (three times slower)
    Field(ge=0, max_digits=17, decimal_places=2, allow_inf_nan=False),
    decimal_text(digits=15, places=2, example="125.40", zero_allowed=True),
    AfterValidator(_to_cents),
    fixed_point,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{1,15}(\.[0-9]{1,2})?$",
            "description": "Non-negative decimal amount as a string, at most two decimals",
        }
    ),
]

#: A positive quantity (units, nights, kilometres) with up to four decimals.
Quantity = Annotated[
    Decimal,
    Field(gt=0, max_digits=15, decimal_places=4, allow_inf_nan=False),
    decimal_text(digits=11, places=4, example="3", zero_allowed=False),
    fixed_point,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{1,11}(\.[0-9]{1,4})?$",
            "description": "Positive decimal quantity as a string, at most four decimals",
        }
    ),
]


def to_cents(value: Decimal) -> Decimal:
    """Round an amount to the cent, half away from zero, as accounting does."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)

"""Amounts in a currency's minor unit (ISO 4217), rounded half to even."""

from decimal import ROUND_HALF_EVEN, Decimal

# Currencies whose minor unit is not the cent; every other has two decimals.
MINOR_UNIT_DIGITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
                     "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def rounded(amount: Decimal, currency: str | None) -> Decimal:
    digits = MINOR_UNIT_DIGITS.get(currency or "", 2)
    return amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)

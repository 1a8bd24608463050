"""Text cleaned for speech: markdown, emoji and stray symbols removed or spoken.

Beyond cleaning, the forms a voice reads wrongly are written out the way they are said:
money ("$5" -> "5 dollars", "$0.99" -> "99 cents", "$2.5M" -> "2.5 million dollars"),
temperatures ("25°C" -> "25 degrees Celsius"), common units after a number ("5 km" ->
"5 kilometers", "1 min" -> "1 minute"), small numeric ranges ("5-10" -> "5 to 10"), a few
fractions, multipliers ("3x") and the abbreviations e.g., i.e. and vs. Numbers themselves
stay digits: both engines read digits, times and decimals well ("10:30", "3.5").
"""

from __future__ import annotations

import re

_MARKDOWN = [
    (re.compile(r"```.*?```", re.S), " "),
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"(\*\*|\*|~~)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    # Underscores mark emphasis only at word edges: snake_case_name is not emphasis.
    (re.compile(r"(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\1(?!\w)"), r"\2"),
    (re.compile(r"^\s{0,3}#{1,6}\s+", re.M), ""),
    (re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.M), ""),
    (re.compile(r"^\s*>\s?", re.M), ""),
]
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u231a\u231b\u23e9-\u23fa\u20e3\ufe0f\u200d]+"
)
_SPOKEN = {"&": " and ", "%": " percent", "+": " plus ", "=": " equals ", "@": " at "}
_DROP = re.compile(r"[*#_~`|<>{}\[\]\\^]")

# name, plural, name of the hundredth, its plural
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "", ""),
}
_SCALES = {"k": "thousand", "m": "million", "bn": "billion", "b": "billion"}
_MONEY = re.compile(
    r"(?<![\w$€£¥])([$€£¥])\s?(\d[\d,]*)(?:\.(\d+))?"
    r"(?:\s?(thousand|million|billion|trillion|bn|k|m|b)(?![\w]))?",
    re.I,
)
_TEMPERATURE = re.compile(r"(\d+(?:\.\d+)?)\s?°\s?([CF])(?![\w])")
_DEGREES = re.compile(r"(\d+(?:\.\d+)?)\s?°")
_UNITS = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "ml": ("milliliter", "milliliters"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "kW": ("kilowatt", "kilowatts"),
    "TB": ("terabyte", "terabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "ft": ("foot", "feet"),
    "oz": ("ounce", "ounces"),
    "hrs": ("hour", "hours"),
    "hr": ("hour", "hours"),
    "mins": ("minute", "minutes"),
    "min": ("minute", "minutes"),
    "secs": ("second", "seconds"),
    "sec": ("second", "seconds"),
    "ms": ("millisecond", "milliseconds"),
}
_UNIT = re.compile(
    r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s?("
    + "|".join(re.escape(unit) for unit in sorted(_UNITS, key=len, reverse=True))
    + r")(?![\w/])"
)
_RANGE = re.compile(r"(?<![\d\-–.,:/])(\d{1,3})(?:-|\s?–\s?)(\d{1,3})(?![\d\-–]|[.,:/]\d)")
_FRACTIONS = {
    "1/2": "one half",
    "1/3": "one third",
    "2/3": "two thirds",
    "1/4": "one quarter",
    "3/4": "three quarters",
    "24/7": "twenty-four seven",
    "50/50": "fifty-fifty",
}
_FRACTION = re.compile(r"(?<![\w/])(" + "|".join(map(re.escape, _FRACTIONS)) + r")(?![\w/])")
_TIMES = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)x(?![\w])")
_ABOUT = re.compile(r"~\s?(?=\d)")
_NUMBER_SIGN = re.compile(r"(?<![\w#&])#(?=\d)")
_ABBREVIATIONS = [
    (re.compile(r"(?<![\w.])e\.\s?g\.(?!\w)", re.I), "for example"),
    (re.compile(r"(?<![\w.])i\.\s?e\.(?!\w)", re.I), "that is"),
    (re.compile(r"(?<![\w.])vs\.?(?!\w)", re.I), "versus"),
]


def _money(match: re.Match[str]) -> str:
    symbol, whole, decimals, scale = match.groups()
    one, many, hundredth, hundredths = _CURRENCIES[symbol]
    if scale:
        amount = whole + (f".{decimals}" if decimals else "")
        scale_word = _SCALES.get(scale.lower(), scale.lower())
        return f"{amount} {scale_word} {many}"
    if decimals is None:
        return f"{whole} {one if whole == '1' else many}"
    if len(decimals) != 2 or not hundredth:
        return f"{whole}.{decimals} {many}"
    cents = str(int(decimals))
    if whole.strip("0,") == "":
        return f"{cents} {hundredth if cents == '1' else hundredths}"
    name = one if whole == "1" else many
    return f"{whole} {name}" if cents == "0" else f"{whole} {name} {cents}"


def _temperature(match: re.Match[str]) -> str:
    number, scale = match.groups()
    unit = "degree" if number == "1" else "degrees"
    return f"{number} {unit} {'Celsius' if scale == 'C' else 'Fahrenheit'}"


def _degrees(match: re.Match[str]) -> str:
    return f"{match.group(1)} {'degree' if match.group(1) == '1' else 'degrees'} "


def _unit(match: re.Match[str]) -> str:
    one, many = _UNITS[match.group(2)]
    return f"{match.group(1)} {one if match.group(1) == '1' else many}"


def speak_forms(text: str) -> str:
    """Money, temperatures, units, ranges and a few symbols written the way they are said."""
    text = _MONEY.sub(_money, text)
    text = _TEMPERATURE.sub(_temperature, text)
    text = _DEGREES.sub(_degrees, text)
    text = _UNIT.sub(_unit, text)
    text = _FRACTION.sub(lambda m: _FRACTIONS[m.group(1)], text)
    text = _RANGE.sub(r"\1 to \2", text)
    text = _TIMES.sub(r"\1 times", text)
    text = _ABOUT.sub("about ", text)
    text = _NUMBER_SIGN.sub("number ", text)
    for pattern, spoken in _ABBREVIATIONS:
        text = pattern.sub(spoken, text)
    return text


def normalize_for_speech(text: str) -> str:
    for pattern, replacement in _MARKDOWN:
        text = pattern.sub(replacement, text)
    text = _EMOJI.sub("", text)
    text = speak_forms(text)
    for symbol, spoken in _SPOKEN.items():
        text = text.replace(symbol, spoken)
    text = _DROP.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()

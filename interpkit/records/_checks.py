"""Field validators shared by the record types.

Each ``check_*`` returns the value in its canonical Python form (ints promoted to float for
scores, lists to tuples for vectors) or raises `RecordError` naming the field. ``bool`` is never
accepted as a number: JSON ``true`` in a score column is a bug in the producer, not a 1.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ._errors import _MISSING, RecordError


def check_required(data: Mapping[str, Any], key: str, field: str | None = None) -> Any:
    """``data[key]``; a missing key raises `RecordError` naming ``field`` (default ``key``)."""
    if key not in data:
        raise RecordError("a value (the field is required)", _MISSING, field=field or key)
    return data[key]


def _is_real(value: Any) -> bool:
    if type(value) is float or type(value) is int:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(value: Any, field: str, *, optional: bool = False) -> float | None:
    """A finite real number (int or float, never bool), returned as float; None if ``optional``."""
    if value is None and optional:
        return None
    if not _is_real(value):
        what = "a finite number or null" if optional else "a finite number"
        raise RecordError(what, value, field=field)
    out = float(value)
    if not math.isfinite(out):
        what = "a finite number or null" if optional else "a finite number"
        raise RecordError(what, value, field=field)
    return out


def check_float(value: Any, field: str) -> float:
    """A finite real number, returned as float (the non-optional form of `check_number`)."""
    out = check_number(value, field)
    assert out is not None
    return out


def check_int(value: Any, field: str, *, optional: bool = False, minimum: int | None = None) -> int | None:
    """An integer (never bool), at least ``minimum`` when given."""
    if value is None and optional:
        return None
    what = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (" or null" if optional else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RecordError(what, value, field=field)
    out = int(value)
    if minimum is not None and out < minimum:
        raise RecordError(what, value, field=field)
    return out


def check_str(value: Any, field: str, *, optional: bool = False, nonempty: bool = False) -> str | None:
    """A string (non-empty when ``nonempty``); None if ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or (nonempty and not value.strip()):
        what = ("a non-empty string" if nonempty else "a string") + (" or null" if optional else "")
        raise RecordError(what, value, field=field)
    return value


def check_bool(value: Any, field: str) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise RecordError("true or false", value, field=field)
    return value


def check_id(value: Any, field: str, *, optional: bool = False) -> str | int | None:
    """An identifier: a non-empty string or an integer (never bool or float)."""
    if value is None and optional:
        return None
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    what = "a non-empty string or an integer id" + (" or null" if optional else "")
    raise RecordError(what, value, field=field)


def check_layer(value: Any, field: str) -> int | str | None:
    """A layer: an integer index, a site name string, or null."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip():
        return value
    raise RecordError("an integer layer index, a site name string, or null", value, field=field)


def check_vector(value: Any, field: str, *, optional: bool = True) -> tuple[float, ...] | None:
    """A non-empty list of finite numbers, returned as a tuple of floats."""
    if value is None and optional:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise RecordError("a list of finite numbers" + (" or null" if optional else ""), value, field=field)
    items = value.tolist() if hasattr(value, "tolist") else value
    out = []
    for i, item in enumerate(items):
        out.append(check_float(item, f"{field}[{i}]"))
    if not out:
        raise RecordError("a non-empty list of finite numbers", value, field=field)
    return tuple(out)


def check_mapping(value: Any, field: str | None) -> Mapping[str, Any]:
    """A JSON object (a mapping with string keys)."""
    if not isinstance(value, Mapping):
        raise RecordError("a JSON object", value, field=field)
    for key in value:
        if not isinstance(key, str):
            raise RecordError("string keys", key, field=field)
    return value


def freeze_extra(extra: Any, known: Collection[str]) -> Mapping[str, Any]:
    """Validate an ``extra`` mapping (string keys, none shadowing a record field) and freeze it."""
    extra = check_mapping(extra, "extra")
    for key in extra:
        if key in known:
            raise RecordError("extra keys that are not record fields", key, field=f"extra.{key}")
    return MappingProxyType(dict(extra))


def _squash(name: str) -> str:
    return name.casefold().replace("_", "").replace("-", "").replace(" ", "")


def split_fields(
    row: Mapping[str, Any],
    fields: Sequence[str],
    required: Mapping[str, str],
    *,
    interpreted: Collection[str] = (),
    lenient: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a JSON row into known fields and extras.

    Unknown keys are kept as extras. In strict mode an unknown key that looks like a misspelling
    of a record field absent from the row (``"lable"`` for ``"label"``) is refused, because it would
    otherwise be silently ignored; ``lenient=True`` keeps it as an extra.

    Args:
        row: the parsed JSON object.
        fields: the record's field names.
        required: required field name -> description of the expected value.
        interpreted: extra keys that readers interpret (never treated as typos).
        lenient: keep misspelt-looking keys as extras instead of raising.

    Returns:
        ``(known, extra)``: dicts of field values present in the row and of everything else.

    Raises:
        RecordError: a required field is missing, or (strict) an unknown key looks like a typo.
    """
    row = check_mapping(row, None)
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in row.items():
        if key in fields:
            known[key] = value
        else:
            extra[key] = value
    if extra and not lenient:
        absent = [f for f in fields if f not in known]
        squashed = {_squash(f): f for f in absent}
        for key in extra:
            if key in interpreted:
                continue
            guess = squashed.get(_squash(key))
            if guess is None:
                close = difflib.get_close_matches(key, absent, n=1, cutoff=0.85)
                guess = close[0] if close else None
            if guess is not None:
                raise RecordError(
                    f"the field name '{guess}' (an unknown field that looks like a misspelling is "
                    "refused; pass lenient=True to keep it as an extra field)",
                    key,
                    field=key,
                )
    for name, what in required.items():
        if name not in known:
            raise RecordError(what, _MISSING, field=name)
    return known, extra

"""The API's JSON body parser: stricter than ``json.loads``, and failing the one way Powertools
turns into a validation error."""

from __future__ import annotations

import json
from typing import Any


def parse_json(text: str) -> Any:
    """``json.loads`` refusing NaN, Infinity and repeated keys, and reporting every failure as
    ``JSONDecodeError``, the one error Powertools turns into a validation error (a 50,000-digit
    number or a 10,000-deep array would otherwise escape as ``ValueError``/``RecursionError``).
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError:
        raise
    except _RefusedJsonError as error:
        raise json.JSONDecodeError(str(error), text, 0) from error
    except ValueError as error:  # int(): more than sys.get_int_max_str_digits() digits
        raise json.JSONDecodeError("a number has too many digits", text, 0) from error
    except RecursionError as error:
        raise json.JSONDecodeError("nested too deeply", text, 0) from error


class _RefusedJsonError(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _RefusedJsonError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _RefusedJsonError("an object repeats a key")
    return document

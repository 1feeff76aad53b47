"""User ids and event names: what is accepted, and the exact error for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_bitmapist import (
    DEFAULT_MAX_USER_ID,
    MAX_USER_ID,
    to_user_id,
    validate_event_name,
)


@given(st.integers(min_value=0, max_value=DEFAULT_MAX_USER_ID))
def test_ints_and_digit_strings_in_range_are_offsets(user_id: int) -> None:
    assert to_user_id("e", user_id) == user_id
    assert to_user_id("e", str(user_id)) == user_id


def test_the_default_maximum_keeps_a_key_under_2_mib() -> None:
    # A key holds bits 0 to the largest id: (2**24 - 1) + 1 bits = 2 MiB.
    assert DEFAULT_MAX_USER_ID == 2**24 - 1 == 16_777_215
    assert (DEFAULT_MAX_USER_ID + 1) // 8 == 2 * 1024 * 1024


@given(st.integers(min_value=DEFAULT_MAX_USER_ID + 1, max_value=MAX_USER_ID))
def test_a_raised_maximum_accepts_ids_up_to_it(user_id: int) -> None:
    assert to_user_id("e", user_id, max_user_id=MAX_USER_ID) == user_id
    assert to_user_id("e", str(user_id), max_user_id=user_id) == user_id
    with pytest.raises(
        ValueError, match=r"must be from 0 to \d+ \(BITMAPIST_MAX_USER_ID;"
    ):
        to_user_id("e", user_id, max_user_id=user_id - 1)


def test_none_is_anonymous() -> None:
    assert to_user_id("e", None) is None


def test_leading_zeros_are_decimal() -> None:
    assert to_user_id("e", "007") == 7


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "User id for event 'login' must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got -1."),
        (2**24, "User id for event 'login' must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got 16777216."),
        (2**32 - 1, "User id for event 'login' must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got 4294967295."),
        ("4294967296", "User id for event 'login' must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got '4294967296'."),
        ("9" * 5000, "User id for event 'login' must be from 0 to 16777215 (BITMAPIST_MAX_USER_ID; set BITMAPIST_ID_MAP = True to use any int), got '" + "9" * 59 + "... (5000 characters)."),
        (True, "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got True."),
        (False, "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got False."),
        (1.0, "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got 1.0."),
        ("1.5", "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got '1.5'."),
        ("-3", "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got '-3'."),
        ("", "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got ''."),
        (" 12", "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got ' 12'."),
        ("abc", "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got 'abc'."),
        ("١٢", "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got '١٢'."),
        (b"12", "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got b'12'."),
        ([1], "User id for event 'login' must be an int or a string of decimal digits (set BITMAPIST_ID_MAP = True to use UUIDs, other strings or any int), got [1]."),
    ],
)  # fmt: skip
def test_bad_ids_name_the_event_and_the_value(value: object, message: str) -> None:
    with pytest.raises(ValueError) as error:
        to_user_id("login", value)
    assert str(error.value) == message


@pytest.mark.parametrize(
    "name",
    ["login", "user:logged_in", "a", "x" * 200, "café:vu", "under_score", "a/b.c"],
)
def test_valid_event_names(name: str) -> None:
    assert validate_event_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Event name must not be empty."),
        (None, "Event name must be a str, got None."),
        (7, "Event name must be a str, got 7."),
        (b"login", "Event name must be a str, got b'login'."),
        ("x" * 201, "Event name must be at most 200 characters, got 201: " + repr("x" * 40) + "..."),
        ("two words", "Event name must not contain whitespace or control characters, got 'two words'."),
        ("tab\there", "Event name must not contain whitespace or control characters, got 'tab\\there'."),
        ("new\nline", "Event name must not contain whitespace or control characters, got 'new\\nline'."),
        ("nul\x00", "Event name must not contain whitespace or control characters, got 'nul\\x00'."),
        ("nbsp\u00a0", "Event name must not contain whitespace or control characters, got 'nbsp\\xa0'."),
        ("bitop_x", "Event name must not start with 'bitop_' nor be 'bitop', which bitmapist reserves for temporary keys, got 'bitop_x'."),
        ("bitop", "Event name must not start with 'bitop_' nor be 'bitop', which bitmapist reserves for temporary keys, got 'bitop'."),
    ],
)  # fmt: skip
def test_bad_event_names(name: object, message: str) -> None:
    with pytest.raises(ValueError) as error:
        validate_event_name(name)
    assert str(error.value) == message

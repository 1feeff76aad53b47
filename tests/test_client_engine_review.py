"""Review of a3dec5f (the faster "client" query engine and history keys).

The client engine must give the Redis script's results instruction by
instruction (PROGRAM_SCRIPT): BITOPs of two and more sources (``_of_two``),
counts summed in 32 bits (``_count``), programs with and without a cohort row
(stacked or not), the ``U`` instruction and ``Program.union_existing``; and
``history_periods`` / ``history_keys`` must give the periods they gave before
the commit (fb33bce, copied below as the reference), their cached keys safe
from the callers.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from programs import INSTRUCTIONS, build

from flask_bitmapist import get_cohort, get_lifecycle, mark_event
from flask_bitmapist.report import history
from flask_bitmapist.store import clientside
from flask_bitmapist.store.backend import Store
from flask_bitmapist.store.layout import (
    BITMAPIST,
    EVER,
    FIRST_MARK_TIME,
    LAST_MARK_TIME,
    TEMPORARY_PREFIX,
    Period,
)
from flask_bitmapist.store.program import EventKey, NamedKey, Program, Ref

UTC = timezone.utc
KEYS = [f"review17:{letter}" for letter in "abcdefgh"]
#: A value that makes the key a list: a key of another type (WRONGTYPE).
WRONG = "wrong"
#: The start of the name of every scratch key of a query.
SCRATCH = TEMPORARY_PREFIX.encode()
#: A key whose absence after a run tells that the db was flushed meanwhile.
SENTINEL = "review17:sentinel"

# --- Helpers -------------------------------------------------------------------


def store_values(client: redis.Redis, values: list[Any]) -> None:
    client.delete(*KEYS)
    for key, value in zip(KEYS, values, strict=True):
        if value == WRONG:
            client.rpush(key, "x")
        elif value is not None:
            client.set(key, value)


def outcome(store: Store, jobs: list[Program]) -> Any:
    """The results of ``jobs`` run together, or ``("error", first word)``."""
    try:
        return store.run([(program, 0) for program in jobs], 60)
    except redis.ResponseError as error:
        return ("error", str(error).split()[0])


@dataclasses.dataclass
class Db:
    """The test db with the keys ``setup`` writes.

    Another session's tests, which own the db above ours, flush ours too
    when they start (tests/conftest.py), which is no result of the code under
    review: :meth:`settled` writes a sentinel key, then the keys, runs, and
    runs again (keys written again) when the sentinel went meanwhile."""

    client: redis.Redis
    setup: Callable[[], Any]

    def settled(self, run: Callable[[], Any]) -> Any:
        for _ in range(10):
            self.client.set(SENTINEL, b"1")
            self.setup()
            result = run()
            if self.client.delete(SENTINEL):
                return result
        pytest.fail("The test db was flushed under every run.")

    def both(self, jobs: list[Program]) -> tuple[Any, Any]:
        """The outcomes of ``jobs`` on the Redis engine and on the client."""
        return self.settled(
            lambda: (
                outcome(Store(self.client, engine="redis"), jobs),
                outcome(Store(self.client, engine="client"), jobs),
            )
        )

    def bitop(self, operation: str, sources: list[str]) -> Any:
        """What Redis's own BITOP leaves: the destination's value, or
        ``None``."""
        destination = f"{TEMPORARY_PREFIX}review17"

        def run() -> Any:
            self.client.execute_command("BITOP", operation, destination, *sources)
            value = self.client.get(destination)
            self.client.delete(destination)
            return value

        return self.settled(run)


def with_values(client: redis.Redis, values: list[Any]) -> Db:
    return Db(client, lambda: store_values(client, values))


def scratch_keys_left(client: redis.Redis) -> list[bytes]:
    return [name for name in client.keys("*") if name.startswith(SCRATCH)]


#: Bitmaps around 64-bit word boundaries, missing, or of another type.
values_strategy = st.lists(
    st.one_of(
        st.none(),
        st.just(WRONG),
        st.binary(min_size=1, max_size=41),
        st.sampled_from([7, 8, 9, 15, 16, 17, 24, 25, 40]).flatmap(
            lambda size: st.binary(min_size=size, max_size=size)
        ),
    ),
    min_size=len(KEYS),
    max_size=len(KEYS),
)

plan_strategy = st.lists(
    st.tuples(
        st.sampled_from(INSTRUCTIONS),
        st.lists(st.integers(min_value=0, max_value=63), min_size=1, max_size=6),
        st.integers(min_value=0, max_value=41 * 8 + 8),
    ),
    min_size=1,
    max_size=10,
)

hypothesis_settings = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# --- BITOP, NOT, counts: the client against Redis's own commands --------------


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sources=st.lists(
        st.one_of(
            st.none(),
            st.binary(min_size=1, max_size=41),
            st.sampled_from([1, 8, 9, 16, 17, 33]).flatmap(
                lambda size: st.binary(min_size=size, max_size=size)
            ),
        ),
        min_size=1,
        max_size=5,
    ),
    operation=st.sampled_from(["AND", "OR", "XOR"]),
    again=st.booleans(),
)
def test_bitop_of_one_two_and_more_sources_is_redis_bitop(
    client: redis.Redis, sources: list[bytes | None], operation: str, again: bool
) -> None:
    """``clientside.bitop`` (``_of_two`` for two bitmaps) leaves what Redis's
    BITOP leaves, for sources of any lengths, missing ones included, and
    the first source named twice when ``again``."""
    db = with_values(client, [*sources, *[None] * (len(KEYS) - len(sources))])
    names = KEYS[: len(sources)] + KEYS[:1] * again
    values = [*sources, *sources[:1] * again]
    expected = db.bitop(operation, names)
    bits = [None if value is None else clientside.Bits.of(value) for value in values]
    result = clientside.bitop(operation, bits)
    if expected is None:
        assert result is None
    else:
        assert result is not None
        assert result.value() == expected
        assert result.size == len(expected)
        assert len(result.words) == (len(expected) + 7) // 8
        # The bytes past the size are zero (what counts and later BITOPs use).
        assert result.count() == sum(bin(byte).count("1") for byte in expected)
        assert not result.words.view(numpy.uint8)[result.size :].any()


def test_bitop_of_two_bitmaps_of_every_pair_of_lengths(client: redis.Redis) -> None:
    """Every pair of lengths from 1 to 20 bytes, both orders, the three
    operations: ``_of_two``'s result is Redis's BITOP, byte for byte, and so
    is a two-source BITOP in a program on the client engine."""
    rng = random.Random(17)
    for first_size in range(1, 21):
        for second_size in range(1, 21):
            first = bytes(rng.randrange(256) for _ in range(first_size))
            second = bytes(rng.randrange(256) for _ in range(second_size))
            db = with_values(client, [first, second, *[None] * (len(KEYS) - 2)])
            for operation in ("AND", "OR", "XOR"):
                expected = db.bitop(operation, KEYS[:2])
                result = clientside.bitop(
                    operation, [clientside.Bits.of(first), clientside.Bits.of(second)]
                )
                assert result is not None
                assert (operation, first_size, second_size, result.value()) == (
                    operation,
                    first_size,
                    second_size,
                    expected,
                )
    # And through the whole engine, stacked (a cohort row) and not.
    db = with_values(client, [b"\xf0\x0f\xff", b"\x3c" * 11, *[None] * (len(KEYS) - 2)])
    jobs = []
    for operation in ("AND", "OR", "XOR"):
        program = Program()
        result = program.bitop(operation, [NamedKey(KEYS[0]), NamedKey(KEYS[1])])
        program.get(result)
        program.count(result)
        jobs.append(program)
    row = Program()
    row.cohort_row(NamedKey(KEYS[1]), [NamedKey(KEYS[0])], True)
    # AND: 30 0c 3c (8 bits), zeros; OR: fc 3f ff (20), 3c...; XOR: cc 33 c3
    # (12), 3c... (4 bits a byte).
    expected = [
        [b"\x30\x0c\x3c" + bytes(8), 8],
        [b"\xfc\x3f\xff" + b"\x3c" * 8, 20 + 32],
        [b"\xcc\x33\xc3" + b"\x3c" * 8, 12 + 32],
    ]
    assert db.both(jobs) == (expected, expected)
    assert db.both([*jobs, row]) == (
        [*expected, [[44, 8]]],
        [*expected, [[44, 8]]],
    )


def test_not_of_bitmaps_of_every_length_is_redis_not(client: redis.Redis) -> None:
    rng = random.Random(5)
    for size in range(1, 26):
        value = bytes(rng.randrange(256) for _ in range(size))
        db = with_values(client, [value, *[None] * (len(KEYS) - 1)])
        expected = db.bitop("NOT", KEYS[:1])
        result = clientside.bitop("NOT", [clientside.Bits.of(value)])
        assert result is not None
        assert result.value() == expected
        assert result.count() == sum(bin(byte).count("1") for byte in expected)
    assert clientside.bitop("NOT", [None]) is None
    assert db.bitop("NOT", ["review17:missing"]) is None


def test_counts_are_exact_at_the_32_bit_boundary() -> None:
    """``_count`` sums in 32 bits below 2**26 words: exact just below, at and
    just above the boundary (a word repeated, no 512 MB allocated)."""
    boundary = 1 << 26
    cases = [
        (boundary - 1, ~numpy.uint64(0), (1 << 32) - 64),
        (boundary, ~numpy.uint64(0), 1 << 32),
        (boundary + 3, ~numpy.uint64(0), (1 << 32) + 192),
        (boundary - 1, numpy.uint64(0x0101010101010101), (boundary - 1) * 8),
        (boundary + 1, numpy.uint64(1), boundary + 1),
    ]
    for words, word, expected in cases:
        every = numpy.broadcast_to(numpy.uint64(word), (words,))
        assert clientside._count(every) == expected
        assert clientside.Bits(every, words * 8).count() == expected


# --- Whole programs: the client engine against the Redis script ---------------


@hypothesis_settings
@given(values=values_strategy, plans=st.lists(plan_strategy, min_size=1, max_size=3))
def test_programs_run_together_give_the_script_results(
    client: redis.Redis, values: list[Any], plans: list[Any]
) -> None:
    """Random programs of every instruction the client runs, one to three
    run together (stacked when one has a cohort row, not otherwise), on
    bitmaps of different lengths, missing keys and keys of another type:
    the same results or the same error on both engines, and no key left."""
    jobs = []
    for plan in plans:
        program = Program()
        build(program, plan, KEYS)
        assert program.runs_on_client
        jobs.append(program)
    in_redis, on_client = with_values(client, values).both(jobs)
    assert on_client == in_redis
    assert scratch_keys_left(client) == []


@hypothesis_settings
@given(values=values_strategy, plans=st.lists(plan_strategy, min_size=1, max_size=3))
def test_a_cohort_row_in_the_batch_changes_no_other_result(
    client: redis.Redis, values: list[Any], plans: list[Any]
) -> None:
    """A batch without a cohort row runs unstacked; the same batch with one
    more program holding a cohort row runs stacked: the other programs'
    results are the same either way (and Redis's)."""
    values = [None if value == WRONG else value for value in values]
    jobs = []
    for plan in plans:
        program = Program()
        build(
            program,
            [step for step in plan if step[0] not in ("row", "row_once")],
            KEYS,
        )
        jobs.append(program)
    row = Program()
    row.cohort_row(NamedKey(KEYS[0]), [NamedKey(key) for key in KEYS[1:]], True)

    def run() -> Any:
        return (
            outcome(Store(client, engine="client"), jobs),
            outcome(Store(client, engine="client"), [*jobs, row]),
            outcome(Store(client, engine="redis"), jobs),
        )

    alone, stacked, in_redis = with_values(client, values).settled(run)
    assert stacked[:-1] == alone
    assert alone == in_redis


def test_a_run_leaves_the_values_it_read_as_they_were(client: redis.Redis) -> None:
    """The unstacked values are read-only buffers shared by the programs of
    a batch: one program's BITOPs change nothing another reads."""
    db = with_values(client, [b"\xff" * 16, b"\x0f" * 9, *[None] * (len(KEYS) - 2)])
    first = Program()
    first.count(first.bitop("XOR", [NamedKey(KEYS[0]), NamedKey(KEYS[1])]))
    first.count(first.bitop("NOT", [NamedKey(KEYS[0])]))
    first.count(first.bitop("AND", [NamedKey(KEYS[0]), NamedKey(KEYS[1])]))
    second = Program()
    second.get(NamedKey(KEYS[0]))
    second.get(NamedKey(KEYS[1]))
    expected = [[128 - 36, 0, 36], [b"\xff" * 16, b"\x0f" * 9]]
    assert db.both([first, second]) == (expected, expected)
    assert db.both([first, second]) == (expected, expected)


def test_a_wrong_type_key_fails_every_instruction_that_reads_it(
    client: redis.Redis,
) -> None:
    """Each instruction that reads a key of another type fails on both
    engines, alone or with other programs, stacked or not; ``existing``
    only asks whether it exists; a cohort row whose primary is empty never
    reads its cells."""
    db = with_values(client, [b"\x81\x00\x03", WRONG, *[None] * (len(KEYS) - 2)])
    good, wrong, missing = (NamedKey(key) for key in KEYS[:3])
    failing = []
    for operation in ("AND", "OR", "XOR"):
        for sources in ([good, wrong], [wrong, good], [good, good, wrong]):
            program = Program()
            program.bitop(operation, sources)
            failing.append(program)
    for make in (
        lambda program: program.bitop("NOT", [wrong]),
        lambda program: program.union_existing([missing, wrong, missing]),
        lambda program: program.union_existing([good, wrong]),
        lambda program: program.union_existing([missing] * 40 + [good, wrong, good]),
        lambda program: program.difference(good, wrong),
        lambda program: program.count(wrong),
        lambda program: program.get(wrong),
        lambda program: program.getbit(wrong, 3),
        lambda program: program.first_bit(wrong),
        lambda program: program.cohort_row(wrong, [good], True),
        lambda program: program.cohort_row(good, [missing, wrong], True),
        lambda program: program.cohort_row(good, [wrong], False),
    ):
        program = Program()
        make(program)
        failing.append(program)
    plain = Program()
    plain.count(good)
    with_row = Program()
    with_row.cohort_row(good, [good], True)
    for program in failing:
        for jobs in ([program], [plain, program], [with_row, program]):
            assert db.both(jobs) == (
                ("error", "WRONGTYPE"),
                ("error", "WRONGTYPE"),
            )
    passing = Program()
    passing.existing([good, wrong, missing])
    passing.cohort_row(missing, [wrong], True)
    passing.cohort_row(missing, [wrong], False)
    passing.union_existing([missing, missing])
    expected = [[[1, 2], [0], [0]]]
    assert db.both([passing]) == (expected, expected)
    assert db.both([passing, with_row]) == (
        [*expected, [[4, 4]]],
        [*expected, [[4, 4]]],
    )


def test_union_existing_of_many_sources_of_different_lengths(
    client: redis.Redis,
) -> None:
    """``union_existing`` of 1,561 sources (an event's months since 1970 and
    more), 40 of which exist with different lengths: past the script's 16
    keys a BITOP; the same as the OR of the 40 on both engines, with 0, 1,
    2, 16, 17, 31 and 40 existing."""
    rng = random.Random(3)
    names = [f"review17:m{index}" for index in range(1561)]
    present = sorted(rng.sample(range(1561), 40))
    values = {
        index: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30)))
        for index in present
    }

    def setup() -> None:
        for index, value in values.items():
            client.set(names[index], value)

    db = Db(client, setup)
    for existing in (0, 1, 2, 16, 17, 31, 40):
        chosen = present[:existing]
        sources: list[Ref] = [
            NamedKey(names[index])
            for index in range(1561)
            if index in chosen or index not in present
        ]
        program = Program()
        union = program.union_existing(sources)
        program.get(union)
        program.count(union)
        program.existing([union])
        size = max((len(values[index]) for index in chosen), default=0)
        expected_bytes = bytearray(size)
        for index in chosen:
            for position, byte in enumerate(values[index]):
                expected_bytes[position] |= byte
        expected = [
            [
                bytes(expected_bytes),
                sum(bin(byte).count("1") for byte in expected_bytes),
                [1] if size else [],
            ]
        ]
        assert db.both([program]) == (expected, expected), existing


def test_union_existing_numbers_its_sources_as_add_did() -> None:
    """The words of ``union_existing`` are those ``_add`` wrote before the
    commit: each key numbered on first use, the same number again for a key
    already named (before or in the list), and the key names in order."""
    program = Program()
    a, b, c = NamedKey("a"), NamedKey("b"), NamedKey("c")
    month = EventKey("e", Period("month", datetime(1970, 1, 1, tzinfo=UTC)))
    program.count(b)
    scratch = program.bitop("OR", [a, b])
    union = program.union_existing([c, b, month, c, scratch, a, month])
    program.count(union)
    # b is 1; the BITOP's scratch 2 (numbered before its sources), a 3; the
    # union's scratch 4, c 5, the month 6.
    reference = Program()
    reference.count(b)
    reference_scratch = reference.bitop("OR", [a, b])
    destination = reference.scratch()
    reference._add("U", destination, 7, c, b, month, c, reference_scratch, a, month)
    reference.count(destination)
    assert union == destination
    assert program.words == reference.words
    assert program.stored_keys(BITMAPIST, 0) == reference.stored_keys(BITMAPIST, 0)
    assert program.words == [
        "C", "1",
        "B", "OR", "2", "2", "3", "1",
        "U", "4", "7", "5", "1", "6", "5", "2", "3", "6",
        "C", "4",
    ]  # fmt: skip
    assert program.stored_keys(BITMAPIST, 0) == [
        "b",
        None,
        "a",
        None,
        "c",
        BITMAPIST.key("e", month.period, 0),
    ]


def test_union_existing_of_no_source_is_an_empty_key(client: redis.Redis) -> None:
    program = Program()
    union = program.union_existing([])
    program.count(union)
    program.get(union)
    program.existing([union])
    db = Db(client, lambda: None)
    assert db.both([program]) == ([[0, b"", []]], [[0, b"", []]])
    assert scratch_keys_left(client) == []


# --- Cohort rows ---------------------------------------------------------------


@hypothesis_settings
@given(
    lengths=st.lists(st.sampled_from([0, 8, 9, 16, 24, 40]), min_size=6, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    replace=st.booleans(),
    order=st.permutations(range(1, 6)),
)
def test_cohort_rows_with_and_without_replacement(
    client: redis.Redis,
    lengths: list[int],
    seed: int,
    replace: bool,
    order: list[int],
) -> None:
    """A cohort row of a primary and five cells of random lengths (0: a
    missing key), consecutive or not (a block or cell by cell), equals the
    script's and one computed here bit by bit."""
    rng = random.Random(seed)
    values = [
        bytes(rng.randrange(256) for _ in range(length)) or None for length in lengths
    ]
    db = with_values(client, [*values, None, None])
    primary = NamedKey(KEYS[0])
    cells = [NamedKey(KEYS[index]) for index in order]
    program = Program()
    # Name the cells in order first, so that they are consecutive rows.
    program.existing([NamedKey(key) for key in KEYS[:6]])
    program.cohort_row(primary, cells, replace)
    as_int = [int.from_bytes(value or b"", "little") for value in values]
    remaining = as_int[0]
    row = [bin(remaining).count("1")]
    if remaining:
        for index in order:
            found = remaining & as_int[index]
            row.append(bin(found).count("1"))
            if not replace:
                remaining ^= found
    existing = [index + 1 for index, value in enumerate(values) if value is not None]
    expected = [[existing, row]]
    assert db.both([program]) == (expected, expected)


def test_cohort_rows_of_one_megabyte_cells_count_exactly(client: redis.Redis) -> None:
    """Cells at the block's limit (_BLOCK_BYTES, one AND for the row, counts
    summed in 32 bits) and just past it (cell by cell): every bit set, the
    counts those of Redis."""
    for size in (clientside._BLOCK_BYTES // 2, clientside._BLOCK_BYTES // 2 + 8):
        db = with_values(
            client,
            [b"\xff" * size, b"\xff" * size, b"\xf0" * size, *[None] * (len(KEYS) - 3)],
        )
        program = Program()
        program.cohort_row(
            NamedKey(KEYS[0]), [NamedKey(KEYS[1]), NamedKey(KEYS[2])], True
        )
        program.cohort_row(
            NamedKey(KEYS[0]), [NamedKey(KEYS[2]), NamedKey(KEYS[1])], False
        )
        bits = size * 8
        expected = [[[bits, bits, bits // 2], [bits, bits // 2, bits // 2]]]
        assert db.both([program]) == (expected, expected)


# --- History: the reference is fb33bce's code ---------------------------------


def reference_history_periods(period: Period) -> list[Period]:
    """``history_periods`` before a3dec5f (fb33bce)."""
    month = Period.of("month", period.start)
    before = (month.start.year - 1970) * 12 + month.start.month - 1
    periods = list(history._every_month()[: max(before, 0)])
    day = Period("day", month.start)
    while day.start < period.start and day.start < LAST_MARK_TIME:
        periods.append(day)
        day = Period("day", day.start + timedelta(days=1))
    return periods


def reference_history_keys(
    event_name: str, period: Period, existing: Any = None
) -> list[EventKey]:
    """``history_keys`` before a3dec5f (fb33bce)."""
    return [
        EventKey(event_name, stored)
        for stored in reference_history_periods(period)
        if existing is None or stored in existing
    ]


def every_month_between(first: datetime, last: datetime) -> list[Period]:
    months = [Period.of("month", first)]
    while months[-1].start < last:
        months.append(months[-1].shift(1))
    return months


def edge_periods() -> list[Period]:
    """Every month and year from 1969 to 2101; every day and week of 1970,
    of 2026 (weeks spanning months) and of 2099; the first and last days of
    every month; hours; periods at and after LAST_MARK_TIME."""
    periods: list[Period] = []
    months = every_month_between(
        datetime(1969, 1, 1, tzinfo=UTC), datetime(2101, 12, 1, tzinfo=UTC)
    )
    periods += months
    periods += [
        Period.of("year", datetime(year, 1, 1, tzinfo=UTC))
        for year in range(1969, 2102)
    ]
    for month in months:
        last_day = Period("day", month.shift(1).start - timedelta(days=1))
        periods += [Period("day", month.start), last_day, last_day.shift(-1)]
        periods.append(Period.of("week", month.start))
    for year in (1969, 1970, 2026, 2099, 2100):
        day = Period("day", datetime(year, 1, 1, tzinfo=UTC))
        while day.start.year == year:
            periods.append(day)
            if day.start.weekday() == 0:
                periods.append(Period("week", day.start))
            day = day.shift(1)
    for when in (
        FIRST_MARK_TIME,
        datetime(1970, 1, 31, 23, tzinfo=UTC),
        datetime(2026, 3, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 5, tzinfo=UTC),
        datetime(2099, 12, 31, 23, tzinfo=UTC),
        LAST_MARK_TIME,
        LAST_MARK_TIME + timedelta(hours=30),
    ):
        periods.append(Period.of("hour", when))
    periods.append(EVER)
    return periods


def test_history_periods_are_those_before_the_commit() -> None:
    periods = edge_periods()
    assert len(periods) > 8000
    for period in periods:
        assert history.history_periods(period) == reference_history_periods(period), (
            period
        )


def test_history_keys_are_those_before_the_commit_with_and_without_existing() -> None:
    rng = random.Random(11)
    periods = edge_periods()[::7]
    for number, period in enumerate(periods):
        event = f"event{number % 3}"
        expected = reference_history_keys(event, period)
        assert history.history_keys(event, period) == expected, period
        stored = reference_history_periods(period)
        existing = set(rng.sample(stored, min(len(stored), rng.randrange(0, 40))))
        # A period that is no history of this one changes nothing.
        existing.add(Period("day", datetime(2150, 1, 1, tzinfo=UTC)))
        assert history.history_keys(event, period, existing) == (
            reference_history_keys(event, period, existing)
        ), period
        assert history.history_keys(event, period, set()) == []
        assert history.history_keys(event, period, frozenset(stored)) == expected


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1969, 6, 1),
        max_value=datetime(2101, 6, 1),
        timezones=st.just(UTC),
    ),
    unit=st.sampled_from(["hour", "day", "week", "month", "year"]),
    event=st.sampled_from(["a", "b", "signup"]),
)
def test_history_of_any_period_is_that_before_the_commit(
    when: datetime, unit: Any, event: str
) -> None:
    period = Period.of(unit, when)
    assert history.history_periods(period) == reference_history_periods(period)
    assert history.history_keys(event, period) == reference_history_keys(event, period)


def test_history_at_the_edges_exactly() -> None:
    """Exact histories: nothing before January 1970's first day; its days
    only in January 1970; the 1,560 months to December 2099 and December's
    days in 2099; from 2100 on, no day."""
    first_day = Period("day", FIRST_MARK_TIME)
    assert history.history_periods(first_day) == []
    assert history.history_keys("e", first_day) == []
    assert history.history_periods(Period.of("month", FIRST_MARK_TIME)) == []
    assert history.history_periods(Period.of("year", FIRST_MARK_TIME)) == []
    third = Period("day", datetime(1970, 1, 3, tzinfo=UTC))
    assert history.history_periods(third) == [first_day, first_day.shift(1)]
    december = Period("month", datetime(2099, 12, 1, tzinfo=UTC))
    months = history.history_periods(december)
    assert len(months) == 1559
    assert months[0] == Period("month", FIRST_MARK_TIME)
    assert months[-1] == december.shift(-1)
    last_day = Period("day", datetime(2099, 12, 31, tzinfo=UTC))
    assert history.history_periods(last_day) == [
        *months,
        *(Period("day", datetime(2099, 12, day, tzinfo=UTC)) for day in range(1, 31)),
    ]
    for when in (LAST_MARK_TIME, datetime(2100, 1, 20, tzinfo=UTC)):
        for unit in ("day", "week", "month", "year"):
            period = Period.of(unit, when)
            found = history.history_periods(period)
            assert found == reference_history_periods(period)
            if period.start >= LAST_MARK_TIME:
                # No day from 2100 on (the week of 2100-01-01 starts in 2099).
                assert all(stored.unit == "month" for stored in found)
                assert len(found) == min(
                    (period.start.year - 1970) * 12 + period.start.month - 1, 1561
                )
    # A week of 2099 that ends in 2100 (Monday 2099-12-28).
    week = Period.of("week", datetime(2099, 12, 31, tzinfo=UTC))
    assert week.start == datetime(2099, 12, 28, tzinfo=UTC)
    assert history.history_periods(week) == [
        *months,
        *(Period("day", datetime(2099, 12, day, tzinfo=UTC)) for day in range(1, 28)),
    ]


def test_cached_month_keys_cannot_be_changed_by_callers() -> None:
    """``history_keys`` returns a new list each call: a caller that changes
    it (or filters by ``existing``) changes no later call; the cached keys
    are immutable."""
    period = Period("day", datetime(2026, 3, 15, tzinfo=UTC))
    expected = reference_history_keys("cached", period)
    keys = history.history_keys("cached", period)
    assert keys == expected
    keys.append(EventKey("other", period))
    keys[0] = EventKey("other", period)
    del keys[5:100]
    keys.reverse()
    assert history.history_keys("cached", period) == expected
    again = history.history_keys("cached", period)
    again.clear()
    assert history.history_keys("cached", period) == expected
    assert history.history_keys("cached", period) is not history.history_keys(
        "cached", period
    )
    assert history.history_keys("cached", period, {expected[3].period}) == [expected[3]]
    assert history.history_keys("cached", period) == expected
    periods = history.history_periods(period)
    periods.clear()
    assert history.history_periods(period) == reference_history_periods(period)
    key = history.history_keys("cached", period)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.event_name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.period = period  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.period.start = period.start  # type: ignore[misc]
    assert history.history_keys("cached", period) == expected


def test_month_keys_past_the_cache_size_stay_right() -> None:
    """More events than the cache holds, and the same event at many
    counts: each call gives its own event's keys."""
    periods = [
        Period("month", datetime(1970, 1, 1, tzinfo=UTC)).shift(months)
        for months in (0, 1, 2, 13, 700, 1559, 1560, 1561, 1600)
    ]
    for number in range(300):
        period = periods[number % len(periods)]
        event = f"many{number}"
        assert history.history_keys(event, period) == reference_history_keys(
            event, period
        )
    for number in range(300):
        event = f"many{number % 7}"
        period = periods[number % len(periods)]
        assert history.history_keys(event, period) == reference_history_keys(
            event, period
        )


# --- Whole reports at the edges of time, on both engines ----------------------


@pytest.mark.parametrize("layout", ["bitmapist", "sharded"])
@pytest.mark.parametrize(
    "now",
    [
        datetime(1970, 1, 3, 12, tzinfo=UTC),
        datetime(1970, 2, 2, 12, tzinfo=UTC),
        datetime(2099, 12, 31, 12, tzinfo=UTC),
        datetime(2100, 1, 4, 12, tzinfo=UTC),
    ],
)
def test_first_time_cohorts_and_lifecycles_at_the_edges_of_time(
    client: redis.Redis, make_app: Any, now: datetime, layout: str
) -> None:
    """Marks in the first days of 1970, at the end of 2099 and between:
    first-time cohorts and lifecycles (the history's ``union_existing`` of
    every month since 1970) are the same on both engines, and a user first
    seen long before is resurrecting, never new."""
    config: dict[str, Any] = (
        {} if layout == "bitmapist" else {"key_layout": "sharded", "shard_bits": 3}
    )
    apps: list[Any] = []
    marks = [
        (1, datetime(1970, 1, 1, 0, tzinfo=UTC)),
        (2, datetime(1970, 1, 2, 5, tzinfo=UTC)),
        (3, datetime(1970, 1, 31, 23, tzinfo=UTC)),
        (1, datetime(1985, 6, 1, tzinfo=UTC)),
        (4, datetime(2099, 11, 30, tzinfo=UTC)),
        (1, datetime(2099, 12, 29, tzinfo=UTC)),
        (4, datetime(2099, 12, 30, tzinfo=UTC)),
        (5, datetime(2099, 12, 31, 23, tzinfo=UTC)),
    ]

    def setup() -> None:
        # New apps each time: nothing remembered of a db flushed meanwhile.
        apps[:] = [
            make_app(query_engine=engine, name=engine, **config)
            for engine in ("redis", "client")
        ]
        with apps[0].app_context():
            for user, when in marks:
                # Users 9 to 45: each in a shard of its own in the sharded
                # layout.
                mark_event("visit", user * 9, now=when)

    def reports(app: Any) -> Any:
        with app.app_context():
            return (
                [
                    get_cohort(
                        "visit",
                        "visit",
                        num_rows=4,
                        num_cols=4,
                        now=now,
                        cohort="first_time",
                        with_replacement=replace,
                    )
                    for replace in (False, True)
                ],
                get_lifecycle("visit", num_periods=5, now=now),
                get_lifecycle("visit", "months", num_periods=3, now=now),
            )

    in_redis, on_client = Db(client, setup).settled(
        lambda: [reports(app) for app in apps]
    )
    assert on_client == in_redis
    cohorts, days, _ = on_client
    lifecycle = {row.date: row for row in days}
    if now.year == 2099:
        # Users 1 and 4 came back after earlier marks; 5 is new on the 31st.
        assert lifecycle[datetime(2099, 12, 29, tzinfo=UTC)].resurrecting == 1
        assert lifecycle[datetime(2099, 12, 29, tzinfo=UTC)].new == 0
        assert lifecycle[datetime(2099, 12, 30, tzinfo=UTC)].resurrecting == 1
        assert lifecycle[datetime(2099, 12, 31, tzinfo=UTC)].new == 1
        for table, _, totals in cohorts:
            assert totals == [0, 0, 0, 1]
            assert table[-1] == [1, None, None, None]
    if now == datetime(1970, 1, 3, 12, tzinfo=UTC):
        assert [(row.new, row.returning) for row in days][-3:] == [
            (1, 0),
            (1, 0),
            (0, 0),
        ]
        for table, _, totals in cohorts:
            assert totals == [0, 1, 1, 0]
            assert table[1:3] == [[1, 0, 0, None], [1, 0, None, None]]


def test_an_hour_period_history() -> None:
    """An hour's history (not a report's unit, but a period): the months
    before its month and the days of its month before its day, and the day
    itself since it starts before the hour."""
    hour = Period("hour", datetime(2026, 3, 2, 13, tzinfo=UTC))
    found = history.history_periods(hour)
    assert found[-2:] == [
        Period("day", datetime(2026, 3, 1, tzinfo=UTC)),
        Period("day", datetime(2026, 3, 2, tzinfo=UTC)),
    ]
    assert found == reference_history_periods(hour)

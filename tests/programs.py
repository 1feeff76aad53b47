"""Random programs for the engine tests: a step names an instruction, the
positions of its operands among the named keys and the scratch keys built
so far, and an offset (GETBIT)."""

from __future__ import annotations

from collections.abc import Sequence

from flask_bitmapist.store.program import NamedKey, Program, Ref

#: Every step a program of the client engine can take.
INSTRUCTIONS = [
    "AND",
    "OR",
    "XOR",
    "NOT",
    "union",
    "union_existing",
    "difference",
    "count",
    "get",
    "getbit",
    "first_bit",
    "existing",
    "row",
    "row_once",
]


def build(
    program: Program, plan: list[tuple[str, list[int], int]], keys: Sequence[str]
) -> None:
    """Write ``plan``'s steps into ``program``, on the keys named ``keys``
    and the scratch keys the steps build."""
    refs: list[Ref] = [NamedKey(key) for key in keys]

    def pick(positions: list[int]) -> list[Ref]:
        return [refs[position % len(refs)] for position in positions]

    for step, positions, offset in plan:
        operands = pick(positions)
        if step in ("AND", "OR", "XOR"):
            refs.append(program.bitop(step, operands))
        elif step == "NOT":
            refs.append(program.bitop("NOT", operands[:1]))
        elif step == "union":
            refs.append(program.union(operands))
        elif step == "union_existing":
            refs.append(program.union_existing(operands))
        elif step == "difference":
            refs.append(program.difference(operands[0], operands[-1]))
        elif step == "count":
            program.count(operands[0])
        elif step == "get":
            program.get(operands[0])
        elif step == "getbit":
            program.getbit(operands[0], offset)
        elif step == "first_bit":
            program.first_bit(operands[0])
        elif step == "existing":
            program.existing(operands)
        else:
            program.cohort_row(operands[0], operands[1:], step == "row")

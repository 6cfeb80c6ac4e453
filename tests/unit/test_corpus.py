"""Every shipped corpus seed parses and round-trips through the text form."""

from pathlib import Path

import pytest

from fuzzer.faults import Schedule

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FILES = sorted(CORPUS.glob("*/*.sched"))


def test_corpus_not_empty():
    assert FILES, f"no corpus seeds under {CORPUS}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_seed_round_trips(path):
    sched = Schedule.load(path)
    assert sched.steps
    assert Schedule.parse_text(sched.to_text()) == sched

"""No writes outside the execution directory, even through a symlink a node planted.

The cluster spec's ``files`` (config files rendered into each node's data dir)
are checked lexically when the config loads; this checks the write itself
(``safe_join`` in the supervisor), since a node process can replace a
directory of its data dir with a symlink before it is restarted.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from cluster_helpers import kill_marked, node_spec, with_marker

from fuzzer.cluster import Supervisor
from fuzzer.errors import InputError


@pytest.fixture
def workdir(tmp_path: Path, rng) -> Path:
    marker = f"hbfzrp{rng.getrandbits(48):012x}"
    yield tmp_path / marker
    survivors = with_marker(marker)
    kill_marked(marker)
    assert not survivors, f"processes left behind: {survivors}"


def _start(spec, workdir: Path) -> list[BaseException]:
    async def main() -> None:
        async with Supervisor(spec, workdir) as sup:
            await sup.start_all()

    errors: list[BaseException] = []
    try:
        asyncio.run(asyncio.wait_for(main(), 30))
    except* InputError as eg:
        errors.extend(eg.exceptions)
    return errors


def test_files_cannot_escape_through_a_planted_symlink(workdir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    spec = replace(node_spec(1), files={"conf/node.conf": "name={name}\n"})
    data = workdir / "data" / "n1"
    data.mkdir(parents=True)
    (data / "conf").symlink_to(outside)
    errors = _start(spec, workdir)
    assert errors and "leaves" in str(errors[0])
    assert list(outside.iterdir()) == []


def test_files_inside_the_data_dir_are_written(workdir: Path) -> None:
    spec = replace(node_spec(1), files={"conf/node.conf": "name={name}\n"})
    assert _start(spec, workdir) == []
    assert (workdir / "data" / "n1" / "conf" / "node.conf").read_text() == "name=n1\n"

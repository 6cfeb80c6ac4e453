"""Importers: Jepsen log lines and EDN op maps, with file/line errors."""

from __future__ import annotations

import pytest

from fuzzer.errors import InputError, UsageError
from fuzzer.workload.importers import (
    EdnError,
    Keyword,
    load_history,
    parse_edn_history,
    parse_jepsen_log,
    read_edn,
)

LOG = (
    "2017-01-01 INFO  jepsen.core - Running test\n"
    "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
    "INFO  jepsen.util - 1   :invoke :cas    [1 2]\n"  # spaces instead of tabs
    "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n"
    "INFO  jepsen.util - 0\t:ok\t:read\t3\n"
    "INFO  jepsen.util - 1\t:info\t:cas\t:timed-out\n"
    "INFO  jepsen.util - 2\t:invoke\t:read\tnil\n"
    "INFO  jepsen.util - 2\t:fail\t:read\t:timed-out\n"
)


def test_jepsen_log_lines():
    h = parse_jepsen_log(LOG, source="x.log")
    assert [(o.process, o.type, o.f, o.value, o.line) for o in h] == [
        (0, "invoke", "read", None, 2),
        (1, "invoke", "cas", (1, 2), 3),
        (0, "ok", "read", 3, 5),
        (1, "info", "cas", None, 6),
        (2, "invoke", "read", None, 7),
        (2, "fail", "read", None, 8),
    ]
    ops = h.operations()
    assert [o.status for o in ops] == ["ok", "info", "fail"]


@pytest.mark.parametrize(
    "line",
    [
        "INFO  jepsen.util - 3\t:ok\t:cas\t[1 2",
        "INFO  jepsen.util - x\t:ok\t:read\t1",
        "INFO  jepsen.util - 3\t:ok",
        'INFO  jepsen.util - 3\t:ok\t:read\t"open',
    ],
)
def test_malformed_jepsen_line_names_file_and_line(line):
    text = "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n" + line + "\n"
    with pytest.raises(InputError, match=r"^bad\.log: line 2: malformed Jepsen log line"):
        parse_jepsen_log(text, source="bad.log")


def test_jepsen_log_without_history_lines_is_an_error():
    with pytest.raises(InputError, match="no Jepsen history lines"):
        parse_jepsen_log("{:process 0, :type :invoke, :f :read}\n", source="a.txt")
    assert len(parse_jepsen_log("")) == 0


def test_completion_without_invoke_in_log_is_reported():
    text = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 4\t:ok\t:read\t1\n"
    h = parse_jepsen_log(text, source="c.log")
    with pytest.raises(
        InputError,
        match=r"c\.log: line 2: completion :ok :read for process 4 without an invocation",
    ):
        h.operations()


def test_edn_reader():
    assert read_edn('{:a 1, :b [1 "x\\n" nil true], :c #{:k}, :d (1.5 -2)}') == {
        "a": 1,
        "b": (1, "x\n", None, True),
        "c": frozenset({"k"}),
        "d": (1.5, -2),
    }
    k = read_edn(":timed-out")
    assert isinstance(k, Keyword) and k == "timed-out" and repr(k) == ":timed-out"
    assert read_edn('"\\u00e9" ; comment') == "é"
    for bad in ["[1 2", "{:a}", '"x', "1x", ")", '#inst "2020"', "1 2"]:
        with pytest.raises(EdnError):
            read_edn(bad)


def test_edn_history():
    text = (
        '{:process 0, :type :invoke, :f :put, :key "k", :value "a"}\n'
        "\n"
        '{:process 0, :type :ok, :f :put, :key "k", :value "a"}\n'
        "{:process :nemesis, :type :info, :f :start, :value nil}\n"
        '{:process 1, :type :invoke, :f :get, :key "k", :value nil}\n'
    )
    h = parse_edn_history(text, source="kv.edn")
    assert [(o.process, o.type, o.f, o.key, o.value, o.line) for o in h] == [
        (0, "invoke", "put", "k", "a", 1),
        (0, "ok", "put", "k", "a", 3),
        (1, "invoke", "get", "k", None, 5),
    ]
    whole = parse_edn_history("[" + text.replace("\n", " ") + "]")
    assert [(o.process, o.type, o.f) for o in whole] == [(o.process, o.type, o.f) for o in h]


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("{:process 0, :type :invoke, :f :put", "malformed EDN"),
        ("{:process 0, :type :invoke}", "missing :f"),
        ("{:process 0, :type :done, :f :put}", ":type must be one of"),
        ('{:process "p", :type :ok, :f :put}', ":process must be an integer"),
        ("[1 2]", "expected a map"),
    ],
)
def test_malformed_edn_names_file_and_line(line, msg):
    text = '{:process 9, :type :invoke, :f :get, :key "k", :value nil}\n' + line + "\n"
    with pytest.raises(InputError, match=rf"^kv\.edn: line 2: .*{msg}"):
        parse_edn_history(text, source="kv.edn")


def test_load_history(tmp_path):
    p = tmp_path / "h.log"
    p.write_text(LOG)
    assert len(load_history(p, "jepsen-log")) == 6
    with pytest.raises(UsageError, match="valid formats: jepsen-log, edn, hbfuzz"):
        load_history(p, "csv")
    with pytest.raises(InputError, match="cannot read"):
        load_history(tmp_path / "nope", "edn")
    (tmp_path / "b.edn").write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8"):
        load_history(tmp_path / "b.edn", "edn")

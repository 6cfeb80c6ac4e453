import subprocess
import sys

from fuzzer import __version__
from fuzzer.cli import main


def test_version_and_help(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert __version__ in capsys.readouterr().out
    out = subprocess.run(
        [sys.executable, "-m", "fuzzer", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "exit codes" in out and "check-history" in out


def test_unknown_command_is_usage_error():
    r = subprocess.run([sys.executable, "-m", "fuzzer", "nope"], capture_output=True, text=True)
    assert r.returncode == 2

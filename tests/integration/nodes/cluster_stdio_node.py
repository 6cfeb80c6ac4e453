"""Echo node on stdin/stdout (for pipe_stdio): answers ``NAME:line``; chatter on stderr."""

import os
import sys

name = os.environ.get("HBFUZZ_NODE", "?")
print(f"{name}: stdio node up", file=sys.stderr, flush=True)
for line in sys.stdin:
    sys.stdout.write(f"{name}:{line}")
    sys.stdout.flush()
    print(f"{name}: echoed {line.strip()}", file=sys.stderr, flush=True)

#!/usr/bin/env python3
"""Filters `go test -json` for people and counts tests.

Reads go test's JSON events on stdin and prints what `go test` without -v
would: package result lines, and the whole output of every failing test.
Appends "passed failed skipped" (tests, not packages) to the file named by
the first argument, so scripts/test.sh can print one closing line.
"""
import json
import sys

counts = {"pass": 0, "fail": 0, "skip": 0}
buffers = {}

for raw in sys.stdin:
    line = raw.rstrip("\n")
    try:
        ev = json.loads(line)
    except ValueError:
        print(line, flush=True)  # build errors and other plain lines
        continue
    action = ev.get("Action")
    test = ev.get("Test")
    key = (ev.get("Package"), test)
    if action in ("build-output",):
        sys.stdout.write(ev.get("Output", ""))
        continue
    if test is None:
        if action == "output":
            out = ev.get("Output", "")
            # Package-level lines: ok/FAIL/PASS summaries, panics, TestMain output.
            if out.strip() not in ("PASS",):
                sys.stdout.write(out)
                sys.stdout.flush()
        continue
    if action == "output":
        buffers.setdefault(key, []).append(ev.get("Output", ""))
    elif action in counts:
        counts[action] += 1
        out = buffers.pop(key, [])
        if action == "fail":
            sys.stdout.write("".join(out))
            sys.stdout.flush()

if len(sys.argv) > 1:
    with open(sys.argv[1], "a") as f:
        f.write("%d %d %d\n" % (counts["pass"], counts["fail"], counts["skip"]))

"""Guards `tests/procstat.py`, the one reader of `/proc/<pid>/stat` the tests and benches share (a
Dovecot master's children, a PostgreSQL cluster's processes, a server's CPU): the fields after a
process name holding spaces and parentheses are read right, from a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.procstat import parse_stat, proc_stat

NAMED = ("import ctypes, sys\n"
         "ctypes.CDLL(None).prctl(15, b'x) (y z) 1 2', 0, 0, 0)\n"  # PR_SET_NAME: comm, 15 bytes at most
         "print('named', flush=True)\n"
         "sys.stdin.read()\n")


def test_a_name_with_spaces_and_parentheses_is_read_whole() -> None:
    proc = subprocess.Popen([sys.executable, "-c", NAMED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "named\n"
        stat = proc_stat(proc.pid)
        assert (stat.pid, stat.comm, stat.ppid) == (proc.pid, "x) (y z) 1 2", os.getpid())
        assert stat.state in "RSD"
        assert stat.cpu_ticks == stat.utime + stat.stime + stat.cutime + stat.cstime >= 0
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


def test_the_fields_after_the_last_parenthesis() -> None:
    line = "42 (a) b (c) S 7 42 42 0 -1 4194560 10 0 0 0 11 12 13 14 20 0 1 0 5 1000 10\n"
    stat = parse_stat(line)
    assert (stat.pid, stat.comm, stat.state, stat.ppid) == (42, "a) b (c", "S", 7)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime, stat.cpu_ticks) == (11, 12, 13, 14, 50)


def test_no_such_process_raises_oserror() -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        beyond = int(f.read())  # every process id is below it
    with pytest.raises(OSError):
        proc_stat(beyond)

"""One reader of Linux's `/proc/<pid>/stat`, for the tests and the benches (a process's parent, its CPU).

The second field, `comm`, is the process's name in parentheses and may itself hold spaces and
parentheses (`prctl(PR_SET_NAME)` takes any 15 bytes): the fields after it are found after the LAST
`)`, never by splitting the whole line on spaces (proc(5)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    """CPU in clock ticks (`os.sysconf("SC_CLK_TCK")` per second); `cutime`/`cstime`: waited-for children's."""

    @property
    def cpu_ticks(self) -> int:
        """User + system CPU, waited-for children's included."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> ProcStat:
    """The fields of one `/proc/<pid>/stat` line."""
    head, _, tail = text.rpartition(")")
    pid, _, comm = head.partition(" (")
    fields = tail.split()  # fields[0] is field 3 of proc(5), `state`
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ProcStat(int(pid), comm, fields[0], int(fields[1]), utime, stime, cutime, cstime)


def proc_stat(pid: int | str) -> ProcStat:
    """`/proc/<pid>/stat` of a live process; OSError when there is no such process (or it just ended)."""
    return parse_stat(Path(f"/proc/{pid}/stat").read_text())

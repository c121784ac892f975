"""Huge pages for the warm workers: what makes forking one run from a 220 MB worker cheap.

Forking copies one page-table entry per 4 KiB page of the worker's memory (and exiting frees them):
19 ms per run. The C heap is in huge pages from the start (`with_huge_pages`, set in the worker's
environment by the pool); once a worker has served `COLLAPSE_AFTER_RUNS` runs, i.e. a batch, the rest
of its memory (Python's object arenas) is collapsed into huge pages too, once, for about 0.25 s
(`collapse_to_huge_pages`): then fork and exit take 5 ms.
"""

from __future__ import annotations

COLLAPSE_AFTER_RUNS = 8
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25
_HUGE_PAGE = 2 << 20


def with_huge_pages(env: dict) -> dict:
    """`env` for a worker process: glibc gives its heap transparent huge pages (Linux, glibc >= 2.35;
    elsewhere the setting is ignored)."""
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        env = {**env, "GLIBC_TUNABLES": f"{tunables}:{HUGE_PAGES_TUNABLE}" if tunables else HUGE_PAGES_TUNABLE}
    return env


def collapse_to_huge_pages(min_bytes: int = 4 << 20) -> int:
    """Ask Linux (>= 6.1) to back this process's large anonymous regions with huge pages now;
    returns the bytes collapsed (0 where the kernel cannot: older, or huge pages disabled)."""
    import ctypes

    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
    except (OSError, AttributeError):  # not Linux
        return 0
    done = 0
    for fields in regions:
        if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
            continue  # only private anonymous memory and the C heap, never a file or a stack
        start, end = (int(x, 16) for x in fields[0].split("-"))
        start, end = -(-start // _HUGE_PAGE) * _HUGE_PAGE, end // _HUGE_PAGE * _HUGE_PAGE
        if end - start >= min_bytes and madvise(start, end - start, _MADV_HUGEPAGE) == 0 \
                and madvise(start, end - start, _MADV_COLLAPSE) == 0:
            done += end - start
    return done

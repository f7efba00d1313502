"""Wall time and memory of a whole command, e.g. the main job (`make run`), as a user runs it.

Samples the command's process tree once a second: the resident memory of each process and of
the tree as a whole. The Docker engine that `scripts/with-dockerd.sh` starts (dockerd,
containerd) is a service, not the job, and is left out; sandboxed programs run under the
engine's shims, outside the tree. Results go to --out (never into the repository by default).

    python benchmarks/main_job.py --out /tmp/main-job -- make run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

SERVICES = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy", "runc"}


def tree(root: psutil.Process) -> list[psutil.Process]:
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        try:
            if p.name() in SERVICES:
                continue
            out.append(p)
            todo.extend(p.children())
        except psutil.Error:
            continue
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for main_job.json")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        sys.exit("error: main_job.py: no command given (put it after --)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    root = psutil.Process(proc.pid)
    peak_tree, peak_proc, timeline = 0.0, {}, []
    while proc.poll() is None:
        procs = tree(root)
        rss = {}
        for p in procs:
            try:
                rss[p.pid] = (" ".join(p.cmdline()[:4])[:120], p.memory_info().rss / 2**20)
            except psutil.Error:
                pass
        total = sum(m for _, m in rss.values())
        peak_tree = max(peak_tree, total)
        for name, m in rss.values():
            peak_proc[name] = max(peak_proc.get(name, 0.0), m)
        timeline.append((round(time.perf_counter() - t0, 1), round(total)))
        time.sleep(args.interval)
    wall = time.perf_counter() - t0
    top = sorted(peak_proc.items(), key=lambda kv: -kv[1])[:8]
    result = {"command": cmd, "exit_status": proc.returncode, "wall_s": round(wall, 1),
              "peak_tree_rss_mib": round(peak_tree), "peak_rss_mib_by_process": {k: round(v) for k, v in top},
              "timeline_s_mib": timeline}
    (out / "main_job.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "timeline_s_mib"}, indent=1))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()

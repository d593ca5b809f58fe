"""Sweep runner: scaling of a 2-worker sweep over 1 worker, and the overhead per run.

    python benchmarks/bench_sweep.py [--backends local,dask] [--run-seconds 2] [--runs 8] [--repeat 1]

Prints one JSON line:
  scaling[backend] = min wall(1 worker) / min wall(2 workers) over `repeat` interleaved repetitions,
  for `runs` network runs of ~`run_seconds`
  each (balanced LIF network, n = 2000, K = 100; t_max calibrated in-process first);
  overhead_ms[backend] = (sweep wall with 1 worker - sum of the runs' own wall times) / runs, for
  `small_runs` small-network runs (n = 100, K = 10, 200 spikes); the local backend's process-pool
  start is included; Dask runs on an already started LocalCluster (its start-up time is reported
  as dask_cluster_start_s, the backend="dask" default starts one per sweep).
Without the compiled core, a pure-Python busy loop of the same duration stands in for the network
("workload": "busy-loop").
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import sparseprop  # noqa: F401
    from sparseprop import sweep

    HAVE_CORE = True
except ImportError:  # run the sweep layer from the source tree
    HAVE_CORE = False
    _shim = Path(tempfile.mkdtemp(prefix="sp-sweep-shim-"))
    (_shim / "spsweep_shim").mkdir()
    (_shim / "spsweep_shim" / "__init__.py").write_text("")
    _src = Path(__file__).resolve().parents[1] / "sparseprop"
    for _name in ("sweep.py", "uq.py"):
        (_shim / "spsweep_shim" / _name).symlink_to(_src / _name)
    sys.path.insert(0, str(_shim))
    from spsweep_shim import sweep  # type: ignore[no-redef]


def busy(params):
    t0 = time.perf_counter()
    x = 0
    while time.perf_counter() - t0 < params["seconds"]:
        x += 1
    return {"iterations": x}


def calibrate_t_max(run_seconds):
    params = {"n": 2000, "k": 100, "t_max": 5.0, "seed": 1}
    t0 = time.perf_counter()
    sweep.simulate_network(params)
    dt = time.perf_counter() - t0
    return round(5.0 * run_seconds / dt, 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="local,dask")
    ap.add_argument("--run-seconds", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--small-runs", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=1,
                    help="repeat the 1- and 2-worker sweeps (interleaved); scaling uses the fastest of each")
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]

    if HAVE_CORE:
        t_max = calibrate_t_max(args.run_seconds)
        fn, big = "network", {"n": 2000, "k": 100, "t_max": t_max}
        small = [{"n": 100, "k": 10, "spikes": 200}]
        workload = f"network n=2000 k=100 t_max={t_max}s"
    else:
        fn, big = busy, {"seconds": args.run_seconds}
        small = [{"seconds": 0.0}]
        workload = "busy-loop"

    out = {"workload": workload, "runs": args.runs, "repeat": args.repeat, "cpus": os.cpu_count(), "scaling": {}, "wall_1w_s": {},
           "wall_2w_s": {}, "mean_run_s": {}, "overhead_ms": {}, "small_runs": args.small_runs,
           "small_mean_run_ms": {}}
    for backend in backends:
        clusters, kws = {}, {}
        try:
            for workers in (1, 2):
                kws[workers] = {"backend": backend, "workers": workers}
                if backend == "dask":  # scaling on running clusters; their start-up is reported apart
                    from distributed import LocalCluster

                    t0 = time.perf_counter()
                    clusters[workers] = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                     dashboard_address=":0")
                    out.setdefault("dask_cluster_start_s", {})[workers] = round(time.perf_counter() - t0, 3)
                    kws[workers] = {"backend": "dask", "scheduler": clusters[workers].scheduler_address}
            walls = {1: [], 2: []}
            for _ in range(args.repeat):  # interleaved, fastest kept: this 2-core machine is shared
                for workers in (1, 2):
                    res = sweep.run_sweep(fn, big, seeds=args.runs, **kws[workers])
                    assert res.n_failed == 0, res.records[0].get("error")
                    walls[workers].append(res.wall_s)
                    # CPU share of the runs: well below 1 means other processes took the cores
                    share = float(np.sum(res.table["cpu_s"]) / np.sum(res.table["wall_s"]))
                    out.setdefault("run_cpu_share", {}).setdefault(backend, {}).setdefault(
                        f"{workers}w", []).append(round(share, 3))
            out["mean_run_s"][backend] = round(float(np.mean(res.table["wall_s"])), 3)
            res = sweep.run_sweep(fn, small, seeds=args.small_runs, **kws[1])
            assert res.n_failed == 0, res.records[0].get("error")
            busy_s = float(np.sum(res.table["wall_s"]))
            out["overhead_ms"][backend] = round(1e3 * (res.wall_s - busy_s) / args.small_runs, 3)
            out["small_mean_run_ms"][backend] = round(1e3 * busy_s / args.small_runs, 3)
        finally:
            for cluster in clusters.values():
                cluster.close()
        out["wall_1w_s"][backend] = [round(w, 3) for w in walls[1]]
        out["wall_2w_s"][backend] = [round(w, 3) for w in walls[2]]
        out["scaling"][backend] = round(min(walls[1]) / min(walls[2]), 3)
    out["loadavg_1min"] = os.getloadavg()[0]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

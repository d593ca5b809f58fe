"""Large run: N = 1e6 LIF (or --model qif), 1e7 spikes, recording on; wall time and peak memory.

    python benchmarks/bench_big.py [--n 1000000] [--spikes 10000000] [--model lif] [--out FILE.json]

Runs the simulation in a fresh child process (so peak RSS is the run's own) and prints one JSON
line: wall_s (whole command incl. set-up), sim wall_s, ns_per_spike, peak_rss_mb, rate_hz; also
written to --out (default benchmarks/results/big_<model>.json).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

CHILD = """
import json, sys, time, resource
import sparseprop as sp
n, spikes, model = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
net = sp.balanced_network(n=n, k=100, model=model)
res = sp.simulate(net, spikes=spikes, progress=False)
print(json.dumps({"setup_and_run_s": time.perf_counter() - t0, "sim_wall_s": res.wall_s,
                  "ns_per_spike": res.ns_per_spike, "rate_hz": res.mean_rate(),
                  "sim_time_s": res.duration, "spikes": res.n_spikes}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10**6)
    ap.add_argument("--spikes", type=int, default=10**7)
    ap.add_argument("--model", default="lif")
    ap.add_argument("--out", default=None, help="JSON file (default benchmarks/results/big_<model>.json)")
    args = ap.parse_args(argv)
    out_path = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                        f"big_{args.model}.json")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.n), str(args.spikes), args.model],
                         check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    row = json.loads(out.strip().splitlines()[-1])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    row.update(benchmark="big", model=args.model, n=args.n, k=100, wall_s=wall, peak_rss_mb=peak_mb)
    print(json.dumps(row))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(row, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A/B comparison of two builds of sparseprop, interleaved in one run (the machines are noisy).

Each variant is built from the current checkout into its own folder with different build
environment variables, then the same workload runs alternately in fresh processes:

    python benchmarks/ab_compare.py --a "" --b "SPARSEPROP_HEAP_ARITY=2" --n 1000000 --rounds 5
    python benchmarks/ab_compare.py --a "" --b "SPARSEPROP_DEFINE=SPARSEPROP_NO_HUGEPAGE" --n 1000000
    python benchmarks/ab_compare.py --a-rev HEAD~3 --b "" --n 1000000     # A from an older commit
    python benchmarks/ab_compare.py --a-rev HEAD~1 --b "" --n 1000 100000 --model lif qif

Several --n / --model values reuse the two builds: every (n, model) workload runs in each round.
Prints one JSON line per (n, model): median ns per spike of A and B and the ratio B/A.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOAD = """
import sys, sparseprop as sp
n, k, model, spikes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
net = sp.balanced_network(n=n, k=k, model=model)
r = sp.simulate(net, spikes=min(max(n // 2, 1000), 200_000), progress=False)
r = sp.simulate(net, spikes=spikes, state=r.final_state, progress=False)
print(r.ns_per_spike)
"""


def build(env_assignments, dest, rev=None):
    env = dict(os.environ)
    for item in env_assignments.split():
        key, _, val = item.partition("=")
        env[key] = val
    src = os.path.join(dest, "src")
    if rev:
        os.makedirs(src)
        archive = subprocess.run(["git", "-C", ROOT, "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    else:
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.so", "*.c",
                                                                 "tests", "benchmarks"))
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=src, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return src


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="", help="build environment of variant A (KEY=VAL ...)")
    ap.add_argument("--a-rev", default=None, help="build variant A from this git revision")
    ap.add_argument("--b", required=True, help="build environment of variant B")
    ap.add_argument("--b-rev", default=None, help="build variant B from this git revision")
    ap.add_argument("--n", type=int, nargs="+", default=[10**6])
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--model", nargs="+", default=["lif"])
    ap.add_argument("--spikes", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="sparseprop-ab-")
    try:
        paths = {"a": build(args.a, os.path.join(tmp, "a"), args.a_rev),
                 "b": build(args.b, os.path.join(tmp, "b"), args.b_rev)}
        work = [(n, model) for model in args.model for n in args.n]
        samples = {w: {"a": [], "b": []} for w in work}
        for _ in range(args.rounds):
            for n, model in work:
                for v in ("a", "b"):
                    out = subprocess.run([sys.executable, "-c", WORKLOAD, str(n), str(args.k), model,
                                          str(args.spikes)], env={**os.environ, "PYTHONPATH": paths[v]},
                                         check=True, capture_output=True, text=True).stdout
                    samples[n, model][v].append(float(out.strip().splitlines()[-1]))
        for (n, model), smp in samples.items():
            a, b = statistics.median(smp["a"]), statistics.median(smp["b"])
            print(json.dumps({"a": args.a, "a_rev": args.a_rev, "b": args.b, "b_rev": args.b_rev, "n": n, "k": args.k,
                              "model": model, "ns_per_spike_a": a, "ns_per_spike_b": b, "ratio_b_over_a": b / a,
                              "samples": smp}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

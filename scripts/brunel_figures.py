"""Raster + population-rate figures of the four Brunel (2000) regimes (README figures).

    python scripts/brunel_figures.py [--t-max 0.3] [--out docs/figures]
"""
import argparse
import json
import os

import sparseprop as sp


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--t-max", type=float, default=0.3, help="simulated seconds per state")
    ap.add_argument("--out", default="docs/figures")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for state in ("SR", "SIfast", "AI", "SIslow"):
        net = sp.brunel_network(state=state)
        res = sp.simulate(net, t_max=args.t_max, progress=False)
        path = os.path.join(args.out, f"brunel_{state}.png")
        ax = res.plot_raster(path=path, max_neurons=50, bin_s=0.001)
        print(json.dumps({"state": state, "rate_hz": res.mean_rate(), "cv": res.cv(), "spikes": res.n_spikes,
                          "wall_s": res.wall_s, "figure": path}), flush=True)


if __name__ == "__main__":
    main()

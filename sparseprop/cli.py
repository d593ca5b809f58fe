"""Command line: ``sparseprop run ...`` (and the subcommands of the other modules)."""
import argparse
import json
import math
import sys

import numpy as np


def _add_run(sub):
    p = sub.add_parser("run", help="simulate the SparseProp balanced network",
                       description="Simulate the SparseProp reference network (N inhibitory neurons, K "
                       "random targets each, weights -J0/sqrt(K), drive from the balance condition) "
                       "exactly, event by event. Defaults are the seed network.")
    p.add_argument("--preset", choices=["seed", "brunel"], default="seed",
                   help="seed: the SparseProp balanced network (default); brunel: Brunel (2000)'s sparse "
                   "E/I LIF network (12,500 neurons, delays, refractoriness, Poisson input; default 1 s)")
    p.add_argument("--state", choices=["SR", "SIfast", "SIslow", "AI"], default="AI",
                   help="Brunel regime (with --preset brunel): g and nu_ext/nu_thr of Brunel (2000)")
    p.add_argument("--model", choices=["lif", "qif", "eif"], default="lif",
                   help="eif: the shipped seed EIF phase table (drive 0.1)")
    p.add_argument("--table", metavar="PATH", type=_table_model, default=None,
                   help="neuron model from a phase table (a path or a shipped table name; overrides --model)")
    p.add_argument("--n", type=int, default=100_000, help="number of neurons (default 1e5)")
    p.add_argument("--k", type=int, default=100, help="out-degree (default 100)")
    p.add_argument("--j0", type=float, default=1.0, help="coupling strength J0 (default 1)")
    p.add_argument("--rate", type=float, default=1.0, help="target rate in Hz for the balance condition")
    p.add_argument("--tau", type=float, default=0.01, help="membrane time constant in s (default 0.01)")
    p.add_argument("--drive", type=float, default=None, help="constant drive I (overrides the balance condition)")
    p.add_argument("--spikes", type=int, default=None, help="number of network spikes (default 1e5 unless --t-max)")
    p.add_argument("--t-max", type=float, default=None, help="simulated time in s")
    p.add_argument("--seed-ic", type=int, default=1, help="seed of the initial condition")
    p.add_argument("--seed-net", type=int, default=1, help="seed of the network realisation")
    p.add_argument("--engine", choices=["tree", "heap", "dense"], default="tree",
                   help="tree (default) or heap: SparseProp, O(log N) per spike, with a tournament tree or a "
                        "d-ary heap as event queue; dense: conventional O(N) per spike (same spikes)")
    p.add_argument("--out", metavar="FILE.npz", help="save spikes, metadata and final state")
    p.add_argument("--plot", metavar="FILE.png", help="save a raster plot (needs matplotlib)")
    p.add_argument("--no-record", action="store_true", help="count spikes without storing them")
    p.add_argument("--json", action="store_true", help="print one JSON line with the summary on stdout")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=_cmd_run)


def _table_model(value):
    """--table: a TableNeuron from a path or a shipped table name (errors become usage errors)."""
    import sparseprop as sp

    try:
        return sp.TableNeuron(value)
    except (OSError, ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_run(args):
    import sparseprop as sp

    if args.preset == "brunel":
        return _cmd_run_brunel(args)
    spikes = args.spikes if (args.spikes is not None or args.t_max is not None) else 100_000
    net = sp.balanced_network(n=args.n, k=args.k, j0=args.j0, rate=args.rate, tau=args.tau,
                              model=args.table or args.model, drive=args.drive, seed_net=args.seed_net)
    res = sp.simulate(net, spikes=spikes, t_max=args.t_max, seed_ic=args.seed_ic, engine=args.engine,
                      record=not args.no_record, progress=args.progress)
    if args.out:
        res.save(args.out)
    if args.plot:
        res.plot_raster(path=args.plot)
    summary = res.summary()
    summary.update(j0=args.j0, target_rate_hz=args.rate, drive=float(net.drive),
                   seed_ic=args.seed_ic, out=args.out, plot=args.plot)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 130 if res.interrupted else 0


def _cmd_run_brunel(args):
    import sparseprop as sp

    t_max = args.t_max if args.t_max is not None else (None if args.spikes else 1.0)
    net = sp.brunel_network(state=args.state, seed=args.seed_net)
    res = sp.simulate(net, spikes=args.spikes, t_max=t_max, seed_ic=args.seed_ic, seed_input=args.seed_ic,
                      engine=args.engine, record=not args.no_record, progress=args.progress)
    if args.out:
        res.save(args.out)
    if args.plot:
        res.plot_raster(path=args.plot)
    summary = res.summary()
    g, eta = sp.BRUNEL_STATES[args.state]
    summary.update(preset="brunel", state=args.state, g=g, eta=eta, events=res.metadata.get("events"),
                   wall_per_sim_s=res.wall_s / res.duration if res.duration > 0 else None,
                   seed_ic=args.seed_ic, out=args.out, plot=args.plot)
    summary.pop("inputs", None)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"sparseprop Brunel (2000) network, state {args.state} (g = {g}, nu_ext/nu_thr = {eta})")
        for key in ("n", "spikes", "sim_time_s", "wall_s", "wall_per_sim_s", "rate_hz", "cv", "events"):
            print(f"  {key:<20} {summary.get(key)}")
        for name, st in (summary.get("population_stats") or {}).items():
            print(f"  {name:<20} rate {st.get('rate_hz')} Hz, cv {st.get('cv')}")
    return 130 if res.interrupted else 0


def _print_summary(s):
    def fmt(x):
        if x is None:
            return "n/a"
        return f"{x:.6g}" if isinstance(x, float) else str(x)
    head = f"sparseprop {s['model'].upper()} network: n={s['n']} k={s.get('k')} drive={s['drive']:.6g} tau={s['tau_s']} s"
    print(head)
    rows = [("engine", s["engine"]), ("spikes", s["spikes"]), ("simulated time (s)", s["sim_time_s"]),
            ("wall time (s)", s["wall_s"]), ("ns per spike", s["ns_per_spike"]),
            ("mean rate (Hz)", s["rate_hz"]), ("mean ISI CV", s["cv"]), ("stopped by", s["stopped_by"])]
    if s.get("out"):
        rows.append(("saved", s["out"]))
    if s.get("plot"):
        rows.append(("raster", s["plot"]))
    for name, val in rows:
        print(f"  {name:<20} {fmt(val)}")


def build_parser():
    parser = argparse.ArgumentParser(prog="sparseprop", description="Exact event-based simulation of "
                                     "sparse spiking networks (SparseProp).")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    from sparseprop import compare, sweep, tablegen

    tablegen.add_subparser(sub)
    compare.add_subparser(sub)
    sweep.add_subcommand(sub)
    _add_gradcheck(sub)
    _add_train(sub)
    return parser


def _add_train(sub):
    p = sub.add_parser("train", help="train a spiking network with exact gradients on a benchmark task",
                       description="Benchmark tasks trained with exact gradients (sparseprop.grad).")
    from sparseprop import tasks

    tasks.add_subparsers(p.add_subparsers(dest="task", required=True))


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="check exact gradients against finite differences",
                       description="Compare the backward pass (sparseprop.grad.vjp) with central finite "
                       "differences on a random LIF or QIF network (mixed-sign weights, heterogeneous drive, "
                       "given input spikes) or EIF network (the table model eif_seed_interp, its drive) and a "
                       "random loss on spike times and final voltages. Exit status 1 when max_rel_err exceeds "
                       "--tol.")
    p.add_argument("--model", choices=["lif", "qif", "eif"], default="lif",
                   help="neuron model of the random network (default lif)")
    p.add_argument("--n", type=int, default=40, help="neurons (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random network and loss")
    p.add_argument("--refractory", type=float, default=0.0, help="refractory period in s")
    p.add_argument("--delays", choices=["none", "homogeneous", "few", "many"], default="none",
                   help="transmission delays: one for all (FIFO), a few values incl. 0, many (pending heap)")
    p.add_argument("--t-max", type=float, default=0.05, help="simulated time in s (default 0.05)")
    p.add_argument("--h", type=float, default=None,
                   help="finite-difference step (rounding limits smaller ones; default 1e-6 LIF, 4e-6 QIF, "
                   "2e-6 EIF)")
    p.add_argument("--tol", type=float, default=1e-6, help="largest accepted relative error")
    p.add_argument("--json", action="store_true", help="print one JSON line")

    def run(args):
        from sparseprop import gradcheck

        return gradcheck.main(args)
    p.set_defaults(func=run)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:      # bad input, unreadable/unwritable files
        print(f"sparseprop {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

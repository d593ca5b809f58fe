#!/usr/bin/env python3
"""Accuracy of the table model against the analytic LIF (same code as ``sparseprop compare-lif``).

    python scripts/compare_lif.py --method both --json --plot dt.png
    python scripts/compare_lif.py --n 100000 --k 100 --spikes 1000000 --method chebyshev --json

Simulates the seed LIF network once with the analytic model and once per method with a LIF table
generated on the fly (same seeds, same initial voltages) and reports spike id mismatches and
|dt| (s); see sparseprop/compare.py.
"""
import sys

from sparseprop.compare import main

if __name__ == "__main__":
    sys.exit(main())

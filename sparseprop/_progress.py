"""The one progress bar of sparseprop (stderr, no dependency): simulations, sweeps.

On a terminal it redraws one line (at most 5 times a second); elsewhere (CI logs, files) it writes a
plain line at most every 5 s. With `enabled=None` it shows only on a terminal; `delay` hides it for
short jobs.
"""
import math
import sys
import time


class Progress:
    def __init__(self, total, unit, enabled=None, delay=1.5, stream=None, label=""):
        self.total = total
        self.unit = unit
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = self.tty if enabled is None else bool(enabled)
        self.delay = delay
        self.start = time.perf_counter()
        self.first = None          # progress at the first update: the rate counts only new work
        self.shown = False
        self.last = -math.inf

    def update(self, done, extra="", force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.first is None:
            self.first = done
        if not force and (now - self.start < self.delay or now - self.last < (0.2 if self.tty else 5.0)):
            return
        self.last = now
        self.shown = True
        elapsed = now - self.start
        head = f"{self.label} " if self.label else ""
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            new = done - self.first
            eta = elapsed / new * (self.total - done) if new > 0 else math.nan
            eta_s = f" eta {eta:6.1f}s" if math.isfinite(eta) and done < self.total else ""
            msg = (f"{head}[{bar}] {100 * frac:5.1f}% {done:.6g}/{self.total:.6g} {self.unit} "
                   f"{elapsed:6.1f}s{eta_s} {extra}")
        else:
            msg = f"{head}{done:.6g} {self.unit} {elapsed:6.1f}s {extra}"
        self.stream.write(("\r" + msg + "\x1b[K") if self.tty else (msg.rstrip() + "\n"))
        self.stream.flush()

    def close(self):
        if self.shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()

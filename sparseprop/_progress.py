"""A small stderr progress bar (no dependency): shown only for runs that last more than ~1.5 s."""
import sys
import time


class Progress:
    def __init__(self, total, unit, enabled=None, delay=1.5, stream=None):
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.delay = delay
        self.start = time.perf_counter()
        self.shown = False
        self.last = 0.0

    def update(self, done, extra=""):
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.start < self.delay or now - self.last < 0.2:
            return
        self.last = now
        self.shown = True
        elapsed = now - self.start
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            eta = elapsed / frac - elapsed if frac > 0 else float("nan")
            msg = f"\r[{bar}] {100 * frac:5.1f}% {done:.4g}/{self.total:.4g} {self.unit} {elapsed:6.1f}s eta {eta:6.1f}s {extra}"
        else:
            msg = f"\r{done:.6g} {self.unit} {elapsed:6.1f}s {extra}"
        self.stream.write(msg)
        self.stream.flush()

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()

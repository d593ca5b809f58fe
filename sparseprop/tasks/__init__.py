"""Benchmark training tasks behind ``sparseprop train <task>``.

Each task module provides ``add_subparser(sub)``: it adds its parser to the ``train`` subcommand's
subparsers and sets ``func(args) -> int`` (the exit status).
"""
import argparse
import importlib
import math

TASKS = ("yinyang", "timing")


def add_subparsers(sub):
    for name in TASKS:
        importlib.import_module(f"sparseprop.tasks.{name}").add_subparser(sub)


def arg_int(name, minimum, maximum=None):
    """argparse type: an integer in [minimum, maximum]; the message names `name`."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            hi = f" and <= {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"{name}: must be >= {minimum}{hi}, got {value}")
        return value
    return parse


def arg_real(name, low=None, high=None, low_open=True):
    """argparse type: a finite number above `low` (or at it, with low_open=False), at most `high`."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name}: must be finite, got {text!r}")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"{name}: must be {'>' if low_open else '>='} {low}, got {value:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{name}: must be <= {high}, got {value:g}")
        return value
    return parse

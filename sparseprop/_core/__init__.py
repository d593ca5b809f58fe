"""Compiled core of sparseprop: indexed heap, counter-based RNG, neuron models, the event engine."""

"""sparseprop: exact event-based simulation of sparse spiking networks at O(log N) per spike.

>>> import sparseprop as sp
>>> net = sp.balanced_network(n=10_000, k=100)          # the SparseProp reference LIF network
>>> res = sp.simulate(net, spikes=50_000)
>>> res.mean_rate(), res.cv()
"""
from sparseprop._core._models import LIF, MODELS, QIF, Mixed, NeuronModel, TableNeuron, make_model
from sparseprop.inputs import PoissonInput, SpikeTrainInput
from sparseprop.network import FixedOutDegree, Network, SparseConnectivity, balance_drive, balanced_network
from sparseprop.populations import (BRUNEL_STATES, Bernoulli, FixedInDegree, FromArrays, FromMatrix, InDegree,
                                    NetworkBuilder, OneToOne, OutDegree, Population, brunel_network,
                                    export_network, load_network)
from sparseprop.results import NetworkState, SimulationResult, load_result
from sparseprop.simulation import Record, simulate
from sparseprop.tables import Table, load_table

__version__ = "0.1.0"

__all__ = ["LIF", "QIF", "Mixed", "TableNeuron", "NeuronModel", "MODELS", "make_model", "Network", "FixedOutDegree",
           "SparseConnectivity", "PoissonInput", "SpikeTrainInput", "Record", "NetworkBuilder", "Population", "InDegree", "FixedInDegree",
           "OutDegree", "Bernoulli", "OneToOne", "FromArrays", "FromMatrix", "brunel_network", "BRUNEL_STATES",
           "export_network", "load_network", "balanced_network", "balance_drive", "simulate", "SimulationResult",
           "NetworkState", "load_result", "Table", "load_table", "__version__"]

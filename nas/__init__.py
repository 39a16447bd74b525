"""nas: neural architecture search for mixed-kernel (MixConv) convolutional networks.

    import nas
    space = nas.load_space("mixnet_300m")
    arch = space.sample(random.Random(0))       # nas.Architecture
    cost = nas.count_cost(arch)                 # .flops, .params at the space's target input
    model = nas.build_model(arch)               # static torch.nn.Module
    supernet = nas.Supernet(space)              # supernet(x, arch); supernet.extract(arch)

Importing nas imports neither torch nor Optuna: the names that need torch
(``build_model``, ``Supernet``, the exporter) load it on first use.
"""

__version__ = "0.2.0"

from .arch import Architecture, Block, Head, InputSpec, Stem  # noqa: E402
from .cost import Cost, count_cost  # noqa: E402
from .errors import ArchError, DataError, ExportError, NasError, RunError, SpaceError, UsageError  # noqa: E402
from .lazy import lazy_names  # noqa: E402
from .space import Decision, SearchSpace, available_spaces, load_space  # noqa: E402

# name -> module that defines it; imported when first asked for (PEP 562).
__getattr__, __dir__ = lazy_names(__name__, {
    "build_model": "model", "Supernet": "supernet", "export_arch": "export",
    "model_source": "export"})

__all__ = [
    "__version__",
    "Architecture", "Block", "Head", "InputSpec", "Stem",
    "Cost", "count_cost",
    "NasError", "ArchError", "DataError", "ExportError", "RunError", "SpaceError", "UsageError",
    "Decision", "SearchSpace", "available_spaces", "load_space",
    "build_model", "Supernet", "export_arch", "model_source",
]


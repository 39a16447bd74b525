"""nas: neural architecture search for mixed-kernel (MixConv) convolutional networks.

    import nas
    space = nas.load_space("mixnet_300m")
    arch = space.sample(random.Random(0))       # nas.Architecture
    cost = nas.count_cost(arch)                 # .flops, .params at the space's target input
    model = nas.build_model(arch)               # static torch.nn.Module
    supernet = nas.Supernet(space)              # supernet(x, arch); supernet.extract(arch)
"""

__version__ = "0.1.0"

from .arch import Architecture, ArchError, Block, Head, InputSpec, Stem  # noqa: E402
from .cost import Cost, count_cost  # noqa: E402
from .export import ExportError, export_arch, model_source  # noqa: E402
from .model import build_model  # noqa: E402
from .space.loader import SpaceError, available_spaces, load_space  # noqa: E402
from .space.search_space import Decision, SearchSpace  # noqa: E402
from .supernet import Supernet  # noqa: E402

__all__ = [
    "__version__",
    "Architecture", "ArchError", "Block", "Head", "InputSpec", "Stem",
    "Cost", "count_cost",
    "ExportError", "export_arch", "model_source",
    "build_model",
    "SpaceError", "available_spaces", "load_space",
    "Decision", "SearchSpace",
    "Supernet",
]

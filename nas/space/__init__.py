"""Search spaces: one YAML file per space, parsed strictly into a :class:`SearchSpace`.

    space = load_space("mixnet_300m")    # a registered name (file stem) or a path
    space.decisions                      # what a controller chooses
    space.sample(rng), space.contains(arch), space.cost_range()
"""

from .loader import SPACES_ENV, available_spaces, load_space, parse_space, space_location
from .search_space import CostRange, Decision, RowSpace, SearchSpace, sample_band

__all__ = ["SPACES_ENV", "available_spaces", "load_space", "parse_space", "space_location",
           "CostRange",
           "Decision", "RowSpace", "SearchSpace", "sample_band"]

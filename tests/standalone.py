"""Shared by the export tests: the preamble of a script run where nas is not importable."""

import textwrap

# Put first in a `python -c` script: any import of nas (or nas.*) then fails, as it would
# for a user who copied only the exported files.
NO_NAS = textwrap.dedent("""
    import sys
    class NoNas:
        def find_spec(self, name, path=None, target=None):
            if name == "nas" or name.startswith("nas."):
                raise ImportError("nas is not importable here")
    sys.meta_path.insert(0, NoNas())
""")


def moved_statistics(model):
    """``model`` with BatchNorm statistics and scales away from the identity (seeded), so
    that an export or a converter that dropped or misplaced a BatchNorm would show."""
    import torch

    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model

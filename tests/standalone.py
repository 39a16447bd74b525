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

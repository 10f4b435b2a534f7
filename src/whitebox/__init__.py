"""whitebox: reproducible pipeline for interpretable vision networks.

Import subpackages directly (``from whitebox.layers import SoftMaxPool``); this
module stays light so that the Snakefile can import ``whitebox.config`` without
loading torch.
"""

__version__ = "0.1.0"

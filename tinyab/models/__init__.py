"""Networks and their initialisation: ``build_model``, ``apply_init``, ``count_parameters``.

See docs/models.md for the architectures, the seed-network reconstructions and the init formulas.
"""

from tinyab.models.init import apply_init
from tinyab.models.presets import ARCHS, build_model, count_parameters

__all__ = ["ARCHS", "apply_init", "build_model", "count_parameters"]

"""Where each site lives in each architecture, and the checks that prove it on the model in hand."""
from lamina.anatomy.anatomy import Anatomy, Location, anatomy_for
from lamina.anatomy.families import FAMILIES, Family

__all__ = ["Anatomy", "Location", "anatomy_for", "FAMILIES", "Family"]

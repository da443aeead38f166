"""Demo data with history, made the honest way (see :mod:`config.demo.history`): the catalogue
(``catalogue``), the printed logins (``logins``), the three scripted customers (``story``) and
the webhook receiver the seed serves meanwhile (``receiver``)."""

from config.demo.history import seed
from config.demo.logins import DEMO_LOGINS, DEMO_PASSWORD

__all__ = ["DEMO_LOGINS", "DEMO_PASSWORD", "seed"]

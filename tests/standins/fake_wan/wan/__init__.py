"""Fake `wan` package for the generate.py stand-in: the names our launcher, its fast loading, its timing and the
warm worker patch or call, with upstream's signatures (Wan2.2 42bf4cf); no torch, no weights."""
from . import configs  # noqa: F401
from .animate import WanAnimate  # noqa: F401
from .modules import attention  # noqa: F401

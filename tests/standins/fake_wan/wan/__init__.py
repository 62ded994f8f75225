"""Fake `wan` package for the generate.py stand-in: only the names our launcher patches."""
from .animate import WanAnimate  # noqa: F401
from .modules import attention  # noqa: F401

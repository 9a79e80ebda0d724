"""shim: an OpenAI-compatible server in front of Hugging Face inference backends."""

from shim.app import create_app
from shim.loader import load_config

__version__ = "0.1.0"
__all__ = ["__version__", "create_app", "load_config"]

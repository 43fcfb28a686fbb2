"""The whole system on loopback for `make dev` and the end-to-end tests.

The Worker in workerd (`wrangler dev`, local backend mode), the sandbox runtime with the real
OpenClaw gateway and the directory snapshot store, and a headless Chromium standing in for
Browser Rendering. `LocalStack` starts and stops them in order; `python -m devstack` is the command.
"""

from .base import DevstackError
from .stack import LocalStack, LocalStackConfig

__all__ = ["DevstackError", "LocalStack", "LocalStackConfig"]

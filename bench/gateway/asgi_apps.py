"""App factories for running the benchmark's targets under another ASGI server (granian), measure only.

    granian --interface asgi --loop uvloop --factory --working-dir bench/gateway asgi_apps:interlock_app
    granian --interface asgi --loop uvloop --factory --working-dir bench/gateway asgi_apps:relay_app

`interlock_app` reads its config from INTERLOCK_CONFIG (as `interlock serve --config` would);
`relay_app` reads RELAY_UPSTREAM and RELAY_KEY. `bench/gateway/run.py --variant NAME:server=granian`
and `--relay-server granian` start them. granian is not a dependency of Interlock: install it into a
throwaway folder and put that on PYTHONPATH (see README.md).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `interlock serve` sets it


def interlock_app() -> Any:
    """The gateway app, as `interlock serve` builds it."""
    from interlock.app import create_app
    from interlock.settings import load_settings

    return create_app(load_settings())


def relay_app() -> Any:
    """The bare relay (`relay.py`)."""
    from relay import from_env

    return from_env()

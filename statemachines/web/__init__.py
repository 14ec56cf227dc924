"""The HTTP service: a JSON API, callback URLs, health and metrics, and the console.

An interface on top of the engine, like the CLI: no engine module imports it. Needs the `[web]`
extra (`pip install statemachines[web]`). See docs/service.md.
"""

from statemachines.web.app import create_app

__all__ = ["create_app"]

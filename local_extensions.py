"""Jinja extensions for this template (cookiecutter loads them via `_extensions`)."""

from jinja2.ext import Extension


class UnicodeJson(Extension):
    """`|tojson` keeps non-ASCII text as is.

    Its default `\\uXXXX` escapes turn emoji into surrogate pairs, which TOML rejects.
    """

    def __init__(self, environment):
        super().__init__(environment)
        environment.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}

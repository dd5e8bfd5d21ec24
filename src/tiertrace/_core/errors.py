"""Errors tiertrace raises.

`ConfigError` is the only exception tiertrace ever raises into your code, and only from
`tiertrace.init()` (and the explicit `instrument_client` calls, which are configuration too).
Its message names the setting and says what to change::

    >>> import tiertrace
    >>> tiertrace.init(exporter="zipkin")  # doctest: +SKIP
    tiertrace.ConfigError: exporter='zipkin' is not supported; use one of 'otlp', ...

Once `init()` has returned, a fault inside tiertrace never reaches your call: it is logged
once, counted in the `tiertrace.self.errors` metric and your Redis, PostgreSQL or Chroma call
goes on unharmed.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad tiertrace configuration; the message names the setting and the fix.

    Raised only by `tiertrace.init` and the instrumentors' ``instrument_client``, never from
    inside your Redis, PostgreSQL or Chroma calls. It is a `ValueError`.

    Example:
        ```python
        try:
            tiertrace.init(exporter="zipkin")
        except tiertrace.ConfigError as error:
            print(error)  # init(): exporter='zipkin' is invalid; use one of 'otlp', ...
        ```
    """

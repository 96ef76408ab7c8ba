"""The sans-I/O protocol core.

Builds the requests to send and interprets the responses that come back, and
nothing else: no sockets, no httpx, no event loop. Operations that need several
exchanges (discovery, retries, secret re-reads) are generators that *yield*
actions -- :class:`~authkestra._protocol.actions.HttpRequest`,
:class:`~authkestra._protocol.actions.Sleep`,
:class:`~authkestra._protocol.actions.ReadSecret` -- and receive their results,
so one implementation serves the sync and the async drivers, and tests drive
them by hand with ``next()`` and ``.send()``.
"""

"""The one I/O layer: everything that waits on the network or on another caller.

- :mod:`.transport` -- one protocol request over httpx, sync or async, limits enforced;
- :mod:`.drivers` -- run a sans-I/O operation (:mod:`authkestra._protocol`) with
  blocking or with async I/O; the two differ only in how they wait;
- :mod:`.flight` -- one fetch in flight, awaited by any mix of threads and coroutines;
- :mod:`.refresh` -- the refresh-ahead cache with one fetch in flight per key, that
  keeps the client's tokens, an API's key sets and its introspection answers.

The client (:mod:`authkestra.flow`), the resource server (:mod:`authkestra.resource`)
and the authorization server build on these; none of them reaches into another's
internals for them.
"""

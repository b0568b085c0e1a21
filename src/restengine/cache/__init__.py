"""One response cache for every worker and instance, never stale after a write.

Keys carry the *generations* of what the response was built from. A write
bumps them after the database write committed, so every worker of every
instance stops using the older entries at once, with no ``KEYS``/``SCAN``
anywhere. A lookup is one Redis round trip: a small Lua script reads the
generations and the entry together; a hot entry none at all, answered from
the worker's near cache (``restengine.cache.near``), which Redis's client
tracking tells of every generation change. Per collection there are three kinds:

* the collection's generation (``re:g:<db>.<coll>``), bumped by every write:
  lists, and expanded references, use it;
* its *documents* generation (``re:gd:``), bumped only by writes that cannot
  be pinned to single documents (``_bulk``, drops, a watcher restart);
* one *item* generation per written document (``re:gi:``), which an item
  write sets to the collection's new generation.

An item read uses the documents and item generations: a write to one book
leaves every other cached book a hit. Item generations expire (twice the
longest entry lifetime seen for the collection, plus a minute), so Redis
holds one only for documents written recently; since a bump sets a value
never used before, an expired one can never bring back an older entry.

Entries are fresh for the resource's TTL, then *stale* for a short window:
one request rebuilds a stale or missing entry while the others wait briefly
(missing) or get the stale one (``X-Cache: stale``). Stale-while-revalidate
only ever serves an entry of the current generations, i.e. one no write has
invalidated.

Redis is optional and may fail: every call has short socket timeouts, and a
circuit breaker stops trying for a few seconds after repeated failures, so
requests fall back to the database. Generations a process could not bump
while Redis was away are bumped as soon as it answers again (a background
thread retries about once a second); until then other workers may serve
entries from before such a write: a window of about the breaker's cooldown
after Redis returns. A restarted, empty Redis has no such window. Without
``REDIS_URL`` the cache lives in the process (Flask-Caching's SimpleCache),
and only when gunicorn runs a single worker: with several, a write would
invalidate only its own process's entries, so the cache is off.
"""

from restengine.cache.backends import BUMP_ITEMS, CircuitBreaker, LocalBackend, RedisBackend, Unavailable
from restengine.cache.keys import (
    ITEMS_MAX,
    PREFIX,
    CollectionKeys,
    generation_key,
    item_token,
    request_key,
    stored_pk,
)
from restengine.cache.store import EXTENSION, Entry, Lookup, Outcome, ResponseCache, init_app

__all__ = [
    "BUMP_ITEMS",
    "EXTENSION",
    "ITEMS_MAX",
    "PREFIX",
    "CircuitBreaker",
    "CollectionKeys",
    "Entry",
    "LocalBackend",
    "Lookup",
    "Outcome",
    "RedisBackend",
    "ResponseCache",
    "Unavailable",
    "generation_key",
    "init_app",
    "item_token",
    "request_key",
    "stored_pk",
]

"""Token signing keys: generated, kept in the store (shared by every instance), rotated."""

from __future__ import annotations

import json
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .._jose import keys as jose_keys
from .._jose.keys import Key, import_jwk
from .._jose.signing import TokenSigner
from .housekeeping import purge
from .logs import audit
from .store import SigningKeyRecord, Store

if TYPE_CHECKING:
    from .settings import ServerSettings

__all__ = [
    "ALGORITHMS",
    "KeyRing",
    "generate_key",
    "key_listing",
    "longest_token_lifetime",
    "rotate_keys",
    "signing_record",
    "withdraw_key",
]

#: The algorithms this server signs its tokens with.
ALGORITHMS = ("ES256", "EdDSA", "RS256")


def new_kid() -> str:
    """A key id: 96 random bits, URL-safe, never starting with ``-`` (which a command line
    would take for an option: ``authkestra keys withdraw -x...``)."""
    while True:
        kid = secrets.token_urlsafe(12)
        if not kid.startswith("-"):
            return kid


def generate_key(alg: str) -> tuple[str, str]:
    """A new private key for ``alg``: (kid, private JWK as JSON)."""
    if alg not in ALGORITHMS:
        raise ValueError(
            f"unsupported signing algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}"
        )
    kid = new_kid()
    key = jose_keys.generate_key(alg, {"alg": alg, "use": "sig", "kid": kid})
    return kid, json.dumps(key.as_dict(private=True))


def signing_record(records: list[SigningKeyRecord], now: datetime) -> SigningKeyRecord | None:
    """The key that signs at ``now``: the oldest one not retired yet (``records`` newest first).

    A rotation retires the keys signing until then at the moment the new one takes over,
    which may be ahead of now (the new key is published first): until that moment, the
    oldest key not retired is still the one whose turn it is.
    """
    for record in reversed(records):
        if record.retired_at is None or record.retired_at > now:
            return record
    return None


def key_listing(records: list[SigningKeyRecord]) -> list[dict[str, Any]]:
    """The published keys as an operator reads them (``records`` newest first): which one
    signs, since when, and until when each signs and stays published (ISO 8601, UTC)."""
    current = signing_record(records, datetime.now(timezone.utc))
    return [
        {
            "kid": record.kid,
            "alg": record.alg,
            "signing": current is not None and record.kid == current.kid,
            "created_at": _when(record.created_at),
            "signs_until": _when(record.retired_at),
            "published_until": _when(record.published_until),
        }
        for record in records
    ]


def _when(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None


def longest_token_lifetime(store: Store, settings: ServerSettings) -> int:
    """How long the tokens of the key that signs now may live: the longest client lifetime
    (what an old key must stay published for after a rotation)."""
    return max(
        [c.token_ttl or settings.default_token_ttl for c in store.list_clients()]
        or [settings.default_token_ttl]
    )


def rotate_keys(
    ring: KeyRing,
    settings: ServerSettings,
    *,
    alg: str | None,
    keep_old_for: int | None,
    publish_ahead: int,
    door: str,
) -> dict[str, Any]:
    """Rotate ``ring``'s keys as the CLI and the admin API do: the new key signs after
    ``publish_ahead`` seconds, the old ones stay published ``keep_old_for`` more (default:
    the longest token lifetime). What was done, as both report it."""
    algorithm = alg or settings.signing_alg
    keep = (
        keep_old_for if keep_old_for is not None else longest_token_lifetime(ring.store, settings)
    )
    ring.signing_key()  # there is an old key to retire (a fresh store has none yet)
    kid = ring.rotate(
        keep_old_for=timedelta(seconds=keep),
        alg=algorithm,
        publish_ahead=timedelta(seconds=publish_ahead),
        door=door,
    )
    return {"kid": kid, "alg": algorithm, "keep_old_for": keep, "publish_ahead": publish_ahead}


def withdraw_key(ring: KeyRing, settings: ServerSettings, kid: str, *, door: str) -> dict[str, Any]:
    """Withdraw ``kid`` (KeyError if it is not published), the other keys kept for the
    longest token lifetime; what was done, as the CLI and the admin API report it."""
    keep = timedelta(seconds=longest_token_lifetime(ring.store, settings))
    return {"withdrawn": kid, "signing_now": ring.withdraw(kid, keep_others_for=keep, door=door)}


#: How many tokens a key ring remembers as checked (about 5 MB of tokens at most).
MAX_CHECKED_TOKENS = 10_000

#: Every key ring of this process, so a rotation made here is served at once.
_RINGS: weakref.WeakSet[KeyRing] = weakref.WeakSet()


def _reload_every_ring() -> None:
    for ring in list(_RINGS):
        ring._loaded_at = float("-inf")
        ring._unknown_kid_reload = float("-inf")


class KeyRing:
    """The published keys and the one that signs, read from the store and reused briefly.

    Parsing a private key costs milliseconds, so parsed keys are kept by kid;
    the list itself is re-read every ``cache_seconds`` so a rotation done with
    the CLI on any machine reaches every instance.

    A rotation may publish the new key ahead of signing with it: until then the
    previous key keeps signing (its ``retired_at`` is in the future), so every
    resource server has fetched the new key before the first token needs it.
    The key that signs is the oldest one not yet retired.
    """

    def __init__(
        self,
        store: Store,
        *,
        alg: str,
        cache_seconds: float,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.store = store
        self.now = now
        self.alg = alg
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._parsed: dict[str, Key] = {}
        #: One signer per (kid, typ): the header encoded once (see TokenSigner).
        self._signers: dict[tuple[str, str], TokenSigner] = {}
        #: Answers rendered from the key list, kept while that list is (see memo).
        self._memo: dict[str, tuple[list[SigningKeyRecord], bytes]] = {}
        #: Tokens whose signature was checked, while the keys are those it was checked with.
        self._checked: dict[str, list[SigningKeyRecord]] = {}
        self._records: list[SigningKeyRecord] = []
        self._loaded_at = float("-inf")
        self._unknown_kid_reload = float("-inf")
        _RINGS.add(self)

    def is_fresh(self) -> bool:
        """True when signing needs no read of the store."""
        return bool(self._records) and time.monotonic() - self._loaded_at < self.cache_seconds

    def _load(self) -> list[SigningKeyRecord]:
        now = time.monotonic()
        if now - self._loaded_at < self.cache_seconds and self._records:
            return self._records
        with self._lock:
            if now - self._loaded_at < self.cache_seconds and self._records:
                return self._records
            records = self.store.signing_keys()
            if not any(r.retired_at is None for r in records):
                kid, jwk = generate_key(self.alg)
                self.store.add_signing_key(kid, self.alg, jwk, retire_others_after=None)
                audit("signing_key_created", kid=kid, alg=self.alg, door="server")
                records = self.store.signing_keys()
            if records == self._records:
                # Unchanged: the same list, so what was made from it (memo, checked
                # signatures) stays good.
                records = self._records
            self._records = records
            self._loaded_at = now
            return records

    def _parse(self, record: SigningKeyRecord) -> Key:
        key = self._parsed.get(record.kid)
        if key is None:
            key = import_jwk(json.loads(record.private_jwk))
            self._parsed[record.kid] = key
        return key

    def signing_key(self) -> tuple[str, str, Key]:
        """(kid, alg, key) of the key that signs now: the oldest not retired yet."""
        record = signing_record(self._load(), self.now())
        if record is None:
            raise RuntimeError("no signing key")  # _load always creates one
        return record.kid, record.alg, self._parse(record)

    def signing_key_created_at(self) -> datetime | None:
        """When the key that signs now was made (the age operators watch)."""
        record = signing_record(self._load(), self.now())
        return record.created_at if record is not None else None

    def verification_key(self, kid: str) -> tuple[str, Key] | None:
        """(alg, key) for a published ``kid``, or None."""
        for refresh in (False, True):
            if refresh:
                # A kid we do not know: maybe another instance just rotated. Re-read the
                # store, but at most once a second, so garbage kids cannot load the database.
                now = time.monotonic()
                if now - self._unknown_kid_reload < 1.0:
                    return None
                self._unknown_kid_reload = now
                self._loaded_at = float("-inf")
            for record in self._load():
                if record.kid == kid:
                    return record.alg, self._parse(record)
        return None

    def algorithms(self) -> list[str]:
        """The algorithms of the published keys (what tokens may be signed with)."""
        return sorted({record.alg for record in self._load()})

    def jwks(self) -> dict[str, Any]:
        """The public JWKS: every published key, signing and retired."""
        keys = []
        for record in self._load():
            public = self._parse(record).as_dict(private=False)
            public.update({"kid": record.kid, "alg": record.alg, "use": "sig"})
            keys.append(public)
        return {"keys": keys}

    def memo(self, name: str, build: Callable[[], bytes]) -> bytes:
        """``build()``'s answer (the JWKS, the metadata: documents made from the published
        keys), made once per reading of the keys and served from memory until the next."""
        records = self._load()
        hit = self._memo.get(name)
        if hit is not None and hit[0] is records:
            return hit[1]
        value = build()
        self._memo[name] = (records, value)
        return value

    def signature_checked(self, token: str) -> bool:
        """Whether ``token``'s signature was found good under the keys published now (a
        token presented again -- to introspection, say -- is not verified again). A key
        withdrawn or rotated changes the keys: every token is checked anew."""
        return self._checked.get(token) is self._load()

    def remember_checked(self, token: str) -> None:
        """Note that ``token``'s signature was found good under the keys published now."""
        if len(self._checked) >= MAX_CHECKED_TOKENS:
            self._checked.clear()  # bounded: a flood of tokens only costs verifications
        self._checked[token] = self._load()

    def sign(self, claims: dict[str, Any], typ: str = "at+jwt") -> str:
        """``claims`` signed by the key that signs now (an RFC 9068 access token, unless
        ``typ`` says what else)."""
        kid, alg, key = self.signing_key()
        signer = self._signers.get((kid, typ))
        if signer is None:
            signer = TokenSigner({"alg": alg, "kid": kid, "typ": typ}, key)
            self._signers[(kid, typ)] = signer
        return signer.sign(claims)

    def withdraw(self, kid: str, *, keep_others_for: timedelta, door: str = "cli") -> str | None:
        """Withdraw ``kid`` from signing and from the JWKS at once (a key that leaked);
        KeyError if it is not published.

        Tokens it signed stop verifying. If it is the key that signs now, a new key takes
        over at once (APIs fetch it on its first unknown kid); the other keys stay
        published ``keep_others_for``. Returns the new key's kid, if one was made.
        """
        records = self.store.signing_keys(private=False)
        if kid not in {record.kid for record in records}:
            raise KeyError(kid)
        current = signing_record(records, self.now())
        replacement = None
        if current is not None and current.kid == kid:
            replacement = self.rotate(keep_old_for=keep_others_for, alg=current.alg, door=door)
        try:
            self.store.withdraw_signing_key(kid)
        except KeyError:
            # The rotation above retired it with nothing to keep (keep_others_for 0), and
            # its purge deleted it already: withdrawn all the same.
            if replacement is None:
                raise
        purge(self.store)  # its private part goes now
        audit("signing_key_withdrawn", kid=kid, replaced_by=replacement, door=door)
        _reload_every_ring()
        for ring in list(_RINGS):
            ring._parsed.pop(kid, None)
            ring._signers = {k: v for k, v in ring._signers.items() if k[0] != kid}
        return replacement

    def rotate(
        self,
        *,
        keep_old_for: timedelta,
        alg: str | None = None,
        publish_ahead: timedelta = timedelta(0),
        door: str = "cli",
    ) -> str:
        """Add a new signing key, published at once and signing after ``publish_ahead``.

        ``door``: the way the rotation came in, for the audit log.

        Until then the key that signs now goes on signing; then it stops, and stays in
        the JWKS for ``keep_old_for`` more (its tokens must still verify).
        """
        kid, jwk = generate_key(alg or self.alg)
        self.store.add_signing_key(
            kid,
            alg or self.alg,
            jwk,
            retire_others_after=keep_old_for,
            signs_from=self.now() + publish_ahead,
        )
        purge(self.store)  # keys withdrawn by earlier rotations go, private parts and all
        audit(
            "signing_key_rotated",
            kid=kid,
            alg=alg or self.alg,
            signs_in_seconds=int(publish_ahead.total_seconds()),
            door=door,
        )
        _reload_every_ring()
        return kid

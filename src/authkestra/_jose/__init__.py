"""The one owner of JOSE (JWS, JWK, JWT claims) in authkestra.

Every token, proof, assertion and key set the package reads or writes goes
through here; joserfc is the signature and JWK engine underneath.

- :mod:`.base64url` -- the strict base64url codec of RFC 7515 §2;
- :mod:`.compact` -- the strict compact-JWS reader (and the verifier's fast path,
  held to it by a differential test);
- :mod:`.algorithms` -- the algorithm table: key type, curve, the RSA minimum;
- :mod:`.keys` -- key import with the size policy (joserfc);
- :mod:`.claims` -- ``exp``/``nbf``/``iat`` checked against a clock, with leeway;
- :mod:`.signing` -- signing and signature checks through joserfc's algorithms.

The first four import only the standard library, so the client (which needs
no joserfc unless it signs) can read tokens with them.
"""

#!/usr/bin/env python3
"""Independent verifier of bizra's wq_proof.json and evidence.json, written from
the specification only (docs/PROTOCOL.md §3-§5, §9 and §11; it was first
written from the project's outside contract, whose rules PROTOCOL.md restates).

    python3 verify_wq_proof.py wq_proof.json --genesis genesis.json
    python3 verify_wq_proof.py evidence.json --genesis genesis.json

The file's "version" key picks the checks: "wq-proof/1" or "evidence/1".

Exit 0: valid.  Exit 1: invalid (the reason names the failing field).
Exit 2: unreadable or malformed input.

It shares no code with bizra: a hand-written protobuf wire-format decoder and
encoder, DSSE PAE, a pure-Python BLAKE3 (genesis_hash = BLAKE3 of the genesis
file's exact bytes) and Ed25519 from the `cryptography` package, hardened to
the strict rule bizra uses (reject s >= L and small-order keys or R).

What it checks (docs/PROTOCOL.md §3-§5 and §9):
  * chain_id and genesis_hash are the genesis file's; deterministic_head = B{height};
  * each validators[i]: a distinct genesis validator; head = B{height}; block_hash equal
    to the proof's; its envelope is a DSSE envelope of payloadType
    application/vnd.bizra.head-report+protobuf with one signature by validators[i].id
    over PAE(payloadType, payload), and the payload is a canonically encoded HeadReport
    {chain_id, genesis_hash, height, block_hash, validator} matching the JSON;
  * agreement joins the labels with "/" (with ":" + 8 hex digits only where hashes
    differ) and wq_head_agreement is true;
  * commit.signatures: DSSE envelopes of payloadType application/vnd.bizra.vote+protobuf,
    one valid signature each by a genesis validator, over a canonically encoded Vote that
    is a PRECOMMIT (kind 2) for (chain_id, height, block_hash) by that validator, all in
    one round, from distinct validators; commit.signers is exactly that set;
  * weights: telemetry.wq_weight gives a weight for every genesis validator and no one
    else (the contract fixes weights per epoch but leaves epoch 0's scales to the team, so
    this verifier takes them from telemetry); each telemetry stake is the genesis stake,
    and when genesis params carry base/poi_gain/rep_gain/stake_gain, each weight equals
    base + poi_gain*poi + rep_gain*rep + stake_gain*isqrt(stake); when they also carry
    poi_cap, the genesis is refused (exit 2) if it breaks the coalition bound
    (coalition_bound_bps, default 2500, in 1..=3333 with
    coalition_bound_bps*(3*base + 2*(poi_gain*poi_cap + rep_gain*10000)) <= 10000*base)
    or 10000 * its worst-case total weight overflows u128, as bizra refuses it;
  * signed_weight, total_weight (u128: decimal strings, or integers) and share_bps
    (floor(signed*10000/total)) match the recomputation;
    signed*10000 >= total*fast_threshold_bps (genesis, default 6667); fast_final is true;
    economic_final, when true, is backed (economic_threshold_bps, default 8000).

What it checks in an evidence.json (equivocation evidence committed on chain):
  * version "evidence/1" (else exit 2) and kind "duplicate-vote"; validator is a genesis
    validator; id, when present, is hex BLAKE3 of the encoded Evidence;
  * votes: exactly two DSSE envelopes of payloadType application/vnd.bizra.vote+protobuf,
    each with exactly one signature whose keyid is `validator`, valid (strict Ed25519) over
    PAE(payloadType, payload); each payload a canonically encoded Vote of genesis's
    chain_id by `validator`, of kind PREVOTE (1) or PRECOMMIT (2), at height >= 1, with a
    block_hash of 0 or 32 bytes;
  * the votes conflict: the same height, round and kind, and different block hashes. The
    Evidence is re-encoded as bizra commits it: Evidence{duplicate_vote = 1:
    DuplicateVoteEvidence{first = 1, second = 2}}, each a SignedVote{vote = 1, signature = 2},
    first being the vote whose block_hash sorts bytewise lower; at most 2048 bytes;
  * age: the votes' height h and the including height H satisfy h <= H,
    H - h <= params.evidence.max_age_blocks (default 1000) and
    (H-1)//L - (h-1)//L <= params.evidence.max_age_epochs (default 2), L = epoch_length
    (default 100);
  * inclusion.header (base64 of an encoded BlockHeader) hashes to inclusion.block_hash and
    is for inclusion.height >= 1, this chain_id and epoch (height-1)//epoch_length; the
    Merkle proof (leaf_index, leaf_count, siblings bottom-up; leaf = BLAKE3(0x00 || id),
    node = BLAKE3(0x01 || left || right), an odd node promoted unchanged) leads to the
    header's evidence_root;
  * inclusion.commit: checked as a wq_proof commit for (inclusion.height,
    inclusion.block_hash), weights from inclusion.telemetry. Limitation: this verifier
    takes weights from telemetry only, so an evidence.json without inclusion.telemetry
    (which bizra accepts at epoch 0, recomputing the weights from genesis) is refused
    here as malformed (exit 2).
"""

import base64
import binascii
import json
import struct
import sys

# --------------------------------------------------------------------------
# BLAKE3 (hash mode), after the reference implementation's structure
# --------------------------------------------------------------------------

_IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
_PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
_CHUNK_START, _CHUNK_END, _PARENT, _ROOT = 1, 2, 4, 8
_M32 = 0xFFFFFFFF


def _g(s, a, b, c, d, x, y):
    s[a] = (s[a] + s[b] + x) & _M32
    v = s[d] ^ s[a]
    s[d] = ((v >> 16) | (v << 16)) & _M32
    s[c] = (s[c] + s[d]) & _M32
    v = s[b] ^ s[c]
    s[b] = ((v >> 12) | (v << 20)) & _M32
    s[a] = (s[a] + s[b] + y) & _M32
    v = s[d] ^ s[a]
    s[d] = ((v >> 8) | (v << 24)) & _M32
    s[c] = (s[c] + s[d]) & _M32
    v = s[b] ^ s[c]
    s[b] = ((v >> 7) | (v << 25)) & _M32


def _compress(cv, words, counter, block_len, flags):
    s = list(cv) + _IV[:4] + [counter & _M32, (counter >> 32) & _M32, block_len, flags]
    m = list(words)
    for r in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1])
        _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5])
        _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9])
        _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13])
        _g(s, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[i] for i in _PERM]
    for i in range(8):
        s[i] ^= s[i + 8]
        s[i + 8] ^= cv[i]
    return s


def _words(block):
    block = block + b"\x00" * (64 - len(block))
    return list(struct.unpack("<16I", block))


def _chunk_output(chunk, counter):
    """(cv, last block words, block_len, flags) of a chunk, before its last compression."""
    cv = list(_IV)
    blocks = [chunk[i : i + 64] for i in range(0, len(chunk), 64)] or [b""]
    for i, b in enumerate(blocks):
        flags = _CHUNK_START if i == 0 else 0
        if i == len(blocks) - 1:
            return cv, _words(b), len(b), flags | _CHUNK_END, counter
        cv = _compress(cv, _words(b), counter, 64, flags)[:8]
    raise AssertionError("unreachable")


def _parent_words(left, right):
    return list(left) + list(right)


def blake3(data: bytes) -> bytes:
    chunks = [data[i : i + 1024] for i in range(0, len(data), 1024)] or [b""]
    stack = []  # chaining values of complete subtrees
    for n, chunk in enumerate(chunks):
        out = _chunk_output(chunk, n)
        if n == len(chunks) - 1:
            # Fold the stack into the final output, right to left.
            cv, words, blen, flags, counter = out
            while stack:
                child = _compress(cv, words, counter, blen, flags)[:8]
                cv, words, blen, flags, counter = list(_IV), _parent_words(stack.pop(), child), 64, _PARENT, 0
            s = _compress(cv, words, counter, blen, flags | _ROOT)
            return struct.pack("<8I", *s[:8])
        cv, words, blen, flags, counter = out
        new_cv = _compress(cv, words, counter, blen, flags)[:8]
        total = n + 1
        while total & 1 == 0:
            new_cv = _compress(list(_IV), _parent_words(stack.pop(), new_cv), 0, 64, _PARENT)[:8]
            total >>= 1
        stack.append(new_cv)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# Ed25519: `cryptography`, plus the strict rule's extra refusals
# --------------------------------------------------------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _decompress(b):
    """Edwards point (x, y) from 32 bytes, or None if not on the curve."""
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y = (y & ((1 << 255) - 1)) % _P
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        x = (x * _SQRT_M1) % _P
        if (v * x * x - u) % _P != 0:
            return None
    if x & 1 != sign:
        x = (-x) % _P
    return (x, y)


def _add(p, q):
    (x1, y1), (x2, y2) = p, q
    t = (_D * x1 * x2 * y1 * y2) % _P
    x3 = ((x1 * y2 + x2 * y1) * pow(1 + t, _P - 2, _P)) % _P
    y3 = ((y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P)) % _P
    return (x3, y3)


def _small_order(b):
    p = _decompress(b)
    if p is None:
        return True  # not a point at all: refuse as well
    for _ in range(3):
        p = _add(p, p)
    return p == (0, 1)


def ed25519_verify_strict(pub: bytes, msg: bytes, sig: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if len(pub) != 32 or len(sig) != 64:
        return False
    if int.from_bytes(sig[32:], "little") >= _L:
        return False
    if _small_order(pub) or _small_order(sig[:32]):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


# --------------------------------------------------------------------------
# Protobuf wire format (proto3), by hand
# --------------------------------------------------------------------------


class DecodeError(Exception):
    pass


def _read_varint(buf, i):
    result = 0
    for k in range(10):
        if i >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[i]
        i += 1
        if k == 9 and b > 1:
            raise DecodeError("varint overflows 64 bits")
        result |= (b & 0x7F) << (7 * k)
        if b < 0x80:
            return result, i
    raise DecodeError("varint too long")


def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# Field kinds: "string", "bytes", "uint64", "uint32", "enum".
VOTE = {1: ("chain_id", "string"), 2: ("height", "uint64"), 3: ("round", "uint32"), 4: ("kind", "enum"),
        5: ("block_hash", "bytes"), 6: ("validator", "string")}
HEAD_REPORT = {1: ("chain_id", "string"), 2: ("genesis_hash", "bytes"), 3: ("height", "uint64"),
               4: ("block_hash", "bytes"), 5: ("validator", "string"), 6: ("time_ms", "uint64")}
BLOCK_HEADER = {1: ("chain_id", "string"), 2: ("height", "uint64"), 3: ("parent_hash", "bytes"),
                4: ("proposer", "string"), 5: ("time_ms", "uint64"), 6: ("payload_root", "bytes"),
                7: ("last_commit_hash", "bytes"), 8: ("epoch", "uint64"), 9: ("evidence_root", "bytes")}
_DEFAULTS = {"string": "", "bytes": b"", "uint64": 0, "uint32": 0, "enum": 0}


def pb_decode(buf: bytes, schema: dict) -> dict:
    """Decodes a message of scalar fields; unknown fields and wrong wire types are errors."""
    msg = {name: _DEFAULTS[kind] for name, kind in schema.values()}
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if num not in schema:
            raise DecodeError("unknown field %d" % num)
        name, kind = schema[num]
        if kind in ("string", "bytes"):
            if wt != 2:
                raise DecodeError("field %s: wire type %d, expected 2" % (name, wt))
            n, i = _read_varint(buf, i)
            if i + n > len(buf):
                raise DecodeError("field %s: truncated" % name)
            raw = bytes(buf[i : i + n])
            i += n
            if kind == "string":
                try:
                    raw = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise DecodeError("field %s: invalid UTF-8" % name)
            msg[name] = raw
        else:
            if wt != 0:
                raise DecodeError("field %s: wire type %d, expected 0" % (name, wt))
            v, i = _read_varint(buf, i)
            if kind == "uint32":
                v &= 0xFFFFFFFF
            elif kind == "enum":
                v &= 0xFFFFFFFF
                if v >= 1 << 31:
                    v -= 1 << 32
            msg[name] = v
    return msg


def pb_encode(msg: dict, schema: dict) -> bytes:
    """Canonical proto3 encoding: ascending field numbers, default values omitted."""
    out = bytearray()
    for num in sorted(schema):
        name, kind = schema[num]
        v = msg[name]
        if v == _DEFAULTS[kind]:
            continue
        if kind in ("string", "bytes"):
            raw = v.encode("utf-8") if kind == "string" else v
            out += _varint(num << 3 | 2) + _varint(len(raw)) + raw
        else:
            out += _varint(num << 3) + _varint(v)
    return bytes(out)


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------

PT_VOTE = "application/vnd.bizra.vote+protobuf"
PT_HEAD = "application/vnd.bizra.head-report+protobuf"
PRECOMMIT = 2


class Invalid(Exception):
    """Exit 1."""


class Malformed(Exception):
    """Exit 2."""


def _need(cond, field, msg):
    if not cond:
        raise Invalid("%s: %s" % (field, msg))


def _b64(s, field):
    if not isinstance(s, str):
        raise Malformed("%s: not a string" % field)
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Invalid("%s: not base64 (%s)" % (field, e))
    if base64.b64encode(raw).decode() != s:
        raise Invalid("%s: not canonical padded base64" % field)
    return raw


def _hex32(s, field):
    if not isinstance(s, str):
        raise Malformed("%s: not a string" % field)
    _need(len(s) == 64 and all(c in "0123456789abcdef" for c in s), field, "%r is not 32 bytes of lower-case hex" % s)
    return bytes.fromhex(s)


def _u128(v, field):
    if isinstance(v, bool):
        raise Malformed("%s: not a weight" % field)
    if isinstance(v, int):
        n = v
    elif isinstance(v, str) and v.isascii() and v.isdigit():
        n = int(v)
    else:
        raise Malformed("%s: %r is not a decimal weight" % (field, v))
    if n < 0 or n >= 1 << 128:
        raise Malformed("%s: %r is out of u128 range" % (field, v))
    return n


def _get(obj, key, typ, field):
    if not isinstance(obj, dict) or key not in obj:
        raise Malformed("%s: missing" % field)
    v = obj[key]
    if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise Malformed("%s: not an integer" % field)
    if typ is not int and not isinstance(v, typ):
        raise Malformed("%s: not a %s" % (field, typ.__name__))
    return v


def check_envelope(env, field, ptype, keys, expected=None):
    """Returns (keyid, payload) of a one-signature DSSE envelope."""
    _need(isinstance(env, dict), field, "not an object")
    pt = _get(env, "payloadType", str, field + ".payloadType")
    _need(pt == ptype, field + ".payloadType", "%r, expected %r" % (pt, ptype))
    sigs = _get(env, "signatures", list, field + ".signatures")
    _need(len(sigs) == 1, field + ".signatures", "%d signatures, expected exactly one" % len(sigs))
    keyid = _get(sigs[0], "keyid", str, field + ".signatures[0].keyid")
    _need(keyid in keys, field + ".signatures[0].keyid", "%s is not a genesis validator" % keyid)
    if expected is not None:
        _need(keyid == expected, field + ".signatures[0].keyid", "%s is not the expected signer %s" % (keyid, expected))
    payload = _b64(_get(env, "payload", str, field + ".payload"), field + ".payload")
    sig = _b64(_get(sigs[0], "sig", str, field + ".signatures[0].sig"), field + ".signatures[0].sig")
    _need(ed25519_verify_strict(keys[keyid], pae(ptype, payload), sig), field + ".signatures[0].sig",
          "signature does not verify")
    return keyid, payload


def decode_canonical(payload, schema, field):
    try:
        m = pb_decode(payload, schema)
    except DecodeError as e:
        raise Invalid("%s: payload does not decode: %s" % (field, e))
    _need(pb_encode(m, schema) == payload, field, "payload is not canonically encoded")
    return m


def isqrt(n):
    import math
    return math.isqrt(n)


def load_genesis(raw):
    try:
        g = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Malformed("genesis: not JSON: %s" % e)
    chain_id = _get(g, "chain_id", str, "genesis.chain_id")
    params = g.get("params", {})
    if not isinstance(params, dict):
        raise Malformed("genesis.params: not an object")
    fast = params.get("fast_threshold_bps", 6667)
    econ = params.get("economic_threshold_bps", 8000)
    if not isinstance(fast, int) or not 6667 <= fast <= 10000:
        raise Malformed("genesis: unsafe fast_threshold_bps %r" % fast)
    if not isinstance(econ, int) or not fast <= econ <= 10000:
        raise Malformed("genesis: bad economic_threshold_bps %r" % econ)
    keys, stakes = {}, {}
    for i, v in enumerate(_get(g, "validators", list, "genesis.validators")):
        vid = _get(v, "id", str, "genesis.validators[%d].id" % i)
        if len(vid) != 64 or any(c not in "0123456789abcdef" for c in vid):
            raise Malformed("genesis.validators[%d].id: not a lower-case hex public key" % i)
        if vid in keys:
            raise Malformed("genesis: duplicate validator %s" % vid)
        keys[vid] = bytes.fromhex(vid)
        stakes[vid] = _get(v, "stake", int, "genesis.validators[%d].stake" % i)
    if not keys:
        raise Malformed("genesis: no validators")
    formula = None
    if all(isinstance(params.get(k), int) for k in ("base", "poi_gain", "rep_gain", "stake_gain")):
        formula = tuple(params[k] for k in ("base", "poi_gain", "rep_gain", "stake_gain"))
    if formula is not None and isinstance(params.get("poi_cap"), int):
        check_weight_bounds(formula, params["poi_cap"], params.get("coalition_bound_bps", 2500), stakes)
    epoch_length = params.get("epoch_length", 100)
    if not isinstance(epoch_length, int) or epoch_length < 1:
        raise Malformed("genesis: bad epoch_length %r" % (epoch_length,))
    ev = params.get("evidence", {})
    if not isinstance(ev, dict):
        raise Malformed("genesis.params.evidence: not an object")
    max_age = (ev.get("max_age_blocks", 1000), ev.get("max_age_epochs", 2))
    if not all(isinstance(x, int) and x >= 0 for x in max_age):
        raise Malformed("genesis.params.evidence: bad max_age_blocks/max_age_epochs %r" % (max_age,))
    return {"chain_id": chain_id, "hash": blake3(raw), "fast": fast, "economic": econ, "keys": keys,
            "stakes": stakes, "formula": formula, "epoch_length": epoch_length, "max_age": max_age}


def check_weight_bounds(formula, poi_cap, bound, stakes):
    """The genesis weight refusals of ADR 0003 (amendment for issue 14): a coalition
    bound X = coalition_bound_bps in 1..=3333 with X*(3*base + 2*M) <= 10000*base, where
    M = poi_gain*poi_cap + rep_gain*10000, and 10000 * the worst-case total weight
    (sum of base + M + stake_gain*isqrt(stake)) below 2**128."""
    base, pg, rg, sg = formula
    if not isinstance(bound, int) or not 1 <= bound <= 3333:
        raise Malformed("genesis: coalition_bound_bps %r is not in 1..=3333" % (bound,))
    m = pg * poi_cap + rg * 10000
    if bound * (3 * base + 2 * m) > 10000 * base:
        raise Malformed("genesis: coalition_bound_bps = %d needs poi_gain*poi_cap + rep_gain*10000 <= %d; got %d"
                        % (bound, base * (10000 - 3 * bound) // (2 * bound), m))
    total = sum(base + m + sg * isqrt(s) for s in stakes.values())
    if total * 10000 >= 1 << 128:
        raise Malformed("genesis: 10000 * the worst-case total weight does not fit in u128")


def label(height):
    return "B%d" % height


def telemetry_weights(g, tel, field):
    """Weights from a telemetry object: one per genesis validator and no one else, each
    stake the genesis stake, each weight the wq_weight formula when genesis gives it."""
    keys = g["keys"]
    ww = _get(tel, "wq_weight", dict, field + ".wq_weight")
    comps = _get(tel, "components", dict, field + ".components")
    for name, m in (("wq_weight", ww), ("components", comps)):
        for vid in keys:
            _need(vid in m, field + "." + name, "genesis validator %s is missing" % vid)
        for vid in m:
            _need(vid in keys, field + "." + name, "%s is not a genesis validator" % vid)
    weights = {vid: _u128(ww[vid], "%s.wq_weight[%s]" % (field, vid)) for vid in keys}
    # Jailed validators (committed equivocation evidence) weigh 0; the key is
    # optional (id -> first epoch free again).
    jailed = tel.get("jailed", {})
    _need(isinstance(jailed, dict), field + ".jailed", "must be an object")
    for vid, until in jailed.items():
        _need(vid in keys, "%s.jailed" % field, "%s is not a genesis validator" % vid)
        _need(isinstance(until, int) and not isinstance(until, bool), "%s.jailed[%s]" % (field, vid), "must be an integer epoch")
        _need(weights[vid] == 0, "%s.wq_weight[%s]" % (field, vid), "%d, but a jailed validator weighs 0" % weights[vid])
    for vid in keys:
        f = "%s.components[%s]" % (field, vid)
        c = {k: _get(comps[vid], k, int, "%s.%s" % (f, k)) for k in ("stake", "poi", "rep")}
        _need(c["stake"] == g["stakes"][vid], f, "stake %d differs from genesis stake %d" % (c["stake"], g["stakes"][vid]))
        if g["formula"] is not None and vid not in jailed:
            base, pg, rg, sg = g["formula"]
            w = base + pg * c["poi"] + rg * c["rep"] + sg * isqrt(c["stake"])
            _need(weights[vid] == w, "%s.wq_weight[%s]" % (field, vid),
                  "%d does not match the wq_weight formula (%d)" % (weights[vid], w))
    return weights


def check_commit(g, c, field, chain_id, height, block_hash, weights):
    """A commit for (height, block_hash) reaching the fast quorum; returns (signers, share_bps)."""
    keys = g["keys"]
    sigs = _get(c, "signatures", list, field + ".signatures")
    _need(len(sigs) > 0, field + ".signatures", "no precommits")
    signers, rnd, signed = set(), None, 0
    for i, env in enumerate(sigs):
        f = "%s.signatures[%d]" % (field, i)
        keyid, payload = check_envelope(env, f, PT_VOTE, keys)
        pf = f + ".payload"
        v = decode_canonical(payload, VOTE, pf)
        _need(v["kind"] == PRECOMMIT, pf, "vote kind %d is not PRECOMMIT" % v["kind"])
        _need(v["chain_id"] == chain_id, pf, "chain_id %r" % v["chain_id"])
        _need(v["height"] == height, pf, "height %d, expected %d" % (v["height"], height))
        _need(v["block_hash"] == block_hash, pf, "precommit is for block %r, not %s" % (v["block_hash"].hex(), block_hash.hex()))
        _need(v["validator"] == keyid, pf, "validator %s is not the signer %s" % (v["validator"], keyid))
        if rnd is None:
            rnd = v["round"]
        _need(v["round"] == rnd, pf, "round %d differs from round %d" % (v["round"], rnd))
        _need(keyid not in signers, f, "validator %s signed twice" % keyid)
        signers.add(keyid)
        signed += weights[keyid]
    listed = _get(c, "signers", list, field + ".signers")
    _need(len(set(listed)) == len(listed) and set(listed) == signers, field + ".signers", "does not match the signatures")
    total = sum(weights.values())
    share = min(signed * 10000 // total, 10000) if total else 0
    _need(_u128(c.get("signed_weight"), field + ".signed_weight") == signed, field + ".signed_weight",
          "%s, recomputed %d" % (c.get("signed_weight"), signed))
    _need(_u128(c.get("total_weight"), field + ".total_weight") == total, field + ".total_weight",
          "%s, recomputed %d" % (c.get("total_weight"), total))
    _need(_get(c, "share_bps", int, field + ".share_bps") == share, field + ".share_bps",
          "%d, recomputed %d" % (c["share_bps"], share))
    _need(signed * 10000 >= total * g["fast"], field,
          "signed weight %d of %d is below the fast quorum of %d bps" % (signed, total, g["fast"]))
    _need(_get(c, "fast_final", bool, field + ".fast_final") is True, field + ".fast_final", "not true")
    if _get(c, "economic_final", bool, field + ".economic_final"):
        _need(signed * 10000 >= total * g["economic"], field + ".economic_final", "true, but not backed by the precommits")
    return signers, share


def verify(proof_raw, genesis_raw):
    """Dispatches on the document's \"version\"."""
    g = load_genesis(genesis_raw)
    try:
        p = json.loads(proof_raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Malformed("not JSON: %s" % e)
    version = p.get("version") if isinstance(p, dict) else None
    if version == "wq-proof/1":
        return verify_wq_proof(g, p)
    if version == "evidence/1":
        return verify_evidence(g, p)
    raise Malformed("version %r is neither \"wq-proof/1\" nor \"evidence/1\"" % (version,))


def verify_wq_proof(g, p):
    chain_id = _get(p, "chain_id", str, "chain_id")
    _need(chain_id == g["chain_id"], "chain_id", "proof is for %r, genesis is %r" % (chain_id, g["chain_id"]))
    gh = _hex32(_get(p, "genesis_hash", str, "genesis_hash"), "genesis_hash")
    _need(gh == g["hash"], "genesis_hash", "%s, but the genesis file hashes to %s" % (gh.hex(), g["hash"].hex()))
    height = _get(p, "height", int, "height")
    _need(1 <= height < 1 << 64, "height", "%d is not a finalized block height" % height)
    _need(_get(p, "deterministic_head", str, "deterministic_head") == label(height), "deterministic_head",
          "expected %r" % label(height))
    block_hash = _hex32(_get(p, "block_hash", str, "block_hash"), "block_hash")
    keys = g["keys"]

    validators = _get(p, "validators", list, "validators")
    _need(len(validators) > 0, "validators", "empty")
    seen, hashes = set(), []
    for i, v in enumerate(validators):
        f = "validators[%d]" % i
        vid = _get(v, "id", str, f + ".id")
        _need(vid in keys, f + ".id", "%s is not a genesis validator" % vid)
        _need(vid not in seen, f + ".id", "%s appears twice" % vid)
        seen.add(vid)
        _need(_get(v, "head", str, f + ".head") == label(height), f + ".head", "expected %r" % label(height))
        h = _hex32(_get(v, "block_hash", str, f + ".block_hash"), f + ".block_hash")
        _, payload = check_envelope(_get(v, "envelope", dict, f + ".envelope"), f + ".envelope", PT_HEAD, keys, vid)
        pf = f + ".envelope.payload"
        r = decode_canonical(payload, HEAD_REPORT, pf)
        _need(r["chain_id"] == chain_id, pf, "chain_id %r" % r["chain_id"])
        _need(r["genesis_hash"] == g["hash"], pf, "genesis_hash %s" % r["genesis_hash"].hex())
        _need(r["height"] == height, pf, "height %d, expected %d" % (r["height"], height))
        _need(r["block_hash"] == h, pf, "block_hash %s, but %s.block_hash is %s" % (r["block_hash"].hex(), f, h.hex()))
        _need(r["validator"] == vid, pf, "validator %s, expected %s" % (r["validator"], vid))
        _need(h == block_hash, f + ".block_hash", "%s differs from block_hash %s (heads disagree)" % (h.hex(), block_hash.hex()))
        hashes.append(h)
    same = all(h == hashes[0] for h in hashes)
    want = "/".join(label(height) if same else "%s:%s" % (label(height), h[:4].hex()) for h in hashes)
    _need(_get(p, "agreement", str, "agreement") == want, "agreement", "%r, the head reports give %r" % (p["agreement"], want))
    _need(_get(p, "wq_head_agreement", bool, "wq_head_agreement") is True, "wq_head_agreement", "not true")

    weights = telemetry_weights(g, _get(p, "telemetry", dict, "telemetry"), "telemetry")
    signers, share = check_commit(g, _get(p, "commit", dict, "commit"), "commit", chain_id, height, block_hash, weights)
    return "valid: %s at height %d (%d head reports, %d precommits, %d.%02d%% weight)" % (
        want, height, len(validators), len(signers), share // 100, share % 100)


# --------------------------------------------------------------------------
# evidence.json
# --------------------------------------------------------------------------

PREVOTE = 1
MAX_EVIDENCE_BYTES = 2048


def _field(num, raw):
    return _varint(num << 3 | 2) + _varint(len(raw)) + raw


def merkle_verify(root, leaf, index, count, siblings):
    """bizra's Merkle tree: node = BLAKE3(0x01 || left || right); an odd last node is
    promoted unchanged; siblings bottom-up, absent where a level has no sibling."""
    if index >= count:
        return False
    acc, i, n, k = leaf, index, count, 0
    while n > 1:
        if i ^ 1 < n:
            if k >= len(siblings):
                return False
            s = siblings[k]
            k += 1
            acc = blake3(b"\x01" + acc + s) if i % 2 == 0 else blake3(b"\x01" + s + acc)
        i //= 2
        n = (n + 1) // 2
    return k == len(siblings) and acc == root


def epoch(height, length):
    return (height - 1) // length if height > 0 else 0


def verify_evidence(g, d):
    keys = g["keys"]
    chain_id = g["chain_id"]
    kind = _get(d, "kind", str, "kind")
    _need(kind == "duplicate-vote", "kind", "%r, expected \"duplicate-vote\"" % kind)
    validator = _get(d, "validator", str, "validator")
    _need(validator in keys, "validator", "%s is not a genesis validator" % validator)
    votes = _get(d, "votes", list, "votes")
    _need(len(votes) == 2, "votes", "%d votes, expected 2" % len(votes))
    signed = []
    for i, env in enumerate(votes):
        f = "votes[%d]" % i
        _, payload = check_envelope(env, f, PT_VOTE, keys, validator)
        pf = f + ".payload"
        v = decode_canonical(payload, VOTE, pf)
        _need(v["chain_id"] == chain_id, pf, "chain_id %r, expected %r" % (v["chain_id"], chain_id))
        _need(v["validator"] == validator, pf, "validator %s is not %s" % (v["validator"], validator))
        _need(v["kind"] in (PREVOTE, PRECOMMIT), pf, "vote kind %d is not PREVOTE or PRECOMMIT" % v["kind"])
        _need(v["height"] >= 1, pf, "height 0")
        _need(len(v["block_hash"]) in (0, 32), pf, "block_hash of %d bytes" % len(v["block_hash"]))
        signed.append((v, payload, base64.b64decode(env["signatures"][0]["sig"])))
    a, b = signed[0][0], signed[1][0]
    for name in ("height", "round", "kind"):
        _need(a[name] == b[name], "votes[1].payload", "%s differs from votes[0]'s" % name)
    _need(a["block_hash"] != b["block_hash"], "votes", "both votes are for block %r: no conflict" % a["block_hash"].hex())
    for _, _, sig in signed:
        _need(len(sig) == 64, "votes", "a signature of %d bytes" % len(sig))
    first, second = sorted(signed, key=lambda s: s[0]["block_hash"])
    dup = b"".join(_field(n, _field(1, payload) + _field(2, sig)) for n, (_, payload, sig) in ((1, first), (2, second)))
    encoded = _field(1, dup)
    _need(len(encoded) <= MAX_EVIDENCE_BYTES, "votes", "evidence of %d bytes" % len(encoded))
    ev_id = blake3(encoded)
    if "id" in d:
        given = _get(d, "id", str, "id")
        _need(given == ev_id.hex(), "id", "%s, but the evidence hashes to %s" % (given, ev_id.hex()))

    inc = _get(d, "inclusion", dict, "inclusion")
    height = _get(inc, "height", int, "inclusion.height")
    _need(1 <= height < 1 << 64, "inclusion.height", "%d is not a block height" % height)
    h = a["height"]
    max_blocks, max_epochs = g["max_age"]
    length = g["epoch_length"]
    _need(h <= height and height - h <= max_blocks and epoch(height, length) - epoch(h, length) <= max_epochs,
          "inclusion.height", "evidence from height %d cannot be included at height %d" % (h, height))
    block_hash = _hex32(_get(inc, "block_hash", str, "inclusion.block_hash"), "inclusion.block_hash")
    header_raw = _b64(_get(inc, "header", str, "inclusion.header"), "inclusion.header")
    _need(blake3(header_raw) == block_hash, "inclusion.header",
          "hashes to %s, not inclusion.block_hash %s" % (blake3(header_raw).hex(), block_hash.hex()))
    try:
        header = pb_decode(header_raw, BLOCK_HEADER)
    except DecodeError as e:
        raise Invalid("inclusion.header: does not decode as a BlockHeader: %s" % e)
    _need(header["chain_id"] == chain_id, "inclusion.header", "chain_id %r" % header["chain_id"])
    _need(header["height"] == height, "inclusion.height", "%d, but the header is for height %d" % (height, header["height"]))
    _need(header["epoch"] == epoch(height, length), "inclusion.header", "epoch %d, expected %d" % (header["epoch"], epoch(height, length)))
    root = header["evidence_root"]
    _need(len(root) == 32, "inclusion.header", "evidence_root is not 32 bytes")
    proof = _get(inc, "proof", dict, "inclusion.proof")
    index = _get(proof, "leaf_index", int, "inclusion.proof.leaf_index")
    count = _get(proof, "leaf_count", int, "inclusion.proof.leaf_count")
    siblings = [_hex32(x, "inclusion.proof.siblings[%d]" % i)
                for i, x in enumerate(_get(proof, "siblings", list, "inclusion.proof.siblings"))]
    leaf = blake3(b"\x00" + ev_id)
    _need(merkle_verify(root, leaf, index, count, siblings), "inclusion.proof",
          "leaf %d of %d does not lead to the header's evidence_root %s" % (index, count, root.hex()))
    weights = telemetry_weights(g, _get(inc, "telemetry", dict, "inclusion.telemetry"), "inclusion.telemetry")
    _, share = check_commit(g, _get(inc, "commit", dict, "inclusion.commit"), "inclusion.commit", chain_id, height,
                            block_hash, weights)
    return "valid: duplicate-vote evidence %s against %s (height %d round %d), committed at height %d (%d.%02d%% weight)" % (
        ev_id.hex(), validator, h, a["round"], height, share // 100, share % 100)


def main(argv):
    if len(argv) == 3 and argv[1] == "--blake3":
        with open(argv[2], "rb") as fh:
            print(blake3(fh.read()).hex())
        return 0
    try:
        import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
    except ImportError:
        print("error: this verifier needs the Python `cryptography` package (pip install cryptography)",
              file=sys.stderr)
        return 2
    if len(argv) != 4 or argv[2] != "--genesis":
        print("usage: verify_wq_proof.py WQ_PROOF|EVIDENCE --genesis GENESIS", file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as fh:
            proof_raw = fh.read()
        with open(argv[3], "rb") as fh:
            genesis_raw = fh.read()
    except OSError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    try:
        print(verify(proof_raw, genesis_raw))
        return 0
    except Invalid as e:
        print("invalid: %s" % e, file=sys.stderr)
        return 1
    except Malformed as e:
        print("error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Independent verifier of bizra's wq_proof.json, written from CONTRACT.md only.

    python3 verify_wq_proof.py wq_proof.json --genesis genesis.json

Exit 0: valid.  Exit 1: invalid (the reason names the failing field).
Exit 2: unreadable or malformed input.

It shares no code with bizra: a hand-written protobuf wire-format decoder and
encoder, DSSE PAE, a pure-Python BLAKE3 (genesis_hash = BLAKE3 of the genesis
file's exact bytes) and Ed25519 from the `cryptography` package, hardened to
the strict rule bizra uses (reject s >= L and small-order keys or R).

What it checks (CONTRACT sections 3, 4 and 6):
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
    return {"chain_id": chain_id, "hash": blake3(raw), "fast": fast, "economic": econ, "keys": keys,
            "stakes": stakes, "formula": formula}


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


def verify(proof_raw, genesis_raw):
    g = load_genesis(genesis_raw)
    try:
        p = json.loads(proof_raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Malformed("not JSON: %s" % e)
    if not isinstance(p, dict) or p.get("version") != "wq-proof/1":
        raise Malformed("version is not \"wq-proof/1\"")
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

    # Weights.
    tel = _get(p, "telemetry", dict, "telemetry")
    ww = _get(tel, "wq_weight", dict, "telemetry.wq_weight")
    comps = _get(tel, "components", dict, "telemetry.components")
    for name, m in (("wq_weight", ww), ("components", comps)):
        for vid in keys:
            _need(vid in m, "telemetry." + name, "genesis validator %s is missing" % vid)
        for vid in m:
            _need(vid in keys, "telemetry." + name, "%s is not a genesis validator" % vid)
    weights = {vid: _u128(ww[vid], "telemetry.wq_weight[%s]" % vid) for vid in keys}
    for vid in keys:
        f = "telemetry.components[%s]" % vid
        c = {k: _get(comps[vid], k, int, "%s.%s" % (f, k)) for k in ("stake", "poi", "rep")}
        _need(c["stake"] == g["stakes"][vid], f, "stake %d differs from genesis stake %d" % (c["stake"], g["stakes"][vid]))
        if g["formula"] is not None:
            base, pg, rg, sg = g["formula"]
            w = base + pg * c["poi"] + rg * c["rep"] + sg * isqrt(c["stake"])
            _need(weights[vid] == w, "telemetry.wq_weight[%s]" % vid,
                  "%d does not match the wq_weight formula (%d)" % (weights[vid], w))

    # Commit.
    c = _get(p, "commit", dict, "commit")
    sigs = _get(c, "signatures", list, "commit.signatures")
    _need(len(sigs) > 0, "commit.signatures", "no precommits")
    signers, rnd, signed = set(), None, 0
    for i, env in enumerate(sigs):
        f = "commit.signatures[%d]" % i
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
    listed = _get(c, "signers", list, "commit.signers")
    _need(len(set(listed)) == len(listed) and set(listed) == signers, "commit.signers", "does not match the signatures")
    total = sum(weights.values())
    share = min(signed * 10000 // total, 10000) if total else 0
    _need(_u128(c.get("signed_weight"), "commit.signed_weight") == signed, "commit.signed_weight",
          "%s, recomputed %d" % (c.get("signed_weight"), signed))
    _need(_u128(c.get("total_weight"), "commit.total_weight") == total, "commit.total_weight",
          "%s, recomputed %d" % (c.get("total_weight"), total))
    _need(_get(c, "share_bps", int, "commit.share_bps") == share, "commit.share_bps",
          "%d, recomputed %d" % (c["share_bps"], share))
    _need(signed * 10000 >= total * g["fast"], "commit",
          "signed weight %d of %d is below the fast quorum of %d bps" % (signed, total, g["fast"]))
    _need(_get(c, "fast_final", bool, "commit.fast_final") is True, "commit.fast_final", "not true")
    if _get(c, "economic_final", bool, "commit.economic_final"):
        _need(signed * 10000 >= total * g["economic"], "commit.economic_final", "true, but not backed by the precommits")
    return "valid: %s at height %d (%d head reports, %d precommits, %d.%02d%% weight)" % (
        want, height, len(validators), len(signers), share // 100, share % 100)


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
        print("usage: verify_wq_proof.py WQ_PROOF --genesis GENESIS", file=sys.stderr)
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

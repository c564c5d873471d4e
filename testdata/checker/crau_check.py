#!/usr/bin/env python3
"""Independent checker of update_engine's rules for CrAU v1 payloads.

Shares no code with augen: its own protobuf wire decoder, Python's bz2 and
hashlib, `openssl pkeyutl` for the RSA signature and Debian's `bspatch` for
BSDIFF blobs. It applies the payload in place (onto a copy of --old for a
delta) and checks the results against the manifest and, if given, the
expected files.

usage: crau_check.py PAYLOAD --pubkey PUB.pem [--old OLD] [--old-kernel K0]
                     [--image NEW] [--kernel K1]
Prints "OK" and exits 0, or prints the first violation and exits 1.
"""
import argparse, bz2, hashlib, os, struct, subprocess, sys, tempfile

BS = 4096
HOLE = (1 << 64) - 1


class Bad(Exception):
    pass


def varint(b, i):
    v = s = 0
    while True:
        if i >= len(b):
            raise Bad("truncated varint")
        c = b[i]; i += 1
        v |= (c & 0x7F) << s; s += 7
        if not c & 0x80:
            return v, i


def fields(b):
    """Yields (field number, wire type, value) of one message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            if i + n > len(b):
                raise Bad("truncated length-delimited field %d" % num)
            v = b[i:i + n]; i += n
        else:
            raise Bad("unexpected wire type %d (field %d)" % (wt, num))
        yield num, wt, v


def decode(b, schema):
    """schema: num -> (name, kind, repeated); kind 'u' int, 'b' bytes, or a sub-schema."""
    out = {}
    for num, wt, v in fields(b):
        if num not in schema:
            raise Bad("unknown field %d" % num)
        name, kind, rep = schema[num]
        if isinstance(kind, dict):
            v = decode(v, kind)
        if rep:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out


EXTENT = {1: ("start", "u", False), 2: ("num", "u", False)}
INFO = {1: ("size", "u", False), 2: ("hash", "b", False)}
OP = {1: ("type", "u", False), 2: ("off", "u", False), 3: ("len", "u", False),
      4: ("src", EXTENT, True), 5: ("src_len", "u", False), 6: ("dst", EXTENT, True),
      7: ("dst_len", "u", False), 8: ("sha", "b", False)}
PROC = {1: ("type", "u", False), 2: ("ops", OP, True), 3: ("old", INFO, False), 4: ("new", INFO, False)}
MANIFEST = {1: ("ops", OP, True), 2: ("noops", OP, True), 3: ("bs", "u", False),
            4: ("sig_off", "u", False), 5: ("sig_size", "u", False),
            8: ("old", INFO, False), 9: ("new", INFO, False), 10: ("procs", PROC, True)}
SIG = {1: ("sigs", {1: ("version", "u", False), 2: ("data", "b", False)}, True)}


def sha(b):
    return hashlib.sha256(b).digest()


def read_extents(f, exts, length):
    out = bytearray()
    for e in exts:
        if e["start"] == HOLE:
            raise Bad("source extent is a sparse hole")
        f.seek(e["start"] * BS)
        chunk = f.read(e["num"] * BS)
        out += chunk + b"\0" * (e["num"] * BS - len(chunk))
    return bytes(out[:length])


def write_extents(f, exts, data, limit):
    pos = 0
    last_end = None
    for e in exts:
        if pos >= len(data):
            break
        n = min(e["num"] * BS, len(data) - pos)
        if e["start"] != HOLE:
            if limit is not None and e["start"] * BS + n > limit:
                raise Bad("write past the end of the partition")
            f.seek(e["start"] * BS); f.write(data[pos:pos + n])
            last_end = e["start"] * BS + n
        else:
            last_end = None
        pos += n
    if pos < len(data):
        raise Bad("data exceeds the destination extents")
    return last_end


def zero_pad(f, end):
    if end is not None and end % BS:
        f.seek(end); f.write(b"\0" * (BS - end % BS))


def bunzip_one(blob):
    d = bz2.BZ2Decompressor()
    out = d.decompress(blob)
    if not d.eof:
        raise Bad("bzip2 stream does not end")
    if d.unused_data:
        raise Bad("bytes after the end of the bzip2 stream")
    return out


def bspatch(src, patch):
    with tempfile.TemporaryDirectory() as t:
        o, n, p = (os.path.join(t, x) for x in ("old", "new", "patch"))
        open(o, "wb").write(src); open(p, "wb").write(patch)
        subprocess.run(["bspatch", o, n, p], check=True)
        return open(n, "rb").read()


def apply_op(f, op, data, limit):
    t = op["type"]
    if t == 0:
        zero_pad(f, write_extents(f, op["dst"], data, limit))
    elif t == 1:
        zero_pad(f, write_extents(f, op["dst"], bunzip_one(data), limit))
    elif t == 2:
        if data:
            raise Bad("MOVE with data")
        n = sum(e["num"] for e in op["src"]) * BS
        write_extents(f, op["dst"], read_extents(f, op["src"], n), limit)
    elif t == 3:
        src_len = op.get("src_len", sum(e["num"] for e in op.get("src", [])) * BS)
        dst_len = op.get("dst_len", sum(e["num"] for e in op["dst"]) * BS)
        new = bspatch(read_extents(f, op.get("src", []), src_len), data)
        if len(new) != dst_len:
            raise Bad("bspatch produced %d bytes, dst_length %d" % (len(new), dst_len))
        zero_pad(f, write_extents(f, op["dst"], new, limit))
    else:
        raise Bad("unknown operation type %d" % t)


def verify_sig(pub, digest, sig):
    with tempfile.TemporaryDirectory() as t:
        d, s = os.path.join(t, "d"), os.path.join(t, "s")
        open(d, "wb").write(digest); open(s, "wb").write(sig)
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-pkeyopt",
                            "digest:sha256", "-in", d, "-sigfile", s], capture_output=True)
        return r.returncode == 0


def check(a):
    data = open(a.payload, "rb").read()
    if data[:4] != b"CrAU":
        raise Bad("bad magic")
    ver, msize = struct.unpack(">QQ", data[4:20])
    if ver != 1:
        raise Bad("version %d" % ver)
    m = decode(data[20:20 + msize], MANIFEST)
    base = 20 + msize
    if m.get("bs", 4096) != BS:
        raise Bad("block size")
    if "new" not in m:
        raise Bad("no new_partition_info")
    work = tempfile.TemporaryDirectory()
    part_path = os.path.join(work.name, "part")
    with open(part_path, "wb") as p:
        if "old" in m:
            old = open(a.old, "rb").read()[:m["old"]["size"]]
            if sha(old) != m["old"]["hash"]:
                raise Bad("old partition hash")
            p.write(old)
    targets = {None: open(part_path, "r+b")}
    for i, pr in enumerate(m.get("procs", [])):
        if "type" not in pr:
            continue
        if "new" not in pr:
            raise Bad("typed procedure without new_info")
        path = os.path.join(work.name, "proc%d" % i)
        with open(path, "wb") as k:
            if "old" in pr:
                old = open(a.old_kernel, "rb").read()
                if sha(old) != pr["old"]["hash"]:
                    raise Bad("old kernel hash")
                k.write(old)
        targets[i] = open(path, "r+b")
    seq = [(None, op) for op in m.get("ops", [])]
    for i, pr in enumerate(m.get("procs", [])):
        seq += [(i if "type" in pr else "skip", op) for op in pr.get("ops", [])]
    off = 0
    limit = m["new"]["size"]
    for idx, (tgt, op) in enumerate(seq):
        n = op.get("len", 0)
        blob = b""
        if n:
            if op.get("off") != off:
                raise Bad("op %d: data_offset %s, expected %d" % (idx, op.get("off"), off))
            if "sha" not in op:
                raise Bad("op %d: missing data_sha256_hash" % idx)
            blob = data[base + off:base + off + n]
            if len(blob) != n:
                raise Bad("op %d: truncated data" % idx)
            if sha(blob) != op["sha"]:
                raise Bad("op %d: data hash mismatch" % idx)
            off += n
        if tgt != "skip":
            apply_op(targets[tgt], op, blob, limit if tgt is None else None)
    if "sig_off" in m:
        if m["sig_off"] != off:
            raise Bad("signatures_offset %d, data ends at %d" % (m["sig_off"], off))
        if len(data) != base + off + m["sig_size"]:
            raise Bad("file size %d != metadata + data + signatures" % len(data))
        sigs = decode(data[base + off:], SIG).get("sigs", [])
        v2 = [s for s in sigs if s.get("version") == 2]
        if not v2:
            raise Bad("no version 2 signature")
        if not verify_sig(a.pubkey, sha(data[:base + off]), v2[0]["data"]):
            raise Bad("version 2 signature does not verify")
    else:
        if a.pubkey:
            raise Bad("payload is unsigned")
        if len(data) != base + off:
            raise Bad("trailing bytes")
    for t in targets.values():
        t.close()
    part = open(part_path, "rb").read()[:limit]
    if len(part) != limit or sha(part) != m["new"]["hash"]:
        raise Bad("rebuilt partition does not match new_partition_info")
    if a.image and part != open(a.image, "rb").read():
        raise Bad("rebuilt partition differs from --image")
    for i, pr in enumerate(m.get("procs", [])):
        if "type" not in pr:
            continue
        k = open(os.path.join(work.name, "proc%d" % i), "rb").read()[:pr["new"]["size"]]
        if len(k) != pr["new"]["size"] or sha(k) != pr["new"]["hash"]:
            raise Bad("rebuilt procedure %d does not match its new_info" % i)
        if pr["type"] == 0 and a.kernel and k != open(a.kernel, "rb").read():
            raise Bad("rebuilt kernel differs from --kernel")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("payload")
    ap.add_argument("--pubkey")
    ap.add_argument("--old"); ap.add_argument("--old-kernel")
    ap.add_argument("--image"); ap.add_argument("--kernel")
    a = ap.parse_args()
    try:
        check(a)
    except (Bad, KeyError, OSError, subprocess.CalledProcessError) as e:
        print("INVALID: %s" % e)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""iris_isa_report.py — what Intel's compiler makes of xelm's kernels for an Iris Xe (Gen12LP).

Builds every kernel program with ocloc exactly as the host would for the recorded Iris Xe
(tests/data/devices/iris_xe_gen12lp.json): the test binary writes the program sources (common.cl
prepended) and the option strings (IrisFixture.WritesProgramsForTheIsaReport), then for each
program: `ocloc compile`, `ocloc disasm -dump` (one <kernel>_KernelHeap.dat per kernel plus
PTM.txt, the patch-token metadata), and `iga64 -d -p=12p1` on each kernel heap. Per kernel it
lists the SIMD width and GRF mode (from the execution-environment patch token), scratch space
(MEDIA_VFE_STATE patch tokens: register spills) and private memory, the instruction count, and
the send messages by kind as iga prints them:
  block   — oword/hword block reads (one address per thread: contiguous, fastest)
  dword   — untyped surface reads (one dword address per lane, 1 to 4 channels: x / xy / xyzw)
  byte    — byte gathering reads (a byte address per lane, 8/16/32 bits: unaligned data)
  slm     — shared local memory messages (binding table index 254)
  scratch — scratch block reads/writes (register spill/fill)
Python 3 standard library only. Usage (after building build/release):
  python3 tools/iris_isa_report.py [--build-dir build/release] [--device tgllp] [--out bench/isa/tgllp.md]
"""
import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# iga platform names for ocloc targets.
IGA_PLATFORM = {"tgllp": "12p1", "adl-p": "12p1", "adl-s": "12p1", "rkl": "12p1", "dg1": "12p1"}
# Patch tokens (IGC's executable_format/patch_list.h): their numbers and the fields read here.
TOKEN_MEDIA_VFE_STATE = 18
TOKEN_EXECUTION_ENVIRONMENT = 23
TOKEN_ALLOCATE_STATELESS_PRIVATE_MEMORY = 38
TOKEN_MEDIA_VFE_STATE_SLOT1 = 55
TOKEN_ALLOCATE_LOCAL_SURFACE = 15
# SPatchExecutionEnvironment: uint32 fields after the 8-byte header, by index.
EXEC_ENV_FIELDS = {"LargestCompiledSIMDSize": 3, "HasBarriers": 5, "CompiledSIMD8": 7, "CompiledSIMD16": 8,
                   "CompiledSIMD32": 9, "UsesStatelessSpillFill": 13, "NumGRFRequired": 20}


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        sys.exit("iris_isa_report: failed (%d): %s\n%s" % (r.returncode, " ".join(cmd), r.stdout[-4000:]))
    return r.stdout


def package_version(package):
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        return r.stdout.strip() or "unknown version"
    except OSError:
        return "unknown version"


def u32s(hex_words):
    data = bytes(int(b, 16) for b in hex_words.split())
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data) - len(data) % 4, 4)]


def parse_ptm(path):
    """Per kernel name: its patch tokens as {token: [u32 payload, ...]} and the header sizes."""
    kernels = {}
    text = open(path).read()
    for part in text.split("Kernel #")[1:]:
        name = re.search(r"KernelName (\S+)", part).group(1)
        tokens = collections.defaultdict(list)
        for m in re.finditer(r"Token (\d+)\n\s*4 Size (\d+)\n\s*Hex ([0-9a-fA-F ]*)", part):
            tokens[int(m.group(1))].append(u32s(m.group(3)))
        sizes = {k: int(v) for k, v in re.findall(r"4 (KernelHeapSize|KernelUnpaddedSize) (\d+)", part)}
        kernels[name] = (tokens, sizes)
    return kernels


def classify_send(line):
    """(kind, direction) of one send as iga prints it, e.g. '... 0x04210900 {$1} // wr:2+0, rd:2; byte gathering read 32b'."""
    comment = line.split("//", 1)[1] if "//" in line else ""
    what = comment.split(";", 1)[1].strip().lower() if ";" in comment else comment.strip().lower()
    m = re.search(r"\s(0x[0-9a-fA-F]+)\s+\{", line) or re.search(r"\s(0x[0-9a-fA-F]+)\s*(//|$)", line)
    bti = int(m.group(1), 16) & 0xFF if m else -1
    if "scratch" in what:
        return "scratch", "spill"
    if "barrier" in what or "fence" in what or "end of thread" in what:
        return "sync", ""
    direction = "write" if ("write" in what or "scatter" in what or "atomic" in what) else "read"
    if bti == 254 or "slm" in what:
        return "slm", direction
    if "block" in what:
        return "block", direction
    if "byte" in what:
        return "byte", direction
    if "untyped" in what or "dword" in what or "gather" in what:
        return "dword", direction
    return "other:" + what, direction


def analyse_asm(asm):
    instructions = 0
    sends = collections.Counter()
    gather_sizes = collections.Counter()
    for line in asm.splitlines():
        s = line.strip()
        if not s or s.startswith("//") or re.match(r"^L\d+:$", s) or s.endswith(":"):
            continue
        instructions += 1
        op = re.sub(r"^\([^)]*\)\s*", "", s).split()[0] if s else ""
        if op.startswith("send"):
            kind, direction = classify_send(s)
            sends[(kind, direction)] += 1
            m = re.search(r"(byte gathering read \d+b|untyped surface read with \w+)", s)
            if m and kind in ("byte", "dword"):
                gather_sizes[m.group(1).replace("byte gathering read ", "byte ").replace("untyped surface read with ", "dword.")] += 1
    return instructions, sends, gather_sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--device", default="tgllp")
    ap.add_argument("--out", default=None, help="markdown report (default bench/isa/<device>.md)")
    ap.add_argument("--keep", default=None, help="keep sources, binaries and disassembly in this directory")
    args = ap.parse_args()
    out = args.out or os.path.join(ROOT, "bench", "isa", args.device + ".md")
    for tool in ("ocloc", "iga64"):
        if shutil.which(tool) is None:
            sys.exit("iris_isa_report: %s not found (apt-get install intel-opencl-icd libigc-tools)" % tool)
    tests = os.path.join(args.build_dir, "tests", "xelm_tests")
    if not os.access(tests, os.X_OK):
        sys.exit("iris_isa_report: %s not built (cmake --build --preset release)" % tests)
    work = args.keep or tempfile.mkdtemp(prefix="xelm-isa-")
    src = os.path.join(work, "src")
    env = dict(os.environ, XELM_IRIS_DUMP_DIR=src)
    log = run([tests, "--gtest_filter=IrisFixture.WritesProgramsForTheIsaReport"], env=env)
    if "[  PASSED  ] 1 test" not in log:
        sys.exit("iris_isa_report: the test binary did not write the programs:\n" + log[-2000:])
    options = open(os.path.join(src, "options.txt")).read().strip()
    internal = open(os.path.join(src, "internal_options.txt")).read().strip()
    device_name = open(os.path.join(src, "device.txt")).read().strip()
    ocloc_version = package_version("intel-opencl-icd")
    rows = []
    for cl in sorted(glob.glob(os.path.join(src, "*.cl"))):
        program = os.path.basename(cl)[:-3]
        bin_dir, dis_dir = os.path.join(work, "bin", program), os.path.join(work, "dis", program)
        os.makedirs(bin_dir, exist_ok=True)
        os.makedirs(dis_dir, exist_ok=True)  # ocloc disasm creates only the last level
        run(["ocloc", "compile", "-q", "-file", cl, "-device", args.device, "-options", options, "-internal_options",
             internal, "-out_dir", bin_dir, "-output", program])
        binary = [b for b in glob.glob(os.path.join(bin_dir, program + "*.bin"))][0]
        run(["ocloc", "disasm", "-file", binary, "-device", args.device, "-dump", dis_dir])
        if not os.path.exists(os.path.join(dis_dir, "PTM.txt")):
            sys.exit("iris_isa_report: ocloc disasm wrote nothing for %s" % binary)
        ptm = parse_ptm(os.path.join(dis_dir, "PTM.txt"))
        for heap in sorted(glob.glob(os.path.join(dis_dir, "*_KernelHeap.dat"))):
            kernel = os.path.basename(heap)[: -len("_KernelHeap.dat")]
            asm = run(["iga64", "-d", "-p=" + IGA_PLATFORM.get(args.device, "12p1"), heap])
            with open(heap[: -len(".dat")] + ".asm", "w") as f:
                f.write(asm)
            instructions, sends, sizes = analyse_asm(asm)
            tokens, _ = ptm.get(kernel, ({}, {}))
            env_tok = tokens.get(TOKEN_EXECUTION_ENVIRONMENT, [[]])[0]
            field = lambda n: env_tok[EXEC_ENV_FIELDS[n]] if len(env_tok) > EXEC_ENV_FIELDS[n] else None
            simd = field("LargestCompiledSIMDSize")
            grf = field("NumGRFRequired")
            scratch = sum(t[1] for key in (TOKEN_MEDIA_VFE_STATE, TOKEN_MEDIA_VFE_STATE_SLOT1)
                          for t in tokens.get(key, []) if len(t) > 1)
            private = sum(t[3] for t in tokens.get(TOKEN_ALLOCATE_STATELESS_PRIVATE_MEMORY, []) if len(t) > 3)
            slm_bytes = sum(t[1] for t in tokens.get(TOKEN_ALLOCATE_LOCAL_SURFACE, []) if len(t) > 1)
            rows.append({
                "program": program, "kernel": kernel, "simd": simd, "grf": grf, "instructions": instructions,
                "block": sends[("block", "read")], "dword": sends[("dword", "read")], "byte": sends[("byte", "read")],
                "stores": sum(v for (k, d), v in sends.items() if d == "write" and k in ("block", "dword", "byte")),
                "slm": sends[("slm", "read")] + sends[("slm", "write")], "slm_bytes": slm_bytes,
                "scratch": scratch, "spill_msgs": sends[("scratch", "spill")], "private": private,
                "stateless_spill": field("UsesStatelessSpillFill"),
                "other": sum(v for (k, d), v in sends.items() if k.startswith("other")),
                "sizes": ", ".join("%s×%d" % (k, v) for k, v in sorted(sizes.items())),
            })
    lines = [
        "# Iris Xe ISA report: %s" % args.device, "",
        "Generated by `python3 tools/iris_isa_report.py --device %s` (ocloc from intel-opencl-icd %s, iga64 -p=%s) from the sources and"
        " options the host builds for the recorded *%s* (tests/data/devices/iris_xe_gen12lp.json)." % (
            args.device, ocloc_version, IGA_PLATFORM.get(args.device, "12p1"), device_name), "",
        "Options: `%s`" % options, "",
        "Columns: SIMD = compiled SIMD width; GRF = registers per thread (128: normal mode, 256: large GRF);"
        " instrs = instructions in the kernel heap; global loads by message kind: *block* = oword/hword block reads"
        " (one address per thread), *dword* = untyped surface reads (an address per lane, 1–4 dwords each),"
        " *byte* = byte gathering reads (an address per lane, 8/16/32 bits: unaligned data); stores = global writes;"
        " SLM = shared local memory messages (bytes allocated); scratch = per-thread scratch bytes (register"
        " spills) and spill/fill messages; private = stateless private memory per thread. The last column lists the"
        " gather messages by width (dword.xyzw = 4 dwords per lane).", "",
        "| kernel | SIMD | GRF | instrs | block | dword | byte | stores | SLM (bytes) | scratch (msgs) | private | gathers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append("| %s | %s | %s | %d | %d | %d | %d | %d | %d (%d) | %d (%d) | %d | %s |" % (
            r["kernel"], r["simd"], r["grf"], r["instructions"], r["block"], r["dword"], r["byte"], r["stores"],
            r["slm"], r["slm_bytes"], r["scratch"], r["spill_msgs"], r["private"], r["sizes"]))
        if r["other"]:
            print("iris_isa_report: %s has %d unclassified send(s)" % (r["kernel"], r["other"]), file=sys.stderr)
    spills = [r["kernel"] for r in rows if r["scratch"] or r["spill_msgs"] or r["stateless_spill"]]
    lines += ["", "Kernels with register spills: %s." % (", ".join(spills) if spills else "none"), ""]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("iris_isa_report: %d kernels, report in %s%s" % (len(rows), os.path.relpath(out, ROOT),
                                                           ", work files in " + work if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

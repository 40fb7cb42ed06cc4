#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check that every exported uco_* function has an up-to-date man page.

For every uco_* symbol the shared library exports (nm -D --defined-only):
  - include/man3/<symbol>.3 exists: a page of its own, or a one-line
    `.so man3/<page>.3` link to an existing page;
  - that page's NAME section lists the symbol;
  - its SYNOPSIS declares the symbol exactly as include/uco.h does
    (whitespace normalised; return type, name and parameter list compared).
And the other way round: no page (or NAME entry) for a symbol that is gone,
every uco_*(3) and uco(7) cross-reference points at a page that exists, the
pages meson installs are exactly the pages on disk, and every page renders
without a groff warning (skipped, with a message, when groff is missing).

Usage: check_pages.py --lib LIBUCO.so --include DIR [--nm NM]
                      [--installed PAGE...]
Exit status: 0 all good, 1 problems (listed on stderr), 77 skipped (meson's
"skip" code: no nm to read the library with).
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

REQUIRED_SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "RETURN VALUE", "SEE ALSO")


# ---------------------------------------------------------------- symbols

def exported_symbols(nm, lib):
    out = subprocess.run([nm, "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[1] not in "TtWiDdBbRrVv" or len(fields[1]) != 1:
            continue
        name = fields[2].split("@", 1)[0]
        if name.startswith("uco_"):
            syms.add(name)
    return syms


# ---------------------------------------------------------------- C text

def normalise(decl):
    """One canonical spelling of a C declaration."""
    decl = re.sub(r"\s+", " ", decl).strip()
    decl = re.sub(r"\s*([*(),\[\]])\s*", r"\1", decl)
    return decl


FUNC_NAME = re.compile(r"\b(uco_[A-Za-z0-9_]+)\s*\(")


def declarations(text):
    """Map function name -> normalised declaration for every prototype in
    `text` (C source: comments and preprocessor lines already removed)."""
    decls = {}
    for chunk in text.split(";"):
        chunk = chunk.strip()
        m = FUNC_NAME.search(chunk)
        if not m or "{" in chunk or "}" in chunk or chunk.startswith("typedef"):
            continue
        decls.setdefault(m.group(1), []).append(normalise(chunk))
    return decls


def header_declarations(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
    decls = {}
    for m in re.finditer(r"\bUCO_API\s+([^;{}]*);", text):
        decl = m.group(1)
        fm = FUNC_NAME.search(decl)
        if fm:
            decls[fm.group(1)] = normalise(decl)
    return decls


# ---------------------------------------------------------------- roff

ROFF_ESCAPES = [
    (re.compile(r"\\f(?:\[[^\]]*\]|\([A-Za-z]{2}|[A-Za-z0-9])"), ""),
    (re.compile(r"\\[&|^)]"), ""),
    (re.compile(r"\\-"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\ "), " "),
    (re.compile(r"\\\(em"), "--"),
    (re.compile(r"\\\(aq"), "'"),
]


def unescape(s):
    for rx, repl in ROFF_ESCAPES:
        s = rx.sub(repl, s)
    return s


def macro_args(rest):
    """The arguments of a macro line, as roff splits them."""
    return [a[1:-1].replace('""', '"') if a.startswith('"') else a
            for a in re.findall(r'"(?:[^"]|"")*"?|\S+', rest)]


FONT_MACROS = {"B", "I", "SM", "SB"}
ALTERNATING = {"BI", "BR", "IB", "IR", "RB", "RI"}


def roff_text(lines):
    """Plain text of roff lines: font macros resolved, requests dropped."""
    out = []
    for line in lines:
        if line.startswith(".\\\"") or line.startswith("'\\\""):
            continue
        if line.startswith(".") or line.startswith("'"):
            m = re.match(r"[.'](\S+)\s*(.*)", line)
            if not m:
                continue
            name, rest = m.group(1), m.group(2)
            if name in FONT_MACROS:
                out.append(unescape(" ".join(macro_args(rest))))
            elif name in ALTERNATING:
                out.append(unescape("".join(macro_args(rest))))
            continue
        out.append(unescape(line))
    return "\n".join(out)


def sections(lines):
    """Map section title -> its lines."""
    result, current = {}, None
    for line in lines:
        m = re.match(r"\.SH\s+(.*)", line)
        if m:
            current = " ".join(macro_args(m.group(1)))
            result[current] = []
        elif current is not None:
            result[current].append(line)
    return result


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def so_target(lines):
    """The target of a link page (`.so man3/x.3`), or None."""
    body = [l for l in lines if l.strip() and not l.startswith(".\\\"")]
    if body and body[0].startswith(".so "):
        return body[0][4:].strip(), len(body)
    return None, len(body)


def name_entries(sect):
    text = roff_text(sect).replace("\n", " ")
    if " - " not in text:
        return None
    names = text.split(" - ", 1)[0]
    return [n.strip() for n in names.split(",") if n.strip()]


def synopsis_declarations(sect):
    """The prototypes of a SYNOPSIS: its text without preprocessor lines
    (#include, #define and their continuation lines)."""
    kept, continued = [], False
    for line in roff_text(sect).splitlines():
        directive = continued or line.lstrip().startswith("#")
        continued = directive and line.rstrip().endswith("\\")
        if not directive:
            kept.append(line)
    return declarations("\n".join(kept))


# ---------------------------------------------------------------- rendering

def render_problems(pages, cwd):
    """groff's warnings for each page, or a reason to skip."""
    groff = shutil.which("groff")
    man = shutil.which("man")
    if groff:
        cmd = lambda p: [groff, "-man", "-ww", "-z", "-Tutf8", p]
    elif man:
        cmd = lambda p: [man, "--warnings", "-l", "-Tutf8", p]
    else:
        return None, "neither groff nor man found: rendering not checked"
    problems = []
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    for page in pages:
        r = subprocess.run(cmd(page), cwd=cwd, capture_output=True, text=True, env=env)
        err = r.stderr.strip()
        if r.returncode or err:
            problems.append(f"{os.path.relpath(page, cwd)}: does not render cleanly "
                            f"(exit {r.returncode}): {err}")
    return problems, None


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--include", required=True, help="the include/ directory")
    ap.add_argument("--nm", default=None)
    ap.add_argument("--installed", nargs="*", default=None,
                    help="the pages meson installs (install_man)")
    args = ap.parse_args()

    nm = args.nm or shutil.which(os.environ.get("NM", "nm"))
    if not nm:
        print("SKIP: no nm to list the library's symbols", file=sys.stderr)
        return 77

    inc = os.path.abspath(args.include)
    man3 = os.path.join(inc, "man3")
    man7 = os.path.join(inc, "man7")
    problems = []

    symbols = exported_symbols(nm, args.lib)
    if not symbols:
        print(f"{args.lib}: exports no uco_* symbol", file=sys.stderr)
        return 1
    header = header_declarations(os.path.join(inc, "uco.h"))

    for sym in sorted(symbols - header.keys()):
        problems.append(f"{sym}: exported, but include/uco.h declares no UCO_API prototype for it")
    for sym in sorted(header.keys() - symbols):
        problems.append(f"{sym}: declared UCO_API in include/uco.h but not exported by the library")

    pages = {os.path.basename(p)[:-2]: p for p in glob.glob(os.path.join(man3, "*.3"))}
    real_pages = {}   # name -> (lines, sections)
    links = {}        # name -> target page name

    for name, path in sorted(pages.items()):
        lines = read_lines(path)
        target, nbody = so_target(lines)
        if target is not None:
            if nbody != 1:
                problems.append(f"man3/{name}.3: a link page must hold the .so line only")
            m = re.fullmatch(r"man3/([A-Za-z0-9_]+)\.3", target)
            if not m:
                problems.append(f"man3/{name}.3: .so target {target!r} is not man3/<page>.3")
                continue
            links[name] = m.group(1)
        else:
            real_pages[name] = (lines, sections(lines))

    # Pages for symbols that are gone.
    for name in sorted(pages):
        if name not in symbols:
            problems.append(f"man3/{name}.3: no exported symbol {name} (removed? renamed?)")

    # Link targets.
    for name, target in sorted(links.items()):
        if target not in pages:
            problems.append(f"man3/{name}.3: links to man3/{target}.3, which does not exist")
        elif target in links:
            problems.append(f"man3/{name}.3: links to man3/{target}.3, itself a link page")

    # Each real page on its own.
    page_decls = {}
    page_names = {}
    for name, (lines, sects) in sorted(real_pages.items()):
        where = f"man3/{name}.3"
        if not any(l.startswith(".TH ") for l in lines):
            problems.append(f"{where}: no .TH line")
        for s in REQUIRED_SECTIONS:
            if s not in sects:
                problems.append(f"{where}: no {s} section")
        names = name_entries(sects.get("NAME", [])) or []
        if "NAME" in sects and not names:
            problems.append(f"{where}: NAME is not 'name, name \\- summary'")
        page_names[name] = names
        if name not in names:
            problems.append(f"{where}: its NAME section does not list {name}")
        for n in names:
            if n not in symbols:
                problems.append(f"{where}: NAME lists {n}, which the library does not export")
        syn = sects.get("SYNOPSIS", [])
        if "SYNOPSIS" in sects and not any("#include <uco.h>" in roff_text([l]) for l in syn):
            problems.append(f"{where}: SYNOPSIS lacks #include <uco.h>")
        decls = synopsis_declarations(syn)
        page_decls[name] = decls
        for fn in decls:
            if fn not in names:
                problems.append(f"{where}: SYNOPSIS declares {fn}, which NAME does not list")

    # Every symbol: a page, listed in NAME, with the header's prototype.
    for sym in sorted(symbols):
        if sym not in pages:
            problems.append(f"{sym}: no page include/man3/{sym}.3 (nor a .so link page)")
            continue
        page = links.get(sym, sym)
        if page not in real_pages:
            continue  # a broken link, reported above
        if sym not in page_names.get(page, []):
            if page != sym:
                problems.append(f"{sym}: man3/{sym}.3 links to man3/{page}.3, "
                                f"whose NAME does not list {sym}")
            continue
        found = page_decls[page].get(sym)
        want = header.get(sym)
        if not found:
            problems.append(f"{sym}: man3/{page}.3 has no SYNOPSIS prototype for it")
        elif want is None:
            pass  # reported above
        elif len(found) > 1:
            problems.append(f"{sym}: man3/{page}.3 declares it {len(found)} times")
        elif found[0] != want:
            problems.append(f"{sym}: man3/{page}.3 SYNOPSIS does not match include/uco.h\n"
                            f"    page:   {found[0]}\n    header: {want}")

    # Cross-references: uco_*(3) and uco(7).
    for name, (lines, _) in sorted(real_pages.items()):
        text = roff_text(lines)
        for ref, sect in re.findall(r"\b(uco_[A-Za-z0-9_]+|uco) ?\((3|7)\)", text):
            path = os.path.join(inc, f"man{sect}", f"{ref}.{sect}")
            if not os.path.exists(path):
                problems.append(f"man3/{name}.3: refers to {ref}({sect}), which has no page")
    overview = os.path.join(man7, "uco.7")
    if os.path.exists(overview):
        text = roff_text(read_lines(overview))
        for ref in re.findall(r"\b(uco_[A-Za-z0-9_]+) ?\(3\)", text):
            if ref not in pages:
                problems.append(f"man7/uco.7: refers to {ref}(3), which has no page")

    # What meson installs is what is on disk.
    on_disk = set(pages.values())
    if os.path.isdir(man7):
        on_disk |= set(glob.glob(os.path.join(man7, "*.7")))
    on_disk = {os.path.relpath(p, inc) for p in on_disk}
    if args.installed is not None:
        installed = {os.path.relpath(os.path.abspath(p), inc) for p in args.installed}
        for p in sorted(on_disk - installed):
            problems.append(f"{p}: not in include/meson.build's install_man() list")
        for p in sorted(installed - on_disk):
            problems.append(f"{p}: installed by include/meson.build but not on disk")

    # Rendering.
    to_render = [os.path.join(inc, p) for p in sorted(on_disk)]
    render, skipped = render_problems(to_render, inc)
    if skipped:
        print(f"note: {skipped}", file=sys.stderr)
    else:
        problems += render

    if problems:
        print(f"{len(problems)} problem(s) with the reference pages:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print(f"ok: {len(symbols)} exported functions, {len(real_pages)} pages, "
          f"{len(links)} link pages" + ("" if skipped else ", all render cleanly"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

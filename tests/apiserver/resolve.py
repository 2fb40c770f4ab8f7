#!/usr/bin/env python3
"""Resolves the Debian packages the test API server is built from.

Reads a Debian `Packages` index on stdin and prints one `name=version` line per package
to download: the given roots plus, recursively, every `golang-*-dev` package they
depend on. Alternatives take the first one the index has; virtual names resolve through
`Provides`. A `--pin name=version` holds a package at a version (the download then
fails, naming it, if the mirror no longer has that version).
"""

import argparse
import re
import sys


def parse_index(stream):
    packages, provides = {}, {}
    fields = {}
    for line in list(stream) + ["\n"]:
        if line.strip() == "":
            if "Package" in fields:
                name = fields["Package"]
                packages.setdefault(name, fields)
                for item in split_list(fields.get("Provides", "")):
                    provides.setdefault(item, name)
            fields = {}
        elif line[0] in " \t":
            continue
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return packages, provides


def split_list(value):
    """Names in a Depends/Provides field, with versions and arch qualifiers dropped."""
    out = []
    for clause in value.split(","):
        names = [re.split(r"[\s(:]", alt.strip(), maxsplit=1)[0] for alt in clause.split("|")]
        names = [n for n in names if n]
        if names:
            out.append(names if "|" in clause else names[0])
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--pin", action="append", default=[])
    args = parser.parse_args()
    packages, provides = parse_index(sys.stdin)
    pins = dict(p.split("=", 1) for p in args.pin)

    def lookup(name):
        if name in packages:
            return name
        return provides.get(name)

    chosen, queue, missing = {}, list(args.roots), []
    roots = set(args.roots)
    while queue:
        want = queue.pop()
        alts = want if isinstance(want, list) else [want]
        name = next((lookup(a) for a in alts if lookup(a)), None)
        if name is None:
            if any(a in roots for a in alts) or alts[0].startswith("golang-"):
                missing.append(" | ".join(alts))
            continue
        if name in chosen:
            continue
        chosen[name] = pins.get(name, packages[name]["Version"])
        for dep in split_list(packages[name].get("Depends", "")):
            first = dep[0] if isinstance(dep, list) else dep
            if re.match(r"golang-.*-dev$", first):
                queue.append(dep)
    if missing:
        sys.exit("resolve: not in the package index: " + ", ".join(sorted(set(missing))))
    for name in sorted(chosen):
        print(f"{name}={chosen[name]}")


if __name__ == "__main__":
    main()

"""Trim the ICU data library that PySide6's Qt Core links (Linux wheels) to what an English app
needs: 30.6 MiB down to about 6.4.

Qt Core on Linux links ICU, whose data (every locale's names of languages, countries, currencies
and units, legacy text encodings, transliterators, word-break dictionaries for Thai, Lao, Khmer,
Burmese, Chinese and Japanese) sits in one ``libicudata.so.NN`` that exports one symbol,
``icudtNN_dat``: an ICU *common data* package. ICU documents cutting that package down as the way
to make it smaller (its Data Customizer and data build tool); here ICU's own tools do it on the
package PySide6 shipped, so the data stays the exact version the ICU code was built for:

1. the package is read out of the library (the symbol's bytes);
2. ``icupkg`` (Debian: icu-devtools) removes the items below;
3. ``genccode`` writes the package back as an assembly file, which the C compiler links into a
   library with the same name and symbol.

Kept: the root and English locales, collation rules for every language (Qt sorts names with
them: a Swedish å still sorts after z), normalisation, IDNA, character properties, time zones,
plural and number rules, break-iterator rules. Removed, with what falls back instead (ICU's own
resource fallback to root, which Qt already handles):

- other languages' names for languages, scripts, countries, currencies, units, time zones, and
  their number spell-out rules: the app shows none of them (its text is English);
- other locales' date and number formats *inside ICU*: Qt formats dates and numbers with its
  own CLDR tables, not ICU's (``QLocale("de_DE").toString(1234.5)`` is unchanged);
- legacy encodings (Shift-JIS, GB18030, EBCDIC...): Qt's ``QStringDecoder`` for those names
  becomes invalid; the app reads and writes only UTF-8 (and Latin-1, which needs no table);
- transliterators, and the dictionaries for word breaks in languages written without spaces:
  Qt breaks lines with its own Unicode tables, not ICU's.

The app's behaviour is checked by ``tests/packaging/test_trim_icu.py`` (sorting, case mapping,
number formats and time zones the same with the trimmed library as with the full one) and by the
packaged app's self-test. Run by the spec after COLLECT; also runnable by hand:

    python build_spec/trim_icu.py dist/imgcap-desktop/_internal/PySide6/Qt/lib/libicudata.so.73
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: An item of the package that is one locale's data: "de_CH.res", "coll/sv.res", "zone/en_GB.res".
_LOCALE_ITEM = re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]+)*\.res$")
TOOLS = ("icupkg", "genccode")


class TrimError(RuntimeError):
    """The library could not be trimmed; the untrimmed one is left in place."""


def keep_item(name: str) -> bool:
    """Whether an item of the ICU data package (as ``icupkg -l`` names it) stays."""
    tree, _, base = name.rpartition("/")
    if tree == "translit" or base.endswith(".cnv") or (tree == "brkitr" and base.endswith(".dict")):
        return False
    if tree == "coll":
        return True
    # res_index lists the installed locales (ICU's getAvailable); it matches the pattern but is no locale.
    if _LOCALE_ITEM.match(base) and base not in ("root.res", "res_index.res"):
        return base == "en.res" or base.startswith("en_")
    return True  # root, pool, supplemental data, time zones, normalisation, ...


# Debian puts icupkg and genccode in /usr/sbin, which a non-root PATH leaves out.
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# binutils' messages are translated; the parsing below reads the English ones.
_C_LOCALE = {**os.environ, "LC_ALL": "C", "LANGUAGE": ""}


def _tool(name: str) -> str | None:
    return shutil.which(name, path=_SEARCH)


def _run(*args: str, cwd: Path | None = None) -> str:
    command = [_tool(args[0]) or args[0], *args[1:]]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=_C_LOCALE)
    if done.returncode != 0:
        raise TrimError(f"{args[0]} failed: {(done.stderr or done.stdout).strip()[:400]}")
    return done.stdout


def _data_symbol(library: Path) -> tuple[str, int, int]:
    """(symbol, file offset, size) of the library's one ``icudtNN_dat`` symbol."""
    symbols = _run("nm", "-D", "-S", "--defined-only", str(library))
    found = [line.split() for line in symbols.splitlines() if re.search(r"\bicudt\d+_dat$", line)]
    if len(found) != 1 or len(found[0]) != 4:
        raise TrimError(f"{library.name} does not export exactly one icudtNN_dat symbol")
    address, size, name = int(found[0][0], 16), int(found[0][1], 16), found[0][3]
    # The symbol's address is virtual: find the section holding it to turn it into a file offset.
    for line in _run("readelf", "-S", "-W", str(library)).splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) >= 6 and fields[0].startswith("[") and fields[0] != "[Nr]":
            try:
                start, offset, length = int(fields[3], 16), int(fields[4], 16), int(fields[5], 16)
            except ValueError:
                continue
            if start <= address < start + length and fields[2] == "PROGBITS":
                return name, offset + (address - start), size
    raise TrimError(f"{library.name}: no section holds {name}")


def missing_tools() -> list[str]:
    cc = os.environ.get("CC", "cc")
    return [tool for tool in (*TOOLS, cc, "nm", "readelf") if _tool(tool) is None]


def trim(library: Path, out: Path | None = None) -> tuple[int, int]:
    """Write a trimmed copy of library to out (default: replace it). Returns (bytes before, after)."""
    missing = missing_tools()
    if missing:
        raise TrimError(f"needs {', '.join(missing)} (Debian: apt-get install icu-devtools binutils gcc)")
    before = library.stat().st_size
    symbol, offset, size = _data_symbol(library)
    entry = symbol[: -len("_dat")]  # icudt73
    with tempfile.TemporaryDirectory(prefix="imgcap-icu-") as tmp:
        work = Path(tmp)
        with library.open("rb") as f:
            f.seek(offset)
            package = f.read(size)
        # icupkg names the package's items after its file name: icudt73l = ICU 73, little-endian.
        full = work / f"{entry}l.dat"
        full.write_bytes(package)
        items = [line.strip() for line in _run("icupkg", "-l", full.name, cwd=work).splitlines() if line.strip()]
        if len(items) < 100:
            raise TrimError(f"{library.name}: icupkg lists only {len(items)} items; not an ICU data library")
        dropped = [item for item in items if not keep_item(item)]
        (work / "drop.txt").write_text("\n".join(dropped) + "\n", encoding="ascii")
        (work / "trimmed").mkdir()
        # --ignore-deps: root's break rules name the dictionaries; without them ICU breaks those
        # scripts by its rules alone, which is what it does for any script it has no dictionary for.
        _run("icupkg", "--ignore-deps", "-r", "drop.txt", full.name, f"trimmed/{full.name}", cwd=work)
        _run("genccode", "-a", "gcc", "-e", entry, "-d", str(work), str(work / "trimmed" / full.name))
        assembly = work / f"{entry}l_dat.S"
        built = work / library.name
        _run(os.environ.get("CC", "cc"), "-shared", "-nostdlib", f"-Wl,-soname,{library.name}",
             "-Wl,-z,noexecstack", "-o", str(built), str(assembly))
        if _data_symbol(built)[0] != symbol:
            raise TrimError(f"the rebuilt {library.name} does not export {symbol}")
        target = out or library
        staged = target.with_name(target.name + ".trimmed")
        shutil.copyfile(built, staged)
        shutil.copymode(library, staged)
        os.replace(staged, target)
        return before, target.stat().st_size


def trim_in_folder(internal: Path) -> None:
    """The spec's step: trim ``PySide6/Qt/lib/libicudata.so.*`` under the packaged ``_internal``,
    or say why not (the app still works, with the full data)."""
    libraries = sorted((internal / "PySide6" / "Qt" / "lib").glob("libicudata.so.*"))
    if not sys.platform.startswith("linux") or not libraries:
        return  # macOS and Windows builds of Qt use the system's ICU
    for library in libraries:
        if library.is_symlink():
            continue  # the file it names is in the list too
        before = library.stat().st_size
        try:
            _, after = trim(library)
        except (TrimError, OSError) as err:
            print(f"imgcap-desktop.spec: WARNING: {library.name} left whole ({before / 2**20:.1f} MiB): {err}")
            continue
        print(f"imgcap-desktop.spec: {library.name} trimmed to what an English app needs: "
              f"{before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    sizes = trim(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else None)
    print(f"{sizes[0] / 2**20:.1f} MiB -> {sizes[1] / 2**20:.1f} MiB")

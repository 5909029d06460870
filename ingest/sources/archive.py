"""Safe extraction of export zips (Slack exports, Confluence XML space exports).

An export zip is untrusted input. Before a single byte is written, every entry is checked;
one bad entry refuses the whole archive with a ``HostileArchive`` (a ``SourceError``) that
names the archive, the entry and what to do:

- names: no absolute paths (``/x``, ``\\x``, ``C:x``), no ``..`` segment, no NUL or control
  characters, no names that are not valid UTF-8 (a name without the zip UTF-8 flag must
  still decode as UTF-8, the way Slack and Confluence write them), no duplicates (also not
  after Unicode normalisation and case folding, which would overwrite each other on a
  case-insensitive disk), no entry that is both a file and a folder;
- types: no symlinks or other special files (from the Unix mode in the external
  attributes), no encrypted entries;
- size: at most ``max_entries`` entries, ``max_total_bytes`` uncompressed in all,
  ``max_entry_bytes`` per entry, and a compression ratio of at most ``max_ratio`` for any
  entry over ``ratio_floor_bytes`` and for the archive as a whole (zip bombs).

Declared sizes are not trusted: while copying, the real number of bytes is counted and the
extraction stops as soon as an entry outgrows its declared size or a limit. Extraction goes
to ``<GOVRAG_HOME>/work/<sha256 of the zip>.tmp-<pid>`` and is renamed to
``<GOVRAG_HOME>/work/<sha256>`` when complete, so a crash never leaves a half-extracted
export that looks finished, and the same zip is extracted once.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import stat
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from governance.errors import SourceError

HINT = (
    "the archive was refused as a whole and nothing from it was ingested; re-export it from the "
    "source system, or unpack it yourself after checking its contents and ingest the folder"
)
DONE_MARKER = ".govrag-extracted"


class HostileArchive(SourceError):
    """An archive that could write outside its folder, or expand without bound."""

    def __init__(self, archive: Path, entry: str | None, problem: str, *, reason: str) -> None:
        where = f"{archive}" + (f" (entry {entry!r})" if entry is not None else "")
        super().__init__(f"{where}: {problem}", hint=HINT)
        self.reason = reason
        self.archive = str(archive)
        self.entry = entry


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 200_000
    max_total_bytes: int = 8 * 1024**3
    max_entry_bytes: int = 2 * 1024**3
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1024 * 1024


DEFAULT_LIMITS = ArchiveLimits()
_S_IFMT = 0o170000


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def work_root() -> Path:
    from governance.settings import get_settings

    return get_settings().resolved_home / "work"


def _entry_name(archive: Path, info: zipfile.ZipInfo) -> str:
    """The entry's real name, decoded as UTF-8 whatever the flag says; refuse anything else."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            raw = info.orig_filename.encode("cp437")
        except UnicodeEncodeError:
            raw = info.orig_filename.encode("utf-8", "surrogateescape")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HostileArchive(
                archive, info.orig_filename, "entry name is not valid UTF-8", reason="non_utf8_name"
            ) from None
    return name


def _check_name(archive: Path, name: str) -> PurePosixPath:
    if not name or "\x00" in name or any(unicodedata.category(c) == "Cc" for c in name):
        raise HostileArchive(archive, name, "entry name is empty or holds control characters", reason="bad_name")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) >= 2 and norm[1] == ":"):
        raise HostileArchive(archive, name, "absolute path in the archive", reason="absolute_path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise HostileArchive(archive, name, "path traversal ('..') in the archive", reason="path_traversal")
    if not parts:
        raise HostileArchive(archive, name, "entry name has no path", reason="bad_name")
    return PurePosixPath(*parts)


def check_archive(
    archive: Path, zf: zipfile.ZipFile, limits: ArchiveLimits = DEFAULT_LIMITS
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every entry (names, types, declared sizes); returns the entries to extract."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise HostileArchive(
            archive, None, f"{len(infos)} entries (limit {limits.max_entries})", reason="too_many_entries"
        )
    seen: dict[str, str] = {}
    files: set[str] = set()
    dirs: set[str] = set()
    out = []
    total = compressed = 0
    for info in infos:
        name = _entry_name(archive, info)
        rel = _check_name(archive, name)
        mode = info.external_attr >> 16
        ftype = mode & _S_IFMT
        if info.create_system == 3 and ftype and ftype not in (stat.S_IFREG, stat.S_IFDIR):
            kind = "symlink" if ftype == stat.S_IFLNK else "special file"
            raise HostileArchive(
                archive,
                name,
                f"{kind} in the archive (links could point outside it)",
                reason="symlink" if ftype == stat.S_IFLNK else "special_file",
            )
        if info.flag_bits & 0x1:
            raise HostileArchive(archive, name, "encrypted entry", reason="encrypted")
        key = unicodedata.normalize("NFC", rel.as_posix()).casefold()
        if key in seen:
            raise HostileArchive(
                archive, name, f"duplicate entry name (same as {seen[key]!r})", reason="duplicate_name"
            )
        seen[key] = name
        is_dir = name.endswith("/") or name.endswith("\\") or ftype == stat.S_IFDIR
        (dirs if is_dir else files).add(key)
        for parent in list(PurePosixPath(key).parents)[:-1]:
            dirs.add(parent.as_posix())
        if is_dir:
            continue
        if info.file_size > limits.max_entry_bytes:
            raise HostileArchive(
                archive,
                name,
                f"entry expands to {info.file_size} bytes (limit {limits.max_entry_bytes})",
                reason="too_large",
            )
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise HostileArchive(
                archive,
                name,
                f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 "
                f"(limit {limits.max_ratio:.0f}:1) looks like a zip bomb",
                reason="zip_bomb",
            )
        total += info.file_size
        compressed += info.compress_size
        if total > limits.max_total_bytes:
            raise HostileArchive(
                archive, None, f"archive expands to more than {limits.max_total_bytes} bytes", reason="too_large"
            )
        out.append((info, rel))
    if total > limits.ratio_floor_bytes and total > limits.max_ratio * max(compressed, 1):
        raise HostileArchive(
            archive,
            None,
            f"overall compression ratio {total / max(compressed, 1):.0f}:1 "
            f"(limit {limits.max_ratio:.0f}:1) looks like a zip bomb",
            reason="zip_bomb",
        )
    clash = files & dirs
    if clash:
        name = sorted(clash)[0]
        raise HostileArchive(archive, name, "entry is both a file and a folder", reason="duplicate_name")
    return out


def _copy(
    archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, limits: ArchiveLimits, budget: list[int]
) -> None:
    """Copy one entry, counting real bytes against its declared size and the total budget."""
    written = 0
    with zf.open(info) as src, open(dest, "xb") as out:
        while True:
            block = src.read(1 << 16)
            if not block:
                break
            written += len(block)
            budget[0] -= len(block)
            if written > info.file_size or written > limits.max_entry_bytes or budget[0] < 0:
                raise HostileArchive(
                    archive,
                    info.filename,
                    "entry expands beyond its declared size or the archive size limit",
                    reason="zip_bomb",
                )
            out.write(block)


def extract_zip(archive: Path, limits: ArchiveLimits = DEFAULT_LIMITS, *, dest_root: Path | None = None) -> Path:
    """Extract ``archive`` safely into a folder of its own and return it.

    The folder (``<work>/<sha256>.<pid>.<token>``) holds the export's text in clear: whoever
    opens an archive removes it when done (``SourceExport.close``, :func:`remove_extraction`);
    what a crashed process left is removed by :func:`clean_work` at the next run."""
    archive = Path(archive)
    try:
        digest = sha256_file(archive)
    except OSError as exc:
        raise SourceError(f"{archive}: cannot read: {exc}") from exc
    root = (dest_root or work_root()).resolve()
    final = root / f"{digest}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SourceError(
            f"{archive}: not a readable zip file: {exc}",
            hint="re-export the archive; a truncated download is the usual cause",
        ) from exc
    with zf:
        entries = check_archive(archive, zf, limits)
        final.mkdir(parents=True)
        budget = [limits.max_total_bytes]
        try:
            for info, rel in entries:
                dest = final.joinpath(*rel.parts)
                # Belt and braces: the checked name can only land inside the folder.
                if not dest.resolve().is_relative_to(final.resolve()):
                    raise HostileArchive(
                        archive,
                        info.filename,
                        "entry would be written outside the work folder",
                        reason="path_traversal",
                    )
                dest.parent.mkdir(parents=True, exist_ok=True)
                _copy(archive, zf, info, dest, limits, budget)
            (final / DONE_MARKER).write_text(str(archive))
        except HostileArchive:
            shutil.rmtree(final, ignore_errors=True)
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            shutil.rmtree(final, ignore_errors=True)
            raise SourceError(
                f"{archive}: extraction failed: {exc}",
                hint="re-export the archive; it is corrupt or uses an unsupported compression",
            ) from exc
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
    return final


def remove_extraction(folder: Path) -> None:
    """Remove a folder :func:`extract_zip` made (and only such a folder)."""
    folder = Path(folder)
    if _OWNED.match(folder.name):
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def removed_on_error(scratch: list[Path]) -> Iterator[None]:
    """Remove the extractions in ``scratch`` if the block fails: an export that could not be
    opened is never ingested, and its extracted text must not stay on disk."""
    try:
        yield
    except BaseException:
        for folder in scratch:
            remove_extraction(folder)
        raise


_OWNED = re.compile(r"^[0-9a-f]{64}\.(\d+)\.[0-9a-f]{8}$")
_LEGACY = re.compile(r"^[0-9a-f]{64}(\.tmp-\d+)?$")  # shared extractions of earlier versions


def clean_work(root: Path | None = None) -> int:
    """Remove extractions whose process is gone (a crash, a kill) and those earlier versions
    kept for good; returns how many. Extractions of running processes are left alone."""
    from governance.milvus_process.local import process_alive

    root = Path(root or work_root())
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        m = _OWNED.match(entry.name)
        if (m and not process_alive(int(m.group(1)))) or _LEGACY.match(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def zip_names(path: Path) -> list[str]:
    """Entry names of a zip (for detection); [] when it is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return []


def safe_files(root: Path, suffix: str | None = None) -> list[Path]:
    """Regular files under an unpacked export, never through symlinks (a folder export must
    not reach outside itself)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if (suffix is None or f.lower().endswith(suffix)) and not p.is_symlink() and p.is_file():
                out.append(p)
    return out

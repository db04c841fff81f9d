"""Module payloads imported without zipimport, with their compiled code kept between runs.

Ansible ships each module run a fresh zip of the module and its module_utils
(``ansible_<module>_payload.zip``). zipimport reads that zip's directory in pure Python and
compiles every file twice per run (once to find it, once to load it); for kubernetes.core
that was most of a warm module run's own work. Installed in the warm module interpreter
(`runner.forkserver`), this path hook serves payload zips instead: the directory is read
once with `zipfile`, and each file's code comes from a directory of marshalled code objects
named by a digest of its path and source, so a file is compiled only the first time any run
sees it.

What runs does not change: the source is the payload's own, so a payload from another
collection version simply misses the cache. ``__file__`` is the path zipimport would give;
tracebacks name a file by its path inside the payload
(``ansible_collections/kubernetes/core/plugins/module_utils/k8s/client.py``) and show its
source lines, since the temporary zip is gone by the time anyone reads them. Zips that are
not module payloads are left to zipimport.

The warm module interpreter has ansible-core's module_utils imported before any payload is
there (`runner.forkserver`), and a payload packs its own ``ansible`` package: ansible-core's
module_utils, a role's own module_utils (``ansible.module_utils.<name>``) and a module from a
``library/`` directory (``ansible.legacy.<name>``). `Preloaded` makes the two agree before a
module runs: it enters the payload's ``ansible`` and ``ansible.module_utils`` into the
preloaded packages, as a fresh interpreter has them, and keeps the preloaded modules only when
each one the payload also holds is byte for byte the installed file; otherwise it drops them
all, and the module imports every one from its payload.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import marshal
import os
import struct
import sys
import types
import zipfile
import zipimport
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Bytecode depends on the interpreter and on -O.
_SALT = importlib.util.MAGIC_NUMBER + bytes([sys.flags.optimize])

# A zip member's local header (zipfile's structFileHeader): the file's bytes follow it, its name
# and its extra field.
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")


def digest(member: str, source: str) -> str:
    """The cache key of a payload file: its path inside the payload (the code's file name) and source."""
    return hashlib.sha256(_SALT + f"{member}\0{source}".encode("utf-8", "surrogatepass")).hexdigest()


def is_payload(path: str) -> bool:
    """A module payload as Ansible's AnsiballZ wrapper writes it."""
    name = os.path.basename(path)
    return name.startswith("ansible_") and name.endswith("_payload.zip")


class Archive:
    """One payload zip, its directory read once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path)
        self.names = frozenset(self.zip.namelist())
        self.folders = frozenset(name.rsplit("/", i)[0] for name in self.names for i in range(1, name.count("/") + 1))
        self._bytes: bytes | None = None

    def read_text(self, member: str) -> str:
        return self.zip.read(member).decode("utf-8")

    def stored(self, member: str) -> tuple[int, bytes]:
        """A member as the zip holds it, not inflated: its compression method and its bytes."""
        info = self.zip.getinfo(member)
        if info.flag_bits & 0x1:
            raise zipfile.BadZipFile(f"{member} is encrypted")
        if self._bytes is None:
            with open(self.path, "rb") as f:
                self._bytes = f.read()
        header = _LOCAL_HEADER.unpack_from(self._bytes, info.header_offset)
        if header[0] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"no local header for {member}")
        start = info.header_offset + _LOCAL_HEADER.size + header[10] + header[11]
        return info.compress_type, self._bytes[start:start + info.compress_size]


class PayloadImporter:
    """The path hook: a finder for each import path entry in a payload zip (the zip, or a folder in it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._archives: dict[str, Archive] = {}

    def __call__(self, entry: str) -> PayloadEntryFinder:
        archive_end = entry.find(".zip")
        archive_path, inner = entry[:archive_end + 4], entry[archive_end + 4:]
        if archive_end < 0 or (inner and not inner.startswith("/")) or not is_payload(archive_path):
            raise ImportError("not a module payload", path=entry)
        try:
            archive = self.archive(archive_path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ImportError(f"unreadable module payload: {exc}", path=entry) from exc
        inner = inner.strip("/")
        return PayloadEntryFinder(archive, f"{inner}/" if inner else "", self.directory)

    def archive(self, path: str) -> Archive:
        archive = self._archives.get(path)
        if archive is None:
            archive = self._archives[path] = Archive(path)
        return archive


class PayloadEntryFinder(importlib.abc.PathEntryFinder):
    """Finds modules, packages and namespace packages in one folder of a payload zip."""

    def __init__(self, archive: Archive, inner: str, directory: Path) -> None:
        self.archive = archive
        self.inner = inner
        self.directory = directory

    def find_spec(self, fullname: str, target: types.ModuleType | None = None) -> Any:
        base = self.inner + fullname.rpartition(".")[2]
        for member, is_package in ((f"{base}/__init__.py", True), (f"{base}.py", False)):
            if member in self.archive.names:
                loader = PayloadLoader(self.archive, member, is_package, self.directory)
                spec = importlib.util.spec_from_loader(fullname, loader, origin=loader.path, is_package=is_package)
                if spec is not None:
                    spec.has_location = True
                    if is_package:
                        spec.submodule_search_locations = [f"{self.archive.path}/{base}"]
                return spec
        if base in self.archive.folders:
            # A namespace package portion, as zipimport reports one.
            spec = importlib.machinery.ModuleSpec(fullname, None)
            spec.submodule_search_locations = [f"{self.archive.path}/{base}"]
            return spec
        return None

    def invalidate_caches(self) -> None:
        return None


class PayloadLoader(importlib.abc.InspectLoader):
    """Loads one payload file: source from the zip, code from the cache when it has it."""

    def __init__(self, archive: Archive, member: str, is_package: bool, directory: Path) -> None:
        self.archive = archive
        self.member = member
        self.package = is_package
        self.directory = directory
        self.path = f"{archive.path}/{member}"

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        code = self.get_code(module.__name__)
        exec(code, module.__dict__)  # nosec B102  # a module loader: the payload's own code

    def is_package(self, fullname: str) -> bool:
        return self.package

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_source(self, fullname: str) -> str:
        return self.archive.read_text(self.member)

    def get_data(self, path: str) -> bytes:
        # pkgutil.get_data and friends: files beside the module, in the zip or outside it.
        prefix = self.archive.path + "/"
        if path.startswith(prefix) and path[len(prefix):] in self.archive.names:
            return self.archive.zip.read(path[len(prefix):])
        with open(path, "rb") as f:
            return f.read()

    def get_resource_reader(self, fullname: str) -> Any:
        return zipimport.zipimporter(self.path.rpartition("/")[0]).get_resource_reader(fullname)

    def get_code(self, fullname: str) -> types.CodeType:
        source = self.get_source(fullname)
        entry = self.directory / f"{digest(self.member, source)}.code"
        try:
            code: types.CodeType = marshal.loads(entry.read_bytes())  # nosec B302  # own cache, 0700 mkdtemp dir
        except (OSError, EOFError, ValueError, TypeError):
            code = compile(source, self.member, "exec", dont_inherit=True)
            _store(entry, code)
        return code


def _store(entry: Path, code: types.CodeType) -> None:
    # Concurrent runs may store the same entry: each writes a file of its own, then renames it.
    partial = entry.with_name(f"{entry.name}.{os.getpid()}")
    try:
        partial.write_bytes(marshal.dumps(code))
        os.replace(partial, entry)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()


def install(directory: Path) -> None:
    """Serve payload zips with this module's path hook, ahead of zipimport's; once per process."""
    if any(isinstance(hook, PayloadImporter) for hook in sys.path_hooks):
        return
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    sys.path_hooks.insert(0, PayloadImporter(directory))


def archive(path: str) -> Archive:
    """A payload's directory: the one the installed path hook read or will read, else read now."""
    for hook in sys.path_hooks:
        if isinstance(hook, PayloadImporter):
            return hook.archive(path)
    return Archive(path)


# ---------------------------------------------------------------- preloaded ansible-core and a payload

# Ansible writes these two into every payload as packages that extend their path: the payload's
# folder first, then every installed ``ansible`` on sys.path (`pkgutil.extend_path`).
PAYLOAD_PACKAGES = ("ansible", "ansible.module_utils")


def _members(name: str) -> tuple[str, str]:
    """The payload files that could hold module `name`: a package or a module."""
    base = name.replace(".", "/")
    return f"{base}/__init__.py", f"{base}.py"


def _ansible_modules() -> list[str]:
    return [name for name in sys.modules if name == "ansible" or name.startswith("ansible.")]


class Preloaded:
    """The ``ansible`` modules a warm interpreter imported before any payload, to be squared with each.

    ``files`` has, for each payload file that would hold one of them, the SHA-256 of the installed
    file that name was loaded from, or None when none was (then a payload file by that name
    shadows a module it cannot be: a package for a module, or a name six makes up).
    ``deflated`` has the SHA-256 of each installed file deflated as Ansible's zipfile deflates a
    payload's files: a payload member with those very bytes is that file, proven without
    inflating it (any other member is inflated and compared).
    ``packages`` are the preloaded packages whose ``__path__`` is their own folder, as the import
    system sets it: when the payload holds one, its path becomes the payload's folder, as it is
    when the package is imported from the payload. (Packages that set their own ``__path__``, as
    six does, set it alike from the payload's identical copy.)
    """

    def __init__(self, files: Mapping[str, str | None], packages: Mapping[str, str],
                 deflated: Mapping[str, str] | None = None) -> None:
        self.files = dict(files)
        self.packages = dict(packages)
        self.deflated = dict(deflated or {})

    @classmethod
    def snapshot(cls) -> Preloaded:
        """What this interpreter has imported of ``ansible`` now."""
        files: dict[str, str | None] = {}
        packages: dict[str, str] = {}
        deflated: dict[str, str] = {}
        root = os.path.dirname(os.path.dirname(getattr(sys.modules.get("ansible"), "__file__", None) or "/"))
        for name in _ansible_modules():
            if name in PAYLOAD_PACKAGES:
                continue
            module = sys.modules[name]
            origin = getattr(module, "__file__", None)
            for member in _members(name):
                # The file the name was loaded from; for a module_utils that puts another module in
                # its place (distro), the installed file by the name, which is what ran.
                candidates = [origin] if origin and origin.endswith(f"/{member}") else []
                candidates.append(os.path.join(root, member))
                installed = next((path for path in candidates if os.path.isfile(path)), None)
                files[member] = None
                if installed is None:
                    continue
                with open(installed, "rb") as f:
                    data = f.read()
                files[member] = _sha256(data)
                deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
                deflated[member] = _sha256(deflate.compress(data) + deflate.flush())
                if member.endswith("/__init__.py") and origin \
                        and list(getattr(module, "__path__", ())) == [os.path.dirname(origin)]:
                    packages[name] = member.rpartition("/")[0]
        return cls(files, packages, deflated)

    def differences(self, payload: Archive) -> list[str]:
        """The payload's files that a preloaded module stands in for but is not."""
        return sorted(member for member, digest in self.files.items()
                      if member in payload.names and not self._same(payload, member, digest))

    def _same(self, payload: Archive, member: str, digest: str | None) -> bool:
        if digest is None:
            return False
        with contextlib.suppress(zipfile.BadZipFile, KeyError, struct.error):
            method, data = payload.stored(member)
            proof = digest if method == zipfile.ZIP_STORED else self.deflated.get(member)
            if method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) and _sha256(data) == proof:
                return True
        return _sha256(payload.zip.read(member)) == digest

    def enter(self, path: str) -> bool:
        """Make this interpreter's ``ansible`` what a fresh one has with payload `path` first on sys.path.

        Call it with the payload first on sys.path and nothing imported from it yet. True: the
        preloaded modules stay, within the payload's packages. False: every preloaded ``ansible``
        module was dropped; the next import of one imports it from the payload.
        """
        try:
            payload = archive(path)
        except (OSError, zipfile.BadZipFile):
            self.drop()
            return False
        if self.differences(payload):
            self.drop()
            return False
        for name in PAYLOAD_PACKAGES:
            module = sys.modules.get(name)
            parent = name.rpartition(".")[0]
            search = sys.path if not parent else list(getattr(sys.modules.get(parent), "__path__", []))
            spec = importlib.machinery.PathFinder.find_spec(name, search)
            if module is None or spec is None or spec.loader is None or spec.origin == getattr(module, "__file__", ""):
                continue
            # The payload's package, run in the preloaded module: its submodules stay its attributes.
            module.__spec__ = spec
            module.__loader__ = spec.loader
            module.__file__ = spec.origin
            module.__path__ = list(spec.submodule_search_locations or [])
            spec.loader.exec_module(module)
        for name, folder in self.packages.items():
            package = sys.modules.get(name)
            if package is not None and f"{folder}/__init__.py" in payload.names:
                package.__path__ = [f"{path}/{folder}"]
        return True

    @staticmethod
    def drop() -> None:
        """Forget every imported ``ansible`` module, as if none had been imported."""
        for name in _ansible_modules():
            del sys.modules[name]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

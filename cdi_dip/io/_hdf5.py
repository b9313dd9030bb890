"""Open an HDF5 input and follow its links one at a time, checking each.

h5py follows soft links, external links (to other files), virtual-dataset
sources and external raw storage wherever they point: a crafted file can make
a reader copy ``/etc/passwd`` into a result, block on a named pipe, or loop
until ``RuntimeError: too many links``. :class:`Hdf5Input` resolves paths
itself instead:

- soft links are followed with a hop limit (:data:`MAX_LINK_HOPS`), so a loop
  is one clear error;
- external links are followed only to regular files inside the input file's
  folder (or anywhere with ``allow_external``), and a missing target is an
  error naming the link, not a silently absent dataset;
- :meth:`Hdf5Input.check_storage` refuses external raw storage, and
  virtual-dataset sources outside the folder or missing, before any read.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

import h5py

from ..errors import InvalidInputError
from ._safety import require_regular_file

MAX_LINK_HOPS = 16
"""Soft and external links followed for one path at most (HDF5's own default limit)."""

ALLOW_HINT = "pass --allow-external-links if you trust them"
_H5_ERRORS = (KeyError, RuntimeError, OSError, ValueError, TypeError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Hdf5Input:
    """An HDF5 file open read-only, with the files its external links lead to.

    Parameters
    ----------
    path : pathlib.Path
        The input file (a regular file).
    allow_external : bool
        Follow external links, virtual-dataset sources and external raw
        storage outside the file's folder too.

    Raises
    ------
    InvalidInputError
        The file cannot be opened as HDF5.
    """

    def __init__(self, path: Path, *, allow_external: bool = False):
        self.path = Path(path)
        self.folder = self.path.absolute().parent.resolve()  # where the input appears, symbolic links resolved
        self.allow_external = allow_external
        self.file = self._open(self.path)
        self._linked: dict[Path, h5py.File] = {}

    @staticmethod
    def _open(path: Path) -> h5py.File:
        try:
            return h5py.File(path, "r", locking=False)
        except OSError as exc:
            raise InvalidInputError(
                f"{path}: cannot open as HDF5 ({_first_line(exc)}); the file may be truncated or corrupt"
            ) from None

    def __enter__(self) -> "Hdf5Input":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file and every file its external links opened."""
        for linked in self._linked.values():
            linked.close()
        self._linked.clear()
        self.file.close()

    # ------------------------------------------------------------------ paths

    def get(self, key: str) -> h5py.Group | h5py.Dataset | None:
        """The object at ``key`` (absolute, or relative to the root), or None when no link has that name.

        Raises
        ------
        InvalidInputError
            A link on the way is broken, loops, or leads outside the folder
            (without ``allow_external``).
        """
        return self._walk(self.file, key, [0])

    def _walk(self, start: h5py.Group, key: str, hops: list[int]) -> h5py.Group | h5py.Dataset | None:
        node: h5py.Group | h5py.Dataset = start.file["/"] if key.startswith("/") else start
        for name in (part for part in key.split("/") if part not in ("", ".")):
            if not isinstance(node, h5py.Group):
                return None
            node = self._step(node, name, hops)
            if node is None:
                return None
        return node

    def _step(self, group: h5py.Group, name: str, hops: list[int]) -> h5py.Group | h5py.Dataset | None:
        where = f"{group.file.filename}:{posixpath.join(group.name or '/', name)}"
        try:
            link = group.get(name, getlink=True)
        except _H5_ERRORS as exc:
            raise InvalidInputError(f"{where}: cannot read the link ({_first_line(exc)}); the file may be corrupt") from None
        if link is None:
            return None
        if isinstance(link, h5py.HardLink):
            return self._open_child(group, name, where)
        hops[0] += 1
        if hops[0] > MAX_LINK_HOPS:
            raise InvalidInputError(
                f"{where}: the links form a loop (more than {MAX_LINK_HOPS} in a row); "
                "fix the link in the file or name the dataset itself as file.h5:/path"
            )
        if isinstance(link, h5py.SoftLink):
            node = self._walk(group, link.path, hops)
            if node is None:
                raise InvalidInputError(
                    f"{where} is a broken link to {link.path}, which does not exist; "
                    "fix the link in the file or name the dataset itself as file.h5:/path"
                )
            return node
        if isinstance(link, h5py.ExternalLink):
            return self._follow_external(group, name, link, where, hops)
        raise InvalidInputError(f"{where}: unsupported link type {type(link).__name__}; name another dataset")

    def _open_child(self, group: h5py.Group, name: str, where: str) -> h5py.Group | h5py.Dataset:
        try:
            return group[name]
        except _H5_ERRORS as exc:
            raise InvalidInputError(f"{where}: cannot open ({_first_line(exc)}); the file may be truncated or corrupt") from None

    # ------------------------------------------------------------------ other files

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.folder)

    def _beside(self, holder: str, name: str) -> Path:
        """A file name as HDF5 first looks for it: as given if absolute, else beside the file holding the link."""
        target = Path(name)
        return target if target.is_absolute() else Path(holder).absolute().parent / target

    def _follow_external(self, group: h5py.Group, name: str, link: h5py.ExternalLink, where: str,
                         hops: list[int]) -> h5py.Group | h5py.Dataset:
        target = self._beside(group.file.filename, link.filename)
        if not self.allow_external and not self._inside(target):
            raise InvalidInputError(
                f"{where} is an external link to {link.filename}, outside the folder {self.folder}; "
                f"copy that file into the folder, or {ALLOW_HINT}"
            )
        if not target.exists():
            if self.allow_external:  # HDF5's own search (HDF5_EXT_PREFIX, working folder) may find it
                return self._open_child(group, name, where)
            raise InvalidInputError(
                f"{where} is a broken external link: {link.filename} is not in {target.parent}; "
                f"put that file back beside {self.path.name} or remove the link"
            )
        require_regular_file(target)
        node = self._walk(self._linked_file(target), link.path, hops)
        if node is None:
            raise InvalidInputError(
                f"{where} is a broken external link: {link.filename} has no {link.path}; "
                "fix the link or name the dataset itself as file.h5:/path"
            )
        return node

    def _linked_file(self, target: Path) -> h5py.File:
        key = target.resolve()
        if key not in self._linked:
            self._linked[key] = self._open(target)
        return self._linked[key]

    def check_storage(self, dataset: h5py.Dataset, where: str) -> None:
        """Refuse external raw storage, and virtual-dataset sources outside the folder or missing.

        Raises
        ------
        InvalidInputError
            Before any value is read.
        """
        if self.allow_external:
            return
        try:
            external = dataset.external
            sources = dataset.virtual_sources() if dataset.is_virtual else []
        except _H5_ERRORS as exc:
            raise InvalidInputError(f"{where}: cannot read the dataset's layout ({_first_line(exc)}); the file may be corrupt") from None
        if external:
            names = ", ".join(sorted({str(entry[0]) for entry in external}))
            raise InvalidInputError(
                f"{where}: the values are stored outside the HDF5 file, in {names}; reading them is refused, "
                f"{ALLOW_HINT}"
            )
        for source in sources:
            if source.file_name != ".":
                self._check_source(source.file_name, dataset.file.filename, where)

    def _check_source(self, name: str, holder: str, where: str) -> None:
        if "%" in name:
            raise InvalidInputError(f"{where}: a virtual dataset with source files named by a pattern ({name}); {ALLOW_HINT}")
        target = self._beside(holder, name)
        if not self._inside(target):
            raise InvalidInputError(
                f"{where}: a virtual dataset reading {name}, outside the folder {self.folder}; "
                f"copy that file into the folder, or {ALLOW_HINT}"
            )
        if not target.exists():
            raise InvalidInputError(
                f"{where}: a virtual dataset whose source {name} is missing (HDF5 would fill its frames with "
                f"zeros); put that file back beside {self.path.name}"
            )
        require_regular_file(target)

"""The published versions of the contracts, and the installed ones, as descriptor sets.

`make publish-protos` keeps every published image as protos/published/<n>.binpb;
a wheel ships them beside this module (published/), a clone has them in its
protos/ folder. Without either (an installation that carries neither), there
is no published version: the changelog then lists the installed contracts only.
"""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf.descriptor_pb2 import FileDescriptorProto, FileDescriptorSet

from deptmesh.sidecar.contracts import Contracts

__all__ = ["installed_image", "published_images"]

_IMAGE = re.compile(r"(?P<number>[1-9][0-9]*)\.binpb")
_FOLDERS = (
    Path(__file__).with_name("published"),
    Path(__file__).resolve().parents[4] / "protos" / "published",
)


def published_images(folders: tuple[Path, ...] = _FOLDERS) -> list[FileDescriptorSet]:
    """Every published image, oldest first, from the first of `folders` that holds any."""
    for folder in folders:
        numbered = sorted(
            (int(found["number"]), path)
            for path in (folder.iterdir() if folder.is_dir() else ())
            if (found := _IMAGE.fullmatch(path.name)) is not None
        )
        if numbered:
            return [FileDescriptorSet.FromString(path.read_bytes()) for _, path in numbered]
    return []


def installed_image(contracts: Contracts) -> FileDescriptorSet:
    """The installed contract files as one descriptor set."""
    image = FileDescriptorSet()
    for file in contracts.files:
        proto = FileDescriptorProto()
        file.CopyToProto(proto)
        image.file.append(proto)
    return image

"""The changelog: what changed from one version of the contracts to the next."""

from __future__ import annotations

from google.protobuf.descriptor_pb2 import FileDescriptorProto, FileDescriptorSet

from deptmesh.sidecar.reference.changelog import ContractChange, changelog, contract_changes


def _image(*, deprecated_field: bool = False, with_enum: bool = True) -> FileDescriptorSet:
    file = FileDescriptorProto(name="deptmesh/shop/v1/shop.proto", package="deptmesh.shop.v1")
    service = file.service.add(name="ShopService")
    service.method.add(name="GetItem", input_type=".deptmesh.shop.v1.Item")
    message = file.message_type.add(name="Item")
    message.field.add(name="item_id", number=1).options.deprecated = deprecated_field
    if with_enum:
        enum = file.enum_type.add(name="Colour")
        enum.value.add(name="COLOUR_UNSPECIFIED", number=0)
    well_known = FileDescriptorProto(name="google/protobuf/empty.proto", package="google.protobuf")
    well_known.message_type.add(name="Empty")
    return FileDescriptorSet(file=[file, well_known])


class TestContractChanges:
    def test_deprecation_and_removal_are_listed_by_full_name(self):
        """A field marked deprecated and an enum removed with its value are listed; the
        well-known types imported are not part of the contract."""
        before, after = _image(), _image(deprecated_field=True, with_enum=False)
        assert contract_changes(before, after) == (
            ContractChange("enum", "deptmesh.shop.v1.Colour", "removed"),
            ContractChange("enum value", "deptmesh.shop.v1.Colour.COLOUR_UNSPECIFIED", "removed"),
            ContractChange("field", "deptmesh.shop.v1.Item.item_id", "deprecated"),
        )

    def test_unchanged_contracts_have_no_unpublished_release(self):
        """When the installed contracts are the last published ones, the newest entry is
        that version, its first release listing everything as added."""
        releases = changelog([_image()], _image())
        assert [release.title for release in releases] == ["Version 1"]
        assert {change.change for change in releases[0].changes} == {"added"}
        assert (
            ContractChange("method", "deptmesh.shop.v1.ShopService.GetItem", "added")
            in releases[0].changes
        )

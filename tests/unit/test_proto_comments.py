"""Comments read from .proto sources, keyed as descriptors name things."""

from __future__ import annotations

from deptmesh.sidecar.contract_comments import comments_of, parse_comments
from deptmesh.sidecar.contracts import Contracts

SOURCE = """syntax = "proto3";

package acme.v1;

// Detached: a blank line follows.

// A thing.
message Thing {
  // Its name.
  string name = 1 [(acme.v1.label) = "a // b"];
  int32 size = 2; // How big.
  // Nested.
  message Part {
    // The part's weight.
    map<string, int64> weights = 1;
  }
  // One or the other.
  oneof choice {
    // First.
    string first = 3;
  }
  reserved 4;
}

// How things are.
enum State {
  // Unknown.
  STATE_UNSPECIFIED = 0;
}

service Things {
  // Gets a thing.
  rpc Get(Thing) returns (Thing) {
    option idempotency_level = NO_SIDE_EFFECTS;
  }
  rpc Put(Thing) returns (Thing);
}
"""


class TestParseComments:
    def test_every_kind_of_declaration_is_keyed_by_its_full_name(self):
        """Messages, fields (also in a oneof), nested messages, enums and their values,
        and rpcs; a trailing comment counts when there is no leading one; a comment
        separated by a blank line describes nothing; `//` in a string is not a comment."""
        assert parse_comments(SOURCE) == {
            "acme.v1.Thing": "A thing.",
            "acme.v1.Thing.name": "Its name.",
            "acme.v1.Thing.size": "How big.",
            "acme.v1.Thing.Part": "Nested.",
            "acme.v1.Thing.Part.weights": "The part's weight.",
            "acme.v1.Thing.choice": "One or the other.",
            "acme.v1.Thing.first": "First.",
            "acme.v1.State": "How things are.",
            "acme.v1.State.STATE_UNSPECIFIED": "Unknown.",
            "acme.v1.Things.Get": "Gets a thing.",
        }

    def test_every_committed_contract_element_has_its_comment_found(self):
        """Each message, field, enum, value, service and rpc of the installed contracts
        (all commented in protos/) has a comment: the reader keeps up with buf format."""
        missing = []
        for file in Contracts.installed().files:
            comments = comments_of(file)
            names = []
            for message in file.message_types_by_name.values():
                names += [message.full_name, *(field.full_name for field in message.fields)]
            for enum in file.enum_types_by_name.values():
                names += [enum.full_name, *(f"{enum.full_name}.{v.name}" for v in enum.values)]
            for service in file.services_by_name.values():
                names += [service.full_name, *(method.full_name for method in service.methods)]
            missing += [name for name in names if not comments.get(name)]
        assert missing == []

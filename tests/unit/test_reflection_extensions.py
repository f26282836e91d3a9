"""Reflection of what Herald's own protos lack, from a file made up for the test: a nested
message, a oneof, and extensions, looked up by name and by (type, number)."""

from __future__ import annotations

import grpc
import grpc.aio
from google.protobuf import descriptor_pb2, text_format
from grpc_reflection.v1alpha import reflection_pb2_grpc

from herald.rpc.reflection import SERVICE_NAME, AsyncReflectionServicer
from herald.rpc.reflection_index import build_index, documented_files, gather_files
from tests.reflection_support import Request, ask, comments, files_of, reflection_stub, run, symbol

NESTED = """
name: "herald/testing/nested.proto"
package: "herald.testing"
dependency: "google/protobuf/descriptor.proto"
message_type {
  name: "Outer"
  field { name: "inner" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".herald.testing.Outer.Inner" oneof_index: 0 }
  nested_type { name: "Inner"
                field { name: "depth" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 } }
  oneof_decl { name: "choice" }
  extension_range { start: 100 end: 200 }
  extension { name: "tag" number: 150 label: LABEL_OPTIONAL type: TYPE_INT32
              extendee: ".herald.testing.Outer" }
}
extension { name: "note" number: 50001 label: LABEL_OPTIONAL type: TYPE_STRING
            extendee: ".google.protobuf.MessageOptions" }
extension { name: "rank" number: 101 label: LABEL_OPTIONAL type: TYPE_INT32
            extendee: ".herald.testing.Outer" }
source_code_info { location { path: [4, 0, 3, 0] span: [9, 2, 11, 3]
                              leading_comments: " The inner part, documented.\\n" } }
"""


def test_nested_messages_oneofs_and_extensions_resolve() -> None:
    nested = text_format.Parse(NESTED, descriptor_pb2.FileDescriptorProto())
    files = gather_files([nested.name], {nested.name: nested, **documented_files()})
    index = build_index(files)

    def add(server: grpc.aio.Server) -> None:
        servicer = AsyncReflectionServicer(index, [SERVICE_NAME])
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]

    def extension(type_name: str, number: int) -> Request:
        return Request(
            file_containing_extension={"containing_type": type_name, "extension_number": number}
        )

    async def test() -> None:
        async with reflection_stub(add) as stub:
            answers = await ask(
                stub,
                [
                    symbol("herald.testing.Outer.Inner"),
                    symbol("herald.testing.Outer.Inner.depth"),
                    symbol("herald.testing.Outer.choice"),
                    symbol("herald.testing.Outer.tag"),
                    symbol("herald.testing.note"),
                    extension("google.protobuf.MessageOptions", 50001),
                    extension("herald.testing.Outer", 150),
                    extension("herald.testing.Outer", 101),
                ],
            )
            numbers, unextended, missing = await ask(
                stub,
                [
                    Request(all_extension_numbers_of_type="herald.testing.Outer"),
                    Request(all_extension_numbers_of_type="herald.testing.Outer.Inner"),
                    extension("herald.testing.Outer", 102),
                ],
            )
        for answer in answers:
            assert files_of(answer)[0].name == nested.name
        assert [f.name for f in files_of(answers[0])] == [
            nested.name,
            "google/protobuf/descriptor.proto",
        ]
        assert "The inner part, documented." in comments(files_of(answers[0])[0])
        assert numbers.all_extension_numbers_response.base_type_name == "herald.testing.Outer"
        assert list(numbers.all_extension_numbers_response.extension_number) == [101, 150]
        assert list(unextended.all_extension_numbers_response.extension_number) == []
        assert unextended.WhichOneof("message_response") == "all_extension_numbers_response"
        assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]

    run(test)

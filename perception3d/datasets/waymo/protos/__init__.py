"""The Waymo Open Dataset messages we use, loaded from the ``.proto`` files beside this module through the
protobuf runtime (no ``protoc``, no generated ``*_pb2`` modules, no TensorFlow).

``messages()`` parses ``label.proto``, ``dataset.proto`` and ``metrics.proto`` with a small parser for the
proto2 subset they use (messages, nested messages, enums, ``optional`` / ``repeated`` / ``required`` fields,
``[packed = true]``, ``[default = ...]``, ``[deprecated = true]``, ``import``), builds
``descriptor_pb2.FileDescriptorProto``\\ s, adds them to a private ``DescriptorPool`` (so an installed
``waymo_open_dataset`` package cannot clash with ours) and returns the message classes::

    m = messages()
    frame = m.Frame.FromString(record)
    objects = m.Objects(); o = objects.objects.add(); o.object.type = m.Label.TYPE_VEHICLE

Field numbers are the dataset's published ones, so real files parse; fields we do not declare are kept as
unknown fields (re-serialized unchanged). ``google.protobuf`` is imported only when ``messages()`` is called.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from types import SimpleNamespace

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILES = ("label.proto", "dataset.proto", "metrics.proto")  # dependency order
PACKAGE = "waymo.open_dataset"

# message classes exposed as attributes of messages() (nested ones are reached through their parent, e.g.
# Label.Box, Context.Stats)
TOP_LEVEL = ("Label", "Polygon2dProto", "MatrixShape", "MatrixFloat", "MatrixInt32", "CameraName", "LaserName",
             "Transform", "Velocity", "CameraCalibration", "LaserCalibration", "Context", "RangeImage",
             "CameraImage", "CameraLabels", "Laser", "Frame", "Object", "NoLabelZoneObject", "Objects")

_SCALARS = {  # proto type name -> FieldDescriptorProto.Type enum name
    "double": "TYPE_DOUBLE", "float": "TYPE_FLOAT", "int64": "TYPE_INT64", "uint64": "TYPE_UINT64",
    "int32": "TYPE_INT32", "fixed64": "TYPE_FIXED64", "fixed32": "TYPE_FIXED32", "bool": "TYPE_BOOL",
    "string": "TYPE_STRING", "bytes": "TYPE_BYTES", "uint32": "TYPE_UINT32", "sfixed32": "TYPE_SFIXED32",
    "sfixed64": "TYPE_SFIXED64", "sint32": "TYPE_SINT32", "sint64": "TYPE_SINT64",
}
_LABELS = {"optional": "LABEL_OPTIONAL", "repeated": "LABEL_REPEATED", "required": "LABEL_REQUIRED"}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|nan)(?![\w.]))
  | (?P<ident>\.?[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)
  | (?P<punct>[{}\[\]();=,<>])
""", re.VERBOSE | re.DOTALL)


class ProtoSyntaxError(ValueError):
    """A ``.proto`` file uses syntax outside the supported subset (message names the file and line)."""


def tokenize(text: str, filename: str = "<proto>") -> list[tuple[str, str, int]]:
    """``(kind, value, line)`` tokens of a ``.proto`` text, comments and whitespace dropped."""
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ProtoSyntaxError(f"{filename}:{line}: unexpected character {text[pos]!r}")
        kind, value = m.lastgroup, m.group()
        if kind not in ("space", "comment"):
            tokens.append((kind, value, line))
        line += value.count("\n")
        pos = m.end()
    return tokens


class _Parser:
    """Recursive-descent parser of one ``.proto`` file into a ``FileDescriptorProto``; type names are left as
    written and resolved later by :func:`_resolve` (they may refer to imported files)."""

    def __init__(self, text: str, filename: str):
        from google.protobuf import descriptor_pb2

        self.pb = descriptor_pb2
        self.filename = filename
        self.tokens = tokenize(text, filename)
        self.i = 0

    # token helpers
    def _line(self) -> int:
        return self.tokens[min(self.i, len(self.tokens) - 1)][2] if self.tokens else 1

    def error(self, msg: str) -> ProtoSyntaxError:
        return ProtoSyntaxError(f"{self.filename}:{self._line()}: {msg}")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def next(self, kind: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise self.error("unexpected end of file")
        k, v, _ = self.tokens[self.i]
        if kind is not None and k != kind:
            raise self.error(f"expected {kind}, got {v!r}")
        self.i += 1
        return v

    def expect(self, value: str) -> None:
        got = self.next()
        if got != value:
            self.i -= 1
            raise self.error(f"expected {value!r}, got {got!r}")

    # grammar
    def parse(self):
        fdp = self.pb.FileDescriptorProto(name=self.filename)
        while self.peek() is not None:
            word = self.next("ident")
            if word == "syntax":
                self.expect("=")
                syntax = _unquote(self.next("string"))
                if syntax != "proto2":
                    raise self.error(f"only proto2 is supported, got syntax {syntax!r}")
                fdp.syntax = "proto2"
                self.expect(";")
            elif word == "package":
                fdp.package = self.next("ident")
                self.expect(";")
            elif word == "import":
                fdp.dependency.append(_unquote(self.next("string")))
                self.expect(";")
            elif word == "message":
                self._message(fdp.message_type.add())
            elif word == "enum":
                self._enum(fdp.enum_type.add())
            else:
                raise self.error(f"unsupported top-level statement {word!r} (expected syntax, package, import, "
                                 f"message or enum)")
        return fdp

    def _message(self, msg) -> None:
        msg.name = self.next("ident")
        self.expect("{")
        while self.peek() != "}":
            if self.peek() is None:
                raise self.error(f"message {msg.name}: missing '}}'")
            word = self.next("ident")
            if word == "message":
                self._message(msg.nested_type.add())
            elif word == "enum":
                self._enum(msg.enum_type.add())
            elif word in _LABELS:
                self._field(msg, word)
            else:
                raise self.error(f"message {msg.name}: unsupported statement {word!r} (expected a field with "
                                 f"optional/repeated/required, a nested message or an enum)")
        self.expect("}")

    def _field(self, msg, label: str) -> None:
        f = msg.field.add()
        f.label = self.pb.FieldDescriptorProto.Label.Value(_LABELS[label])
        type_name = self.next("ident")
        f.name = self.next("ident")
        self.expect("=")
        f.number = _int(self.next("number"), self)
        if type_name in _SCALARS:
            f.type = self.pb.FieldDescriptorProto.Type.Value(_SCALARS[type_name])
        else:
            f.type_name = type_name  # resolved later (message or enum)
        if self.peek() == "[":
            self.next()
            while True:
                key = self.next("ident")
                self.expect("=")
                kind, value, _ = self.tokens[self.i]
                self.i += 1
                if key == "packed":
                    f.options.packed = _bool(value, self)
                elif key == "deprecated":
                    f.options.deprecated = _bool(value, self)
                elif key == "default":
                    f.default_value = _unquote(value) if kind == "string" else value
                else:
                    raise self.error(f"field {msg.name}.{f.name}: unsupported option {key!r}")
                if self.peek() == ",":
                    self.next()
                    continue
                self.expect("]")
                break
        self.expect(";")

    def _enum(self, enum) -> None:
        enum.name = self.next("ident")
        self.expect("{")
        while self.peek() != "}":
            if self.peek() is None:
                raise self.error(f"enum {enum.name}: missing '}}'")
            v = enum.value.add()
            v.name = self.next("ident")
            self.expect("=")
            v.number = _int(self.next("number"), self)
            self.expect(";")
        self.expect("}")
        if not enum.value:
            raise self.error(f"enum {enum.name} has no values")


def _unquote(token: str) -> str:
    return token[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")


def _int(token: str, parser: _Parser) -> int:
    try:
        return int(token, 0)
    except ValueError:
        raise parser.error(f"expected an integer, got {token!r}") from None


def _bool(token: str, parser: _Parser) -> bool:
    if token not in ("true", "false"):
        raise parser.error(f"expected true or false, got {token!r}")
    return token == "true"


def _symbols(fdp) -> dict[str, str]:
    """Full name (``.pkg.Msg.Nested``) -> ``"message"`` / ``"enum"`` for everything a file declares."""
    out = {}

    def walk(prefix, msgs, enums):
        for e in enums:
            out[f"{prefix}.{e.name}"] = "enum"
        for m in msgs:
            out[f"{prefix}.{m.name}"] = "message"
            walk(f"{prefix}.{m.name}", m.nested_type, m.enum_type)

    walk(f".{fdp.package}" if fdp.package else "", fdp.message_type, fdp.enum_type)
    return out


def _resolve(fdp, visible: dict[str, str]) -> None:
    """Rewrite each field's type name to its full name and set its type (message or enum), using the proto
    scoping rule: search the enclosing scopes from the innermost outwards."""
    from google.protobuf import descriptor_pb2

    FDP = descriptor_pb2.FieldDescriptorProto

    def walk(scope, msgs):
        for m in msgs:
            inner = f"{scope}.{m.name}"
            for f in m.field:
                if not f.type_name:
                    continue
                name = f.type_name
                if name.startswith("."):
                    candidates = [name]
                else:
                    parts = inner.split(".")
                    candidates = [".".join(parts[:k] + [name]) for k in range(len(parts), 0, -1)]
                    candidates = [c if c.startswith(".") else "." + c for c in candidates]
                full = next((c for c in candidates if c in visible), None)
                if full is None:
                    raise ProtoSyntaxError(f"{fdp.name}: field {inner[1:]}.{f.name}: unknown type {name!r} "
                                           f"(not declared in this file or its imports)")
                f.type_name = full
                f.type = FDP.TYPE_MESSAGE if visible[full] == "message" else FDP.TYPE_ENUM
            walk(inner, m.nested_type)

    walk(f".{fdp.package}" if fdp.package else "", fdp.message_type)


def parse_files(texts: dict[str, str]) -> list:
    """``{file name: .proto text}`` (in dependency order) -> resolved ``FileDescriptorProto``\\ s."""
    parsed, symbols = {}, {}
    for name, text in texts.items():
        fdp = _Parser(text, name).parse()
        for dep in fdp.dependency:
            if dep not in parsed:
                raise ProtoSyntaxError(f"{name}: import {dep!r} is not one of the files loaded before it "
                                       f"({sorted(parsed)})")
        symbols[name] = _symbols(fdp)
        visible = dict(symbols[name])
        for dep in fdp.dependency:
            visible.update(symbols[dep])
        _resolve(fdp, visible)
        parsed[name] = fdp
    return list(parsed.values())


@functools.lru_cache(maxsize=None)
def messages() -> SimpleNamespace:
    """The message classes (``Frame``, ``Label``, ``Objects``, ``Object``, ``MatrixFloat``, ...), built once per
    process from the ``.proto`` files of this package in a private descriptor pool."""
    from google.protobuf import descriptor_pool, message_factory

    texts = {}
    for name in PROTO_FILES:
        path = PROTO_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"Waymo proto declaration missing: {path} (package data not installed?)")
        texts[name] = path.read_text()
    pool = descriptor_pool.DescriptorPool()
    for fdp in parse_files(texts):
        pool.AddSerializedFile(fdp.SerializeToString())
    classes = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
               for name in TOP_LEVEL}
    return SimpleNamespace(pool=pool, **classes)

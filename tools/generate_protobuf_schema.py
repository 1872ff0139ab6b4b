"""Generate pyk8s/api/protobuf_schema.json: the protobuf messages of the served kinds.

pyk8s/api/protobuf.py decodes kubectl's protobuf request bodies with this data. For every message
reachable from the served kinds (pyk8s.api.kinds.REGISTRY) and the request kinds below it records
each field's number, type and wire type, repeated/map shape and message references, read from the
upstream `generated.proto` files, plus what the Go struct tags say about the JSON form, read from
the Go sources next to them: the JSON name, `omitempty`, pointer-ness and inlined embedding (the
`protobuf:"..."` tag of a Go field carries the proto field number, which joins the two).

Run it from the repository root against bare clones (or fetched mirrors) of kubernetes/api and
kubernetes/apimachinery; it reads them with `git show`, so nothing is checked out or copied:

    git clone --bare https://github.com/kubernetes/api /tmp/api.git
    git clone --bare https://github.com/kubernetes/apimachinery /tmp/apimachinery.git
    .venv/bin/python tools/generate_protobuf_schema.py --api /tmp/api.git \\
        --apimachinery /tmp/apimachinery.git --ref v0.32.4

Output format: {"sources": ..., "kinds": {apiVersion: {kind: message}}, "any_version": {kind: message},
"messages": {message: {"fields": [field, ...], "special": how (only for types with their own JSON
form)}}}, a field being {"number", "name" (JSON), "go" (Go field name, for error messages),
"type" (proto scalar, "message" or "map"), "wire", "message"/"key"/"value" (references), and the
flags "repeated", "pointer", "omitempty", "inline" when true}.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyk8s.api.kinds import REGISTRY  # noqa: E402

OUTPUT = ROOT / "pyk8s" / "api" / "protobuf_schema.json"

META = "k8s.io.apimachinery.pkg.apis.meta.v1."
# Go types whose JSON form is not their proto fields (they have their own MarshalJSON).
SPECIAL = {
    META + "Time": "time",
    META + "MicroTime": "microtime",
    META + "Duration": "duration",
    META + "FieldsV1": "fieldsv1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "rawextension",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "intorstring",
}
# Request bodies that are not stored kinds: (apiVersion, kind).
REQUEST_KINDS = [
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authentication.k8s.io/v1", "TokenReview"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("policy/v1", "Eviction"),
    ("autoscaling/v1", "Scale"),
    ("v1", "Binding"),
]
# Registered in every group version (metav1.AddToGroupVersion): matched by kind alone.
ANY_VERSION = {"DeleteOptions": META + "DeleteOptions"}
SCALARS_WIRE = {"string": 2, "bytes": 2, "bool": 0, "int32": 0, "int64": 0, "uint32": 0, "uint64": 0,
                "sint32": 0, "sint64": 0, "fixed32": 5, "sfixed32": 5, "float": 5,
                "fixed64": 1, "sfixed64": 1, "double": 1}


class Repo:
    def __init__(self, git_dir: str, ref: str, prefix: str):
        self.git_dir, self.ref, self.prefix = git_dir, ref, prefix
        self.commit = self._git("rev-parse", f"{ref}^{{commit}}").strip()
        self.files = self._git("ls-tree", "-r", "--name-only", self.commit).split()

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "--git-dir", self.git_dir, *args], check=True, capture_output=True,
                              text=True).stdout

    def read(self, path: str) -> str:
        return self._git("show", f"{self.commit}:{path}")


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


FIELD = re.compile(r"(optional|repeated|required)?\s*(map<\s*(\S+?)\s*,\s*(\S+?)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)")


def parse_proto(text: str) -> dict[str, list[dict]]:
    """message full name -> proto fields (no nested messages or enums occur in these files)."""
    text = strip_comments(text)
    package = re.search(r"^package ([\w.]+);", text, re.M).group(1)

    def resolve(name: str) -> str:
        if name in SCALARS_WIRE:
            return name
        return name[1:] if name.startswith(".") else f"{package}.{name}"

    messages = {}
    for name, body in re.findall(r"^message (\w+) \{(.*?)^\}", text, re.M | re.S):
        fields = []
        for label, type_, key, value, field_name, number in FIELD.findall(body):
            field = {"number": int(number), "proto_name": field_name}
            if key:
                field.update(type="map", key=resolve(key), value=resolve(value))
            elif type_ in SCALARS_WIRE:
                field["type"] = type_
            else:
                field.update(type="message", message=resolve(type_))
            if label == "repeated":
                field["repeated"] = True
            fields.append(field)
        messages[f"{package}.{name}"] = fields
    return messages


GO_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`", re.M)


def parse_go(text: str) -> tuple[dict[str, dict[int, dict]], set[str]]:
    """Go struct name -> proto number -> JSON facts; and the names of `type X []T` slice types."""
    text = strip_comments(text)
    structs = {}
    for name, body in re.findall(r"^type (\w+) struct \{(.*?)^\}", text, re.M | re.S):
        fields = {}
        for go_name, go_type, tags in GO_FIELD.findall(body):
            pb = re.search(r'protobuf:"(\w+),(\d+)', tags)
            if pb is None:
                continue
            json_tag = (re.search(r'json:"([^"]*)"', tags) or [None, ""])[1].split(",")
            embedded = not go_name
            go_name = go_name or go_type.lstrip("*").rpartition(".")[2]
            fields[int(pb.group(2))] = {
                "go": go_name,
                "name": json_tag[0] or ("" if embedded else go_name),
                "pointer": go_type.startswith("*"),
                "omitempty": "omitempty" in json_tag[1:],
                "inline": embedded and not json_tag[0],
            }
        structs[name] = fields
    return structs, set(re.findall(r"^type (\w+) \[\]", text, re.M))


def load(repos: list[Repo]) -> tuple[dict, dict, set]:
    protos, go_structs, slice_types = {}, {}, set()
    for repo in repos:
        for path in repo.files:
            if path.endswith("/generated.proto"):
                protos.update(parse_proto(repo.read(path)))
                directory = path.rpartition("/")[0]
                package = (repo.prefix + "/" + directory).replace("/", ".")
                for go_path in repo.files:
                    if (go_path.rpartition("/")[0] == directory and go_path.endswith(".go")
                            and not go_path.endswith(("_test.go", ".pb.go")) and "zz_generated" not in go_path):
                        structs, slices = parse_go(repo.read(go_path))
                        go_structs.update({f"{package}.{k}": v for k, v in structs.items()})
                        slice_types.update(f"{package}.{k}" for k in slices)
    return protos, go_structs, slice_types


def proto_package(api_version: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"k8s.io.api.{group.split('.')[0] if group else 'core'}.{version}"


def build(repos: list[Repo]) -> dict:
    protos, go_structs, slice_types = load(repos)
    kinds: dict[str, dict[str, str]] = {}
    roots = list(ANY_VERSION.values())
    for api_version, kind in [(k.api_version, k.kind) for k in REGISTRY.kinds] + REQUEST_KINDS:
        if api_version.startswith("apiextensions.k8s.io/"):
            continue  # its messages live in k8s.io/apiextensions-apiserver, which this tool does not read
        message = f"{proto_package(api_version)}.{kind}"
        if message not in protos:
            raise SystemExit(f"no message {message} for {api_version} {kind}")
        kinds.setdefault(api_version, {})[kind] = message
        roots.append(message)

    messages: dict[str, dict] = {}
    todo = roots + ["k8s.io.apimachinery.pkg.runtime.Unknown"]
    while todo:
        name = todo.pop()
        if name in messages:
            continue
        out: dict = {"fields": []}
        if name in SPECIAL:
            out["special"] = SPECIAL[name]
        elif name in slice_types:
            out["special"] = "list"  # type X []T: the JSON form is the list of `items`
        go_fields = go_structs.get(name)
        if go_fields is None and "special" not in out:
            raise SystemExit(f"no Go struct for {name}")
        for field in protos[name]:
            go = (go_fields or {}).get(field["number"])
            if go is None:
                go = {"go": field["proto_name"], "name": field["proto_name"]}
            elif go["name"] != field["proto_name"] and not go["inline"] and "special" not in out:
                print(f"note: {name}.{field['proto_name']} has JSON name {go['name']!r}", file=sys.stderr)
            entry = {"number": field["number"], "name": go["name"], "go": go["go"], "type": field["type"]}
            entry["wire"] = SCALARS_WIRE.get(field["type"], 2)
            for ref in ("message", "key", "value"):
                if ref in field:
                    entry[ref] = field[ref]
                    if field[ref] not in SCALARS_WIRE:
                        todo.append(field[ref])
            for flag in ("repeated", "pointer", "omitempty", "inline"):
                if field.get(flag) or go.get(flag):
                    entry[flag] = True
            out["fields"].append(entry)
        if go_fields is not None:  # Go declaration order, as Go's JSON encoder writes fields
            order = list(go_fields)
            out["fields"].sort(key=lambda f: order.index(f["number"]) if f["number"] in order else len(order))
        messages[name] = out

    sources = {repo.prefix: {"ref": repo.ref, "commit": repo.commit} for repo in repos}
    return {"generated_by": "tools/generate_protobuf_schema.py", "sources": sources, "kinds": kinds,
            "any_version": ANY_VERSION, "messages": dict(sorted(messages.items()))}


def dump(schema: dict) -> str:
    """JSON with one line per field, so that diffs of regenerated data stay readable."""
    compact = {key: value for key, value in schema.items() if key != "messages"}
    lines = json.dumps(compact, indent=1)[:-2].split("\n") if compact else ["{"]
    lines[-1] += ","
    lines.append(' "messages": {')
    for i, (name, message) in enumerate(schema["messages"].items()):
        head = {key: value for key, value in message.items() if key != "fields"}
        head_text = json.dumps(head)[1:-1]
        lines.append(f"  {json.dumps(name)}: {{{head_text + ', ' if head_text else ''}\"fields\": [")
        fields = [f"   {json.dumps(field)}" for field in message["fields"]]
        lines.append(",\n".join(fields))
        lines.append("  ]}" + ("," if i < len(schema["messages"]) - 1 else ""))
    lines.append(" }\n}\n")
    return "\n".join(line for line in lines if line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--api", required=True, help="git dir of kubernetes/api")
    parser.add_argument("--apimachinery", required=True, help="git dir of kubernetes/apimachinery")
    parser.add_argument("--ref", default="v0.32.4", help="tag or commit of both repositories")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    repos = [Repo(args.api, args.ref, "k8s.io/api"), Repo(args.apimachinery, args.ref, "k8s.io/apimachinery")]
    schema = build(repos)
    args.output.write_text(dump(schema))
    print(f"wrote {len(schema['messages'])} messages to {args.output}")


if __name__ == "__main__":
    main()

"""OpenAPI v3: the `/openapi/v3` index and one OpenAPI 3.0 document per served path.

Documents are laid out like kube-apiserver's: per group version every served operation of every
kind (namespaced and all-namespaces collections, items, subresources and the deprecated
`/watch/` paths), each carrying `x-kubernetes-action` and a single-object
`x-kubernetes-group-version-kind`, and in `components.schemas` every definition those reach,
converted from the JSON-Schema definitions of `pyk8s.api.schemas`. kubectl needs them for
`apply`/`create`/`replace` (a PATCH operation listing `fieldValidation` tells it the server
validates fields itself) and for `explain` (the schemas).

Besides "api/v1" and "apis/<group>/<version>", the index lists the discovery documents "api",
"apis", "apis/<group>" and "version", as kube-apiserver does.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from pyk8s.api import crd, schemas
from pyk8s.api.kinds import Kind, Registry, Subresource

_REF_PREFIX = "#/components/schemas/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_STATUS = _META + "Status"
_DELETE_OPTIONS = _META + "DeleteOptions"
_PATCH = _META + "Patch"
_WATCH_EVENT = _META + "WatchEvent"
_RESOURCE_LIST = _META + "APIResourceList"

# Resources whose registry answers DELETE with the deleted object rather than a Status
# (ReturnDeletedObject in their upstream storage), which their documents declare.
_DELETE_RETURNS_OBJECT = {
    ("", "pods"), ("", "podtemplates"), ("", "services"), ("", "serviceaccounts"), ("", "persistentvolumes"),
    ("", "persistentvolumeclaims"), ("", "resourcequotas"), ("storage.k8s.io", "storageclasses"),
}

_OBJECT_MEDIA = ("application/json", "application/vnd.kubernetes.protobuf", "application/yaml")
_STREAM_MEDIA = (
    "application/json", "application/json;stream=watch", "application/vnd.kubernetes.protobuf",
    "application/vnd.kubernetes.protobuf;stream=watch", "application/yaml",
)
_PATCH_MEDIA = (
    "application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_RESPONSE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}
_UNAUTHORIZED = {"description": "Unauthorized"}
_SECURITY_SCHEMES = {
    "BearerToken": {"description": "Bearer Token authentication", "in": "header", "name": "authorization",
                    "type": "apiKey"},
}
_INT_OR_STRING_SCHEMA = {
    "description": "IntOrString is a type that can hold an int32 or a string.",
    "format": "int-or-string",
    "oneOf": [{"type": "integer"}, {"type": "string"}],
}


# ---------------------------------------------------------------------------------------------
# Schemas: JSON-Schema definitions -> OpenAPI 3.0 component schemas.


def _convert(schema: dict, refs: set[str]) -> dict:
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            name = schemas.ref_name(value)
            refs.add(name)
            out["$ref"] = _REF_PREFIX + name
        elif key == "type":
            t = schemas.schema_type(schema)
            if t:
                out["type"] = t
        elif key == "additionalProperties":
            if isinstance(value, dict):  # `false` is the strict set's addition
                out[key] = _convert(value, refs)
        elif key == "items":
            out[key] = _convert(value, refs)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [_convert(s, refs) for s in value]
        elif key == "properties":
            props = {}
            for name, prop in value.items():
                converted = _convert(prop, refs)
                if name in ("apiVersion", "kind"):
                    converted.pop("enum", None)  # the strict set pins these; upstream does not
                props[name] = converted
            out[key] = props
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:
        # OpenAPI 3.0 ignores the siblings of a $ref; upstream wraps it so they count.
        out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
    return out


@cache
def _component(name: str) -> tuple[dict, frozenset[str]]:
    """A definition as a component schema, and the definitions it refers to."""
    if name == schemas.INT_OR_STRING:
        return _INT_OR_STRING_SCHEMA, frozenset()
    refs: set[str] = set()
    converted = _convert(schemas.definitions()[name], refs)
    return converted, frozenset(refs)


def _components(roots: set[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in out:
            continue
        schema, refs = _component(name)
        out[name] = schema
        pending.extend(refs - out.keys())
    return out


# ---------------------------------------------------------------------------------------------
# Operations.


def _param(name: str, where: str, type_: str, description: str) -> dict:
    param: dict[str, Any] = {"description": description, "in": where, "name": name,
                             "schema": {"type": type_, "uniqueItems": True}}
    if where == "path":
        param["required"] = True
    return param


def _delete_option(name: str, type_: str) -> dict:
    description = schemas.definitions()[_DELETE_OPTIONS]["properties"][name].get("description", "")
    return _param(name, "query", type_, description)


@cache
def _query_params() -> dict[str, dict]:
    q = "query"
    return {
        "pretty": _param("pretty", q, "string", "If 'true', then the output is pretty printed."),
        "dryRun": _delete_option("dryRun", "string"),
        "fieldManager": _param(
            "fieldManager", q, "string",
            "fieldManager is a name associated with the actor or entity that is making these changes."),
        # PATCH documents its fieldManager with the apply requirement; the key only selects the text.
        "fieldManager-patch": _param(
            "fieldManager", q, "string",
            "fieldManager is a name associated with the actor or entity that is making these changes. "
            "It is required for apply requests (application/apply-patch)."),
        "fieldValidation": _param(
            "fieldValidation", q, "string",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) "
            "containing unknown or duplicate fields. Valid values are: Ignore (drop them silently), Warn "
            "(drop them with a warning per field; the default) and Strict (fail the request with a "
            "BadRequest error listing them)."),
        "force": _param("force", q, "boolean",
                        "Force re-acquires conflicting fields owned by other managers in Apply requests. "
                        "It must be unset for non-apply patch requests."),
        "gracePeriodSeconds": _delete_option("gracePeriodSeconds", "integer"),
        "ignoreStoreReadErrorWithClusterBreakingPotential": _delete_option(
            "ignoreStoreReadErrorWithClusterBreakingPotential", "boolean"),
        "orphanDependents": _delete_option("orphanDependents", "boolean"),
        "propagationPolicy": _delete_option("propagationPolicy", "string"),
        "allowWatchBookmarks": _param("allowWatchBookmarks", q, "boolean",
                                      "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        "continue": _param("continue", q, "string",
                           "The continue token of a previous chunked list call, to retrieve the next chunk."),
        "fieldSelector": _param("fieldSelector", q, "string",
                                "A selector to restrict the list of returned objects by their fields."),
        "labelSelector": _param("labelSelector", q, "string",
                                "A selector to restrict the list of returned objects by their labels."),
        "limit": _param("limit", q, "integer", "The maximum number of objects a list call returns."),
        "resourceVersion": _param("resourceVersion", q, "string",
                                  "resourceVersion sets a constraint on what resource versions a request "
                                  "may be served from."),
        "resourceVersionMatch": _param("resourceVersionMatch", q, "string",
                                       "resourceVersionMatch determines how resourceVersion is applied to "
                                       "list calls."),
        "sendInitialEvents": _param("sendInitialEvents", q, "boolean",
                                    "With watch=true, start the watch stream with synthetic events for the "
                                    "current state, ended by a bookmark."),
        "timeoutSeconds": _param("timeoutSeconds", q, "integer", "Timeout for the list/watch call."),
        "watch": _param("watch", q, "boolean",
                        "Watch for changes to the described resources and return them as a stream of add, "
                        "update, and remove notifications."),
    }


_NAMESPACE_PARAM = _param("namespace", "path", "string",
                          "object name and auth scope, such as for teams and projects")
_PRETTY = ("pretty",)
_LIST = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
         "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
_WRITE = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMS = ("dryRun", "fieldManager-patch", "fieldValidation", "force")
_DELETE = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
           "orphanDependents", "propagationPolicy")
_DELETE_COLLECTION = _DELETE + ("continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
                                "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds")


def _params(names: tuple[str, ...], *path: dict) -> list[dict]:
    query = _query_params()
    return sorted([*path, *(query[n] for n in names)], key=lambda p: p["name"])


def _ref(name: str) -> dict:
    return {"$ref": _REF_PREFIX + name}


def _responses(schema: str, codes: tuple[str, ...], media: tuple[str, ...] = _OBJECT_MEDIA) -> dict:
    content = {m: {"schema": _ref(schema)} for m in media}
    out: dict[str, Any] = {code: {"content": content, "description": _RESPONSE_TEXT[code]} for code in codes}
    out["401"] = _UNAUTHORIZED
    return out


def _body(schema: str, media: tuple[str, ...] = ("*/*",), required: bool = True) -> dict:
    body: dict[str, Any] = {"content": {m: {"schema": _ref(schema)} for m in media}}
    if required:
        body["required"] = True
    return body


def _article(noun: str) -> str:
    """How upstream's operation descriptions article a kind: "a Pod", "an Event", "Endpoints"."""
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def _group_words(group: str) -> list[str]:
    return group.removesuffix(".k8s.io").split(".") if group else ["core"]


def _gv_op(group: str, version: str) -> str:
    """"rbac.authorization.k8s.io", "v1" -> "RbacAuthorizationV1" (operationId infix)."""
    return "".join(w[:1].upper() + w[1:] for w in _group_words(group)) + version[:1].upper() + version[1:]


def _group_tag(group: str) -> str:
    """"rbac.authorization.k8s.io" -> "rbacAuthorization" (operation tag)."""
    first, *rest = _group_words(group)
    return first + "".join(w[:1].upper() + w[1:] for w in rest)


class _GroupVersionDocument:
    """Builds the paths of one group version, collecting the schemas they refer to."""

    def __init__(self, group: str, version: str) -> None:
        self.prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        self.tag = f"{_group_tag(group)}_{version}"
        self.gv = _gv_op(group, version)
        self.roots = {_STATUS, _DELETE_OPTIONS, _PATCH, _WATCH_EVENT, _RESOURCE_LIST}
        self.custom: dict[str, dict] = {}  # component schemas of custom resources
        self.paths: dict[str, dict] = {self.prefix + "/": {"get": {
            "description": "get available resources",
            "operationId": f"get{self.gv}APIResources",
            "responses": _responses(_RESOURCE_LIST, ("200",)),
            "tags": [self.tag],
        }}}

    def _custom_definitions(self, kind: Kind) -> tuple[str, str]:
        """A custom kind's schema (from its CRD) and its list's, as components of this document."""
        obj, lst = crd.definition_names(kind)
        self.custom[obj] = kind.custom.openapi_schema
        self.custom[lst] = crd.list_schema(kind.group, kind.version, kind.kind, kind.kind + "List")
        self.roots.update({_META + "ObjectMeta", _META + "ListMeta"})
        return obj, lst

    def _definition(self, group: str, version: str, kind: str) -> str:
        name = schemas.definition_for(group, version, kind)
        if name is None:
            raise LookupError(f"no v1.32 schema for {group}/{version} {kind}")
        self.roots.add(name)
        return name

    def _op(self, action: str, op_id: str, description: str, gvk: dict, **fields: Any) -> dict:
        return {"description": description, "operationId": op_id, **fields, "tags": [self.tag],
                "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}

    def _object_ops(self, verbs: set[str], op_id: str, subject: str, article: str, body: str,
                    gvk: dict) -> dict:
        """The operations on one object or subresource path.

        `subject` completes "read ..." ("the specified Pod", "status of the specified Pod") and
        `article` completes "create ..." ("a Pod", "binding of a Pod").
        """
        ops: dict[str, dict] = {}
        if "get" in verbs:
            ops["get"] = self._op("get", "read" + op_id, f"read {subject}", gvk,
                                  responses=_responses(body, ("200",)))
        if "create" in verbs:
            ops["post"] = self._op("post", "create" + op_id, f"create {article}", gvk,
                                   parameters=_params(_WRITE), requestBody=_body(body),
                                   responses=_responses(body, ("200", "201", "202")))
        if "update" in verbs:
            ops["put"] = self._op("put", "replace" + op_id, f"replace {subject}", gvk,
                                  parameters=_params(_WRITE), requestBody=_body(body),
                                  responses=_responses(body, ("200", "201")))
        if "patch" in verbs:
            ops["patch"] = self._op("patch", "patch" + op_id, f"partially update {subject}", gvk,
                                    parameters=_params(_PATCH_PARAMS),
                                    requestBody=_body(_PATCH, _PATCH_MEDIA),
                                    responses=_responses(body, ("200", "201")))
        return ops

    def add_kind(self, kind: Kind) -> None:
        k, gv, verbs = kind.kind, self.gv, set(kind.verbs)
        gvk = {"group": kind.group, "kind": k, "version": kind.version}
        if kind.custom is not None:
            obj, lst = self._custom_definitions(kind)
        else:
            obj = self._definition(kind.group, kind.version, k)
            # Create-only kinds (the reviews) have no List type.
            lst = self._definition(kind.group, kind.version, k + "List") if "list" in verbs else ""
        ns = "Namespaced" if kind.namespaced else ""
        scope = [_NAMESPACE_PARAM] if kind.namespaced else []
        name = _param("name", "path", "string", f"name of the {k}")
        collection = f"{self.prefix}{'/namespaces/{namespace}' if kind.namespaced else ''}/{kind.plural}"
        item = collection + "/{name}"

        ops: dict[str, dict] = {}
        if "list" in verbs:
            ops["get"] = self._op("list", f"list{gv}{ns}{k}", f"list or watch objects of kind {k}", gvk,
                                  parameters=_params(_LIST),
                                  responses=_responses(lst, ("200",), _STREAM_MEDIA))
        if "create" in verbs:
            ops["post"] = self._object_ops({"create"}, f"{gv}{ns}{k}", "", _article(k), obj, gvk)["post"]
        if "deletecollection" in verbs:
            ops["delete"] = self._op("deletecollection", f"delete{gv}Collection{ns}{k}",
                                     f"delete collection of {k}", gvk, parameters=_params(_DELETE_COLLECTION),
                                     requestBody=_body(_DELETE_OPTIONS, required=False),
                                     responses=_responses(_STATUS, ("200",)))
        if ops:
            self.paths[collection] = {**ops, "parameters": _params(_PRETTY, *scope)}

        ops = self._object_ops(verbs - {"create"}, f"{gv}{ns}{k}", f"the specified {k}", "", obj, gvk)
        if "delete" in verbs:
            deleted = obj if (kind.group, kind.plural) in _DELETE_RETURNS_OBJECT else _STATUS
            ops["delete"] = self._op("delete", f"delete{gv}{ns}{k}", f"delete {_article(k)}", gvk,
                                     parameters=_params(_DELETE),
                                     requestBody=_body(_DELETE_OPTIONS, required=False),
                                     responses=_responses(deleted, ("200", "202")))
        if ops:
            self.paths[item] = {**ops, "parameters": _params(_PRETTY, name, *scope)}

        for sub in kind.subresources:
            if sub.name in _CONNECT_SUBRESOURCES:
                self._add_connect(kind, sub, item, name, scope)
                continue
            sub_gvk = {"group": kind.group if sub.group is None else sub.group, "kind": sub.kind or k,
                       "version": sub.version or kind.version}
            body = obj if not sub.kind else self._definition(sub_gvk["group"], sub_gvk["version"], sub_gvk["kind"])
            op_id = f"{gv}{ns}{k}{sub.name[:1].upper()}{sub.name[1:]}"
            ops = self._object_ops(set(sub.verbs), op_id, f"{sub.name} of the specified {k}",
                                   f"{sub.name} of {_article(k)}", body, sub_gvk)
            if ops:
                self.paths[f"{item}/{sub.name}"] = {**ops, "parameters": _params(_PRETTY, name, *scope)}

        if kind.namespaced and "list" in verbs:
            self.paths[f"{self.prefix}/{kind.plural}"] = {
                "get": self._op("list", f"list{gv}{k}ForAllNamespaces", f"list or watch objects of kind {k}",
                                gvk, responses=_responses(lst, ("200",), _STREAM_MEDIA)),
                "parameters": _params(_LIST + _PRETTY),
            }
        if "watch" in verbs:
            self._add_watches(kind, gvk, scope, name)

    def _add_connect(self, kind: Kind, subresource: Subresource, item: str, name: dict, scope: list[dict]) -> None:
        """Subresources answered by a node or pod rather than the store (pods/log, exec, attach,
        portforward, proxy): upstream publishes them with a plain string response."""
        k, ns, gv = kind.kind, "Namespaced" if kind.namespaced else "", self.gv
        sub, verbs = subresource.name, subresource.verbs
        title = sub[:1].upper() + sub[1:]
        gvk = {"group": kind.group, "kind": subresource.kind or k, "version": kind.version}
        text = {"200": {"content": {"*/*": {"schema": {"type": "string"}}}, "description": "OK"}, "401": _UNAUTHORIZED}
        ops: dict[str, dict] = {}
        if sub == "log":
            ops["get"] = self._op("get", f"read{gv}{ns}{k}Log", f"read log of the specified {k}", gvk,
                                  responses=text)
        else:
            for verb in verbs:
                method = _CONNECT_METHODS[verb]
                ops[method] = self._op("connect", f"connect{gv}{method.capitalize()}{ns}{k}{title}",
                                       f"connect {method.upper()} requests to {sub} of {k}", gvk, responses=text)
        self.paths[f"{item}/{sub}"] = {**ops, "parameters": _params((), name, *scope)}

    def _add_watches(self, kind: Kind, gvk: dict, scope: list[dict], name: dict) -> None:
        """The deprecated `/watch/` paths, still served (and published) by v1.32."""
        k, ns = kind.kind, "Namespaced" if kind.namespaced else ""
        base = f"{self.prefix}/watch{'/namespaces/{namespace}' if kind.namespaced else ''}/{kind.plural}"
        events = _responses(_WATCH_EVENT, ("200",), _STREAM_MEDIA)
        watch_list = (f"watch individual changes to a list of {k}. deprecated: use the 'watch' parameter "
                      "with a list operation instead.")
        watch_one = (f"watch changes to an object of kind {k}. deprecated: use the 'watch' parameter with a "
                     "list operation instead, filtered to a single item with the 'fieldSelector' parameter.")
        self.paths[base] = {
            "get": self._op("watchlist", f"watch{self.gv}{ns}{k}List", watch_list, gvk, responses=events),
            "parameters": _params(_LIST + _PRETTY, *scope),
        }
        self.paths[base + "/{name}"] = {
            "get": self._op("watch", f"watch{self.gv}{ns}{k}", watch_one, gvk, responses=events),
            "parameters": _params(_LIST + _PRETTY, name, *scope),
        }
        if kind.namespaced:
            self.paths[f"{self.prefix}/watch/{kind.plural}"] = {
                "get": self._op("watchlist", f"watch{self.gv}{k}ListForAllNamespaces", watch_list, gvk,
                                responses=events),
                "parameters": _params(_LIST + _PRETTY),
            }


def _document(paths: dict[str, dict], roots: set[str], custom: dict[str, dict] | None = None) -> dict:
    return {
        "components": {"schemas": {**_components(roots), **(custom or {})}, "securitySchemes": _SECURITY_SCHEMES},
        "info": {"title": "Kubernetes", "version": schemas.KUBERNETES_VERSION},
        "openapi": "3.0.0",
        "paths": paths,
    }


def _discovery_document(path: str, op_id: str, description: str, tag: str, schema: str,
                        media: tuple[str, ...] = _OBJECT_MEDIA) -> dict:
    paths = {path: {"get": {"description": description, "operationId": op_id,
                            "responses": _responses(schema, ("200",), media), "tags": [tag]}}}
    return _document(paths, {schema})


_CONNECT_SUBRESOURCES = ("log", "exec", "attach", "portforward", "proxy")
_CONNECT_METHODS = {"get": "get", "create": "post", "update": "put", "patch": "patch", "delete": "delete"}


class OpenAPIDocs:
    """The `/openapi/v3` index and documents of a registry's kinds, built on first request."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._documents: dict[str, bytes] = {}
        self._hashes: dict[str, str] = {}
        self._index: bytes | None = None
        self._builders = self._paths_of(registry)

    @staticmethod
    def _paths_of(registry: Registry) -> dict[str, tuple[str, ...]]:
        builders: dict[str, tuple[str, ...]] = {"api": ("api",), "apis": ("apis",), "version": ("version",)}
        for group, versions in registry.group_versions().items():
            if group:
                builders[f"apis/{group}"] = ("group", group)
            for version in versions:
                builders[f"apis/{group}/{version}" if group else f"api/{version}"] = ("gv", group, version)
        return builders

    def refresh(self, group: str) -> None:
        """The registry changed in `group` (a CRD came, changed or went): its documents are rebuilt
        on their next request, and the index lists the current set."""
        self._builders = self._paths_of(self._registry)
        if group:
            stale = [p for p in self._documents if p == f"apis/{group}" or p.startswith(f"apis/{group}/")]
            for path in stale:
                self._documents.pop(path, None)
                self._hashes.pop(path, None)
        self._index = None

    def paths(self) -> list[str]:
        """Every document path: "api", "api/v1", "apis", "apis/apps", "apis/apps/v1", ..., "version"."""
        return sorted(self._builders)

    def index(self) -> bytes:
        """The `/openapi/v3` body."""
        if self._index is None:
            paths = {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={self.hash(p)}"} for p in self.paths()}
            self._index = orjson.dumps({"paths": paths}, option=orjson.OPT_SORT_KEYS)
        return self._index

    def document(self, path: str) -> bytes | None:
        """The document at `/openapi/v3/<path>` (e.g. "apis/apps/v1"), None when there is none."""
        doc = self._documents.get(path)
        if doc is None:
            builder = self._builders.get(path)
            if builder is None:
                return None
            doc = orjson.dumps(self._build(*builder), option=orjson.OPT_SORT_KEYS)
            self._documents[path] = doc
        return doc

    def hash(self, path: str) -> str:
        """The document's content hash (as upstream: SHA-512, upper-case hex); KeyError if unknown."""
        digest = self._hashes.get(path)
        if digest is None:
            doc = self.document(path)
            if doc is None:
                raise KeyError(path)
            digest = self._hashes[path] = hashlib.sha512(doc).hexdigest().upper()
        return digest

    def _build(self, what: str, group: str = "", version: str = "") -> dict:
        if what == "gv":
            builder = _GroupVersionDocument(group, version)
            for kind in self._registry.kinds_in(group, version):
                builder.add_kind(kind)
            return _document(builder.paths, builder.roots, builder.custom)
        if what == "group":
            return _discovery_document(f"/apis/{group}/", f"get{_gv_op(group, '')}APIGroup",
                                       "get information of a group", _group_tag(group), _META + "APIGroup")
        if what == "api":
            return _discovery_document("/api/", "getCoreAPIVersions", "get available API versions", "core",
                                       _META + "APIVersions")
        if what == "apis":
            return _discovery_document("/apis/", "getAPIVersions", "get available API versions", "apis",
                                       _META + "APIGroupList")
        return _discovery_document("/version/", "getCodeVersion",
                                   "get the version information for this server", "version",
                                   "io.k8s.apimachinery.pkg.version.Info", ("application/json",))

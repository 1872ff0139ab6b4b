"""Strategic merge patch (application/strategic-merge-patch+json) for built-in kinds.

Semantics follow upstream's k8s.io/apimachinery pkg/util/strategicpatch as the apiserver runs it
(StrategicMergeMapPatch, i.e. mergeMap with MergeParallelList and IgnoreUnmatchedNulls):

- maps merge recursively; `null` deletes a key; a value whose JSON type differs from the
  original's replaces it;
- lists replace, unless the Go field is tagged `patchStrategy:"merge"`: lists of maps then merge
  element-wise by the `patchMergeKey` (a patch item is merged into the original item with the same
  key, else added), lists of scalars are unioned;
- directives: `$patch` (`replace`/`delete` in a map, `replace`/`delete` as a list element),
  `$retainKeys`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`;
- after a list merge, items named in the patch (or in `$setElementOrder`) take the patch's order
  and the others keep theirs, interleaved by their positions in the original list. So an item
  the patch adds without `$setElementOrder` lands in front of the original items.

Patch metadata comes from the `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`
extensions of the v1.32 definitions (they are upstream's Go struct tags). Upstream looks fields
up in the Go struct and fails on a field the struct lacks; that only happens when the stored
object carries such a field, which upstream's typed storage never does. Here such fields (and the
values of Go maps and of opaque types) merge as plain maps without strategies.

Errors are raised as `StrategicMergeError` with upstream's message and the HTTP status the
apiserver answers (see `StrategicMergeError.api_error`).

`create_three_way_patch` is kubectl's client-side apply diff, used by tests.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import cache
from operator import itemgetter
from typing import Any

import orjson

from pyk8s.api.errors import APIError
from pyk8s.api.schemas import definition_for, definitions, ref_name, schema_type

_DIRECTIVE = "$patch"
_DELETE = "delete"
_REPLACE = "replace"
_MERGE = "merge"
_RETAIN_KEYS_STRATEGY = "retainKeys"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"

# mergepatch's sentinel errors. The apiserver answers these with 400; ErrNoListOfLists and
# ErrPatchContentNotMatchRetainKeys with 422; every other error is not a StatusError there and
# comes back as a 500 whose message is the error text.
_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
_NO_LIST_OF_LISTS = "lists of lists are not supported"
# What a 422 built by apierrors.NewGenericServerResponse says instead of the error text.
_UNPROCESSABLE_MESSAGE = "the server rejected our request due to an error in our request"

_MAP_TYPE = "map[string]interface {}"
_SLICE_TYPE = "[]interface {}"


class StrategicMergeError(Exception):
    """A patch upstream's strategicpatch rejects; `code` is the HTTP status kube-apiserver answers."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def api_error(self) -> APIError:
        """The error as kube-apiserver's PATCH handler reports it.

        400: BadRequest with the message. 422: reason Invalid with a generic message (upstream
        drops the error text; its Status also carries an empty `details: {}`). 500: no reason
        (upstream omits the empty `reason` field), the message is the error text.
        """
        if self.code == 400:
            return APIError(400, "BadRequest", self.message)
        if self.code == 422:
            return APIError(422, "Invalid", _UNPROCESSABLE_MESSAGE)
        return APIError(500, "", self.message)


# ---------------------------------------------------------------------------------------------
# Go's fmt, for error messages: they print the decoded JSON (ints are int64, other numbers float64).


def _go_float(value: float) -> str:
    """%v of a float64: shortest digits, exponent form below 1e-4 and from 1e6 on."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # position of the decimal point in `text`
    head = "-" if sign else ""
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{head}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"
    if point <= 0:
        return f"{head}0.{'0' * -point}{text}"
    if point >= len(text):
        return head + text + "0" * (point - len(text))
    return f"{head}{text[:point]}.{text[point:]}"


def _go_v(value: Any) -> str:
    """fmt's %v of a decoded JSON value (map keys sorted, as fmt prints them)."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return "<nil>"
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return _go_float(value)
    if kind is dict:
        return "map[" + " ".join(f"{k}:{_go_v(v)}" for k, v in sorted(value.items())) + "]"
    if kind is list:
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    return str(value)


def _go_s(value: Any) -> str:
    """fmt's %s of a decoded JSON value: non-strings print as %!s(type=value)."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return "%!s(<nil>)"
    if kind is dict:
        return "map[" + " ".join(f"{k}:{_go_s(v)}" for k, v in sorted(value.items())) + "]"
    if kind is list:
        return "[" + " ".join(_go_s(v) for v in value) + "]"
    return f"%!s({_go_type(value)}={_go_v(value)})"


def _go_type(value: Any) -> str:
    """reflect.TypeOf(value).String() as %s prints it."""
    if value is None:
        return "%!s(<nil>)"
    return {bool: "bool", int: "int64", float: "float64", str: "string", dict: _MAP_TYPE,
            list: _SLICE_TYPE}.get(type(value), type(value).__name__)


def _bad_arg_type(expected: str, actual: Any) -> StrategicMergeError:
    return StrategicMergeError(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(item: dict, merge_key: str) -> StrategicMergeError:
    return StrategicMergeError(f"map: {_go_v(item)} does not contain declared merge key: {merge_key}")


def _bad_patch_type(directive: Any, item: dict) -> StrategicMergeError:
    return StrategicMergeError(f"unknown patch type: {_go_s(directive)} in map: {_go_v(item)}")


# ---------------------------------------------------------------------------------------------
# Patch metadata, compiled once per Go type from the definitions.


class FieldMeta:
    """A struct field's patch strategy and merge key, and the types to merge its value with."""

    __slots__ = ("elem", "merge_key", "node", "patch_strategy", "retain_keys", "strategy")

    def __init__(self, strategy: str, merge_key: str, node: PatchMeta, elem: PatchMeta | None) -> None:
        self.strategy = strategy  # as tagged, e.g. "merge,retainKeys"
        self.merge_key = merge_key
        parts = strategy.split(",")
        self.retain_keys = _RETAIN_KEYS_STRATEGY in parts
        # The strategy besides retainKeys: "merge", "replace" or "" (lists: replace, maps: merge).
        self.patch_strategy = next((p for p in parts if p != _RETAIN_KEYS_STRATEGY), "")
        self.node = node  # the field's type, for merging maps
        self.elem = elem  # the element type of a list field, else None


class PatchMeta:
    """The patch metadata of one Go type: its fields (none for maps, scalars and opaque types)."""

    __slots__ = ("fields", "kind")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # reflect.Kind of the Go type, as upstream's errors name it
        self.fields: dict[str, FieldMeta] = {}

    def field(self, key: str) -> FieldMeta:
        """The metadata of a field; fields the type does not have merge without strategy."""
        return self.fields.get(key) or _UNTYPED_FIELD

    def lookup(self, path: str) -> FieldMeta | None:
        """The field at a dotted path such as "spec.template.spec.containers.env", walking
        through list elements; None when the path leaves the schema."""
        node: PatchMeta = self
        found: FieldMeta | None = None
        for key in path.split("."):
            found = node.fields.get(key)
            if found is None:
                return None
            node = found.elem or found.node
        return found


_LEAVES: dict[str, PatchMeta] = {}


def _leaf(kind: str) -> PatchMeta:
    node = _LEAVES.get(kind)
    if node is None:
        node = _LEAVES[kind] = PatchMeta(kind)
    return node


_UNTYPED = _leaf("interface")
_UNTYPED_FIELD = FieldMeta("", "", _UNTYPED, _UNTYPED)
_SCALAR_KINDS = {("integer", "int32"): "int32", ("integer", "int64"): "int64", ("number", "double"): "float64",
                 ("boolean", None): "bool", ("string", "byte"): "slice"}

_compiled: dict[str, PatchMeta] = {}


def _compile_definition(name: str) -> PatchMeta:
    node = _compiled.get(name)
    if node is not None:
        return node
    # Every definition is a Go struct; the ones without properties (Quantity, IntOrString, Time,
    # RawExtension, JSON) have no fields a patch can descend into.
    node = _compiled[name] = PatchMeta("struct")
    for key, prop in (definitions()[name].get("properties") or {}).items():
        elem = _compile_type(prop.get("items") or {}) if schema_type(prop) == "array" else None
        node.fields[key] = FieldMeta(prop.get("x-kubernetes-patch-strategy", ""),
                                     prop.get("x-kubernetes-patch-merge-key", ""), _compile_type(prop), elem)
    return node


def _compile_type(schema: dict) -> PatchMeta:
    ref = schema.get("$ref")
    if ref is not None:
        return _compile_definition(ref_name(ref))
    kind = schema_type(schema)
    if kind == "array":
        return _leaf("slice")
    if kind == "object":
        return _leaf("map")
    return _leaf(_SCALAR_KINDS.get((kind, schema.get("format")), "string" if kind == "string" else "interface"))


@cache
def patch_meta(group: str, version: str, kind: str) -> PatchMeta | None:
    """The patch metadata of a built-in kind, or None for kinds without a definition (custom
    resources, which upstream refuses strategic merge patches for with 415)."""
    name = definition_for(group, version, kind)
    return _compile_definition(name) if name else None


# ---------------------------------------------------------------------------------------------
# Helpers with Go's value semantics.


def _clone(value: Any) -> Any:
    # The merge works in place, as upstream's does; a JSON round trip is the fastest deep copy.
    return orjson.loads(orjson.dumps(value))


def _hkey(value: Any) -> Any:
    """A hashable key with Go's interface equality: 1, 1.0 and true are different values."""
    kind = type(value)
    if kind is dict or kind is list:
        # Go cannot even hash these (it panics); compare them by content.
        return kind, orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return kind, value


def _go_equal(left: Any, right: Any) -> bool:
    return type(left) is type(right) and left == right


def _element_type(*lists: list) -> type:
    """The one JSON type of all elements (sliceElementType)."""
    first: type | None = None
    for items in lists:
        for item in items:
            kind = type(item)
            if first is None:
                first = kind
                if kind is list:
                    raise StrategicMergeError(_NO_LIST_OF_LISTS, 422)
            elif kind is not first:
                raise StrategicMergeError(f"list element types are not identical: {_go_v(list(lists))}")
    if first is None:
        raise StrategicMergeError("no elements in any of the given slices")
    return first


def _extract_key(key: str, prefix: str) -> str:
    head, slash, rest = key.partition("/")
    if not slash or head != prefix:
        raise StrategicMergeError(
            _BAD_PRIMITIVE_LIST if prefix == _DELETE_FROM_PRIMITIVE_LIST else _BAD_SET_ELEMENT_ORDER, 400)
    return rest


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """Drops maps carrying `$patch` (a value to add has nothing to apply them to); False: drop
    the value itself."""
    kind = type(value)
    if kind is dict:
        if _DIRECTIVE in value:
            return None, False
        for key, item in list(value.items()):
            if type(item) is dict or type(item) is list:
                item, keep = _remove_directives(item)
                if keep:
                    value[key] = item
                else:
                    del value[key]
        return value, True
    if kind is list:
        kept = []
        for item in value:
            item, keep = _remove_directives(item)
            if keep:
                kept.append(item)
        return kept, True
    return value, True


def _discard_nulls(value: Any) -> None:
    """Removes null map values everywhere in a value that is added as is."""
    if type(value) is dict:
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for item in value.values():
            _discard_nulls(item)
    elif type(value) is list:
        for item in value:
            _discard_nulls(item)


class _Positions:
    """First positions of items in an order list, by merge key value (or by value for scalars),
    with findMapInSliceBasedOnKeyValue's errors for list elements that are not maps."""

    __slots__ = ("first_non_map", "merge_key", "positions")

    def __init__(self, order: list, merge_key: str) -> None:
        self.merge_key = merge_key
        self.first_non_map: int | None = None
        positions: dict[Any, int] = {}
        for i, item in enumerate(order):
            if merge_key:
                if type(item) is not dict:
                    if self.first_non_map is None:
                        self.first_non_map = i
                    continue
                if merge_key not in item:
                    continue
                item = item[merge_key]
            positions.setdefault(_hkey(item), i)
        self.positions = positions

    def find(self, value: Any) -> int:
        """Position of the first map whose merge key equals `value`, or -1."""
        position = self.positions.get(_hkey(value), -1)
        if self.first_non_map is not None and (position < 0 or position > self.first_non_map):
            raise StrategicMergeError(f"value for key {self.first_non_map} is not a map")
        return position

    def index(self, item: Any) -> int:
        """Position of an item (upstream's `index`), or -1."""
        if self.merge_key:
            item = item.get(self.merge_key) if type(item) is dict else None
        return self.positions.get(_hkey(item), -1)


def _partition(items: list, order: list, merge_key: str) -> tuple[list, list]:
    """Items present in `order` (by merge key), and the others."""
    present: list = []
    absent: list = []
    if not merge_key:
        keys = {_hkey(v) for v in order}
        for item in items:
            (present if _hkey(item) in keys else absent).append(item)
        return present, absent
    positions = _Positions(order, merge_key)
    for item in items:
        if type(item) is not dict:
            raise _bad_arg_type(_MAP_TYPE, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        (present if positions.find(item[merge_key]) >= 0 else absent).append(item)
    return present, absent


def _check_merge_keys(merge_key: str, *lists: list) -> None:
    for items in lists:
        for item in items:
            if type(item) is not dict:
                raise _bad_arg_type(_MAP_TYPE, item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)


def _sort_by_order(items: list, order: list, merge_key: str, maps: bool) -> list:
    """normalizeSliceOrder: `items` in the order of `order`; delete directives go last."""
    deletes: list = []
    if maps:
        _check_merge_keys(merge_key, items, order)
        kept = []
        for item in items:
            (deletes if item.get(_DIRECTIVE) == _DELETE else kept).append(item)
        items = kept
    positions = _Positions(order, merge_key if maps else "")
    ranks = [positions.index(item) for item in items]
    if min(ranks, default=0) >= 0:
        # A proper order: any stable sort gives Go's result.
        items = [item for _, item in sorted(zip(ranks, items, strict=True), key=itemgetter(0))]
    else:
        items = list(items)
        _go_stable_sort(items, lambda a, b: _order_less(positions.index(a), positions.index(b)))
    return items + deletes


def _order_less(left: int, right: int) -> bool:
    # Upstream's comparison: true whenever either item is missing from the order list.
    return left < right if left >= 0 and right >= 0 else True


def _go_stable_sort(items: list, less: Callable[[Any, Any], bool]) -> None:
    """Go's sort.SliceStable step for step (insertion sort of blocks of 20, then SymMerge).

    Only needed when an item is missing from the order list: upstream's comparison is then not an
    order at all and the result depends on the exact algorithm.
    """

    def swap_range(a: int, b: int, n: int) -> None:
        for i in range(n):
            items[a + i], items[b + i] = items[b + i], items[a + i]

    def rotate(a: int, m: int, b: int) -> None:
        i, j = m - a, b - m
        while i != j:
            if i > j:
                swap_range(m - i, m, j)
                i -= j
            else:
                swap_range(m - i, m + j - i, i)
                j -= i
        swap_range(m - i, m, i)

    def insertion_sort(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and less(items[j], items[j - 1]):
                items[j], items[j - 1] = items[j - 1], items[j]
                j -= 1

    def sym_merge(a: int, m: int, b: int) -> None:
        if m - a == 1:
            i, j = m, b
            while i < j:
                h = (i + j) // 2
                if less(items[h], items[a]):
                    i = h + 1
                else:
                    j = h
            for k in range(a, i - 1):
                items[k], items[k + 1] = items[k + 1], items[k]
            return
        if b - m == 1:
            i, j = a, m
            while i < j:
                h = (i + j) // 2
                if not less(items[m], items[h]):
                    i = h + 1
                else:
                    j = h
            for k in range(m, i, -1):
                items[k], items[k - 1] = items[k - 1], items[k]
            return
        mid = (a + b) // 2
        n = mid + m
        if m > mid:
            start, r = n - b, mid
        else:
            start, r = a, m
        p = n - 1
        while start < r:
            c = (start + r) // 2
            if not less(items[p - c], items[c]):
                start = c + 1
            else:
                r = c
        end = n - start
        if start < m < end:
            rotate(start, m, end)
        if a < start < mid:
            sym_merge(a, start, mid)
        if mid < end < b:
            sym_merge(mid, end, b)

    n = len(items)
    block = 20
    a, b = 0, block
    while b <= n:
        insertion_sort(a, b)
        a, b = b, b + block
    insertion_sort(a, n)
    while block < n:
        a, b = 0, 2 * block
        while b <= n:
            sym_merge(a, a + block, b)
            a, b = b, b + 2 * block
        if a + block < n:
            sym_merge(a, a + block, n)
        block *= 2


def _normalize_order(patch_items: list, server_only: list, patch_order: list, server_order: list,
                     merge_key: str, maps: bool) -> list:
    """Patch items in the patch's order, server-only items in the server's, interleaved by the
    server's positions (where both are in it, the earlier goes first; else the patch item)."""
    patch_items = _sort_by_order(patch_items, patch_order, merge_key, maps)
    server_only = _sort_by_order(server_only, server_order, merge_key, maps)
    if not server_only or not patch_items:
        return server_only + patch_items
    positions = _Positions(server_order, merge_key if maps else "")
    merged = []
    i = j = 0
    while i < len(server_only) and j < len(patch_items):
        left = positions.index(server_only[i])
        right = positions.index(patch_items[j])
        if 0 <= left < right:
            merged.append(server_only[i])
            i += 1
        else:
            merged.append(patch_items[j])
            j += 1
    merged += server_only[i:]
    merged += patch_items[j:]
    return merged


# ---------------------------------------------------------------------------------------------
# Applying a patch.


def apply_strategic_merge_patch(original: dict, patch: dict, meta: PatchMeta) -> dict:
    """The object `original` becomes under `patch`, as kube-apiserver computes it.

    Neither argument is modified; the result shares nothing with them. Raises
    StrategicMergeError.
    """
    return _merge_map(_clone(original), _clone(patch), meta, True)


def _merge_map(original: dict | None, patch: dict, node: PatchMeta, server: bool) -> dict:
    """Merges `patch` into `original` in place (both are private copies).

    `server` is upstream's MergeOptions{MergeParallelList, IgnoreUnmatchedNulls}: true when
    applying a patch; false when merging two patches into one (three-way diff), which keeps
    directives and nulls in the result.
    """
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == _REPLACE:
            del patch[_DIRECTIVE]
            return patch
        if directive == _DELETE:
            return {}
        raise _bad_patch_type(directive, patch)
    if original is None:
        original = {}
    if _RETAIN_KEYS in patch:
        _apply_retain_keys(original, patch, server)
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        if key in patch:  # an earlier order directive may have consumed it as its list
            _merge_ordered_list(original, patch, key, node, server)

    fields = node.fields
    for key, value in patch.items():
        delete_list = False
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            if not server:
                original[key] = value
                continue
            key = _extract_key(key, _DELETE_FROM_PRIMITIVE_LIST)
            delete_list = True
        if value is None:
            original.pop(key, None)
            if server:
                continue
        if key not in original or type(original[key]) is not type(value):
            if not delete_list:
                if server:
                    _discard_nulls(value)
                value, keep = _remove_directives(value)
                if keep:
                    original[key] = value
                else:
                    original.pop(key, None)
            continue
        kind = type(value)
        if kind is dict:
            field = fields.get(key) or _UNTYPED_FIELD
            if field.patch_strategy != _REPLACE:
                value = _merge_map(original[key], value, field.node, server)
            original[key] = value
        elif kind is list:
            field = fields.get(key) or _UNTYPED_FIELD
            if field.patch_strategy == _MERGE or delete_list:
                value = _merge_list(original[key], value, field, server, delete_list)
            original[key] = value
        else:
            original[key] = value
    return original


def _apply_retain_keys(original: dict, patch: dict, server: bool) -> None:
    retain = patch.pop(_RETAIN_KEYS)
    if not server:
        if _RETAIN_KEYS not in original:
            original[_RETAIN_KEYS] = retain
        elif original[_RETAIN_KEYS] != retain:
            raise StrategicMergeError(f"{_go_v(original[_RETAIN_KEYS])} and {_go_v(retain)} are not deep equal: "
                                      "this may happen when calculating the 3-way diff patch")
        return
    if type(retain) is not list:
        raise StrategicMergeError(_BAD_RETAIN_KEYS, 400)
    kept = {_hkey(v) for v in retain}
    for key, value in patch.items():
        if value is None or key.startswith(_DELETE_FROM_PRIMITIVE_LIST) or key.startswith(_SET_ELEMENT_ORDER):
            continue
        if (str, key) not in kept:
            raise StrategicMergeError(_BAD_RETAIN_KEYS, 400)
    for key in [k for k in original if (str, k) not in kept]:
        del original[key]


def _merge_ordered_list(original: dict, patch: dict, key: str, node: PatchMeta, server: bool) -> None:
    """Applies `$setElementOrder/<field>` together with the field's list in the patch."""
    order = patch.pop(key)
    if not server:
        if key not in original:
            original[key] = order
        elif original[key] != order:
            raise StrategicMergeError(_BAD_SET_ELEMENT_ORDER, 400)
    if type(order) is not list:
        raise _bad_arg_type(_SLICE_TYPE, order)
    list_key = _extract_key(key, _SET_ELEMENT_ORDER)
    in_original = list_key in original
    in_patch = list_key in patch
    current: list = []
    patch_list: list = []
    if in_original:
        current = original[list_key]
        if type(current) is not list:
            raise _bad_arg_type(_SLICE_TYPE, current)
    if in_patch:
        patch_list = patch[list_key]
        if type(patch_list) is not list:
            raise _bad_arg_type(_SLICE_TYPE, patch_list)
    field = node.field(list_key)
    merge_key = field.merge_key
    _check_patch_order(patch_list, order, merge_key)

    if in_original and not in_patch:
        merged = current
    elif in_patch and not in_original:
        merged = _remove_directives(patch_list)[0]
    elif in_patch:
        merged = patch_list
        if field.patch_strategy == _MERGE:
            merged = _merge_list(current, patch_list, field, server, False)
    else:
        return
    patch_items, server_only = _partition(merged, order, merge_key)
    maps = _element_type(current, patch_list) is dict
    original[list_key] = _normalize_order(patch_items, server_only, order, current, merge_key, maps)
    patch.pop(list_key, None)


def _check_patch_order(patch_list: list, order: list, merge_key: str) -> None:
    """The patch list's items (deletions aside) must appear in `$setElementOrder`, in its order."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in patch_list:
            if type(item) is not dict:
                raise _bad_arg_type(_MAP_TYPE, item)
        items = [item for item in patch_list if item.get(_DIRECTIVE) != _DELETE]
    i = j = 0
    while i < len(items) and j < len(order):
        item = items[i]
        if type(item) is dict and _DIRECTIVE in item:
            i += 1
            continue
        if _merge_key_equal(item, order[j], merge_key):
            i += 1
        j += 1
    if i < len(items):
        raise StrategicMergeError(f"The order in patch list:\n{_go_v(patch_list)}\n doesn't match "
                                  f"{_SET_ELEMENT_ORDER} list:\n{_go_v(order)}\n")


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _go_equal(left, right)
    for item in (left, right):
        if type(item) is not dict:
            raise _bad_arg_type(_MAP_TYPE, item)
    for item in (left, right):
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return _go_equal(left[merge_key], right[merge_key])


def _merge_list(original: list, patch: list, field: FieldMeta, server: bool, delete_list: bool) -> list:
    """Merges two lists of a merge-strategy field (or applies a $deleteFromPrimitiveList list).

    Like upstream, this works in `original`'s own array: deletions shift later items left and
    additions fill the freed tail before a new array is made. A caller still holding `original`
    (the `$setElementOrder` handling) sees those writes, as upstream's does: its ordering depends
    on them. Upstream's arrays come from the stored object with no spare capacity, so that is the
    capacity modelled here.
    """
    if not original and not patch:
        return original
    merge_key = field.merge_key
    maps = _element_type(original, patch) is dict
    if not maps:
        if server and delete_list:
            doomed = {_hkey(v) for v in patch}
            return [v for v in original if _hkey(v) not in doomed]
        # Appending a non-empty patch to a full array copies it; an empty one leaves `original`.
        merged = _dedupe_scalars(original + patch if patch else original)
        server_order = original
    else:
        if not merge_key:
            raise StrategicMergeError(f"cannot merge lists without merge key for {(field.elem or _UNTYPED).kind}")
        backing, length, patch = _apply_list_directives(original, patch, merge_key)
        server_order = backing[:length]
        merged = _merge_items(backing, length, patch, merge_key, field.elem or _UNTYPED, server)
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_order(patch_items, server_only, patch, server_order, merge_key, maps)


def _dedupe_scalars(items: list) -> list:
    """Upstream's in-place dedupe: a later duplicate is overwritten by the list's last item (the
    array keeps its stale tail; the result is its prefix)."""
    length = len(items) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if _go_equal(items[i], items[j]):
                items[j] = items[length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return items[:length + 1]


def _apply_list_directives(original: list, patch: list, merge_key: str) -> tuple[list, int, list]:
    """Handles `$patch` elements of a list patch. Returns the array to merge into, the length of
    its live part and the patch without directive elements."""
    rest = []
    replace = False
    length = len(original)
    for item in patch:
        if _DIRECTIVE not in item:
            rest.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            doomed = item[merge_key]
            i = 0
            while i < length:
                existing = original[i]
                if merge_key in existing and _go_equal(existing[merge_key], doomed):
                    original[i:length - 1] = original[i + 1:length]
                    length -= 1
                else:
                    i += 1
        elif directive == _REPLACE:
            replace = True  # the other directives are still checked
        elif directive == _MERGE:
            raise StrategicMergeError("merging lists cannot yet be specified in the patch")
        else:
            raise _bad_patch_type(directive, item)
    if replace:
        return rest, len(rest), []
    return original, length, rest


def _merge_items(backing: list, length: int, patch: list, merge_key: str, node: PatchMeta, server: bool) -> list:
    """Merges patch items into `backing[:length]` by merge key; new items are appended."""
    items = backing
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        value = item[merge_key]
        for i in range(length):
            existing = items[i]
            if merge_key in existing and _go_equal(existing[merge_key], value):
                items[i] = _merge_map(existing, item, node, server)
                break
        else:
            if length < len(items):
                items[length] = item
            elif items is backing:
                items = backing[:length]
                items.append(item)
            else:
                items.append(item)
            length += 1
    return items[:length]


# ---------------------------------------------------------------------------------------------
# kubectl's three-way patch (client side; for tests).


class _Diff:
    __slots__ = ("ignore_changes", "ignore_deletions", "retain_keys")

    def __init__(self, ignore_changes: bool, ignore_deletions: bool, retain_keys: bool = False) -> None:
        self.ignore_changes = ignore_changes  # leave out additions and changes
        self.ignore_deletions = ignore_deletions  # leave out deletions
        self.retain_keys = retain_keys  # add $retainKeys (the field has the retainKeys strategy)

    def with_retain_keys(self, retain_keys: bool) -> _Diff:
        return _Diff(self.ignore_changes, self.ignore_deletions, retain_keys)


def create_three_way_patch(original_last_applied: dict, modified: dict, current: dict, meta: PatchMeta) -> dict:
    """The patch `kubectl apply` sends (CreateThreeWayMergePatch with overwrite): the additions
    and changes from `current` to `modified` plus the deletions from `original_last_applied` to
    `modified`, with `$setElementOrder` for changed merge lists and `$retainKeys` where the
    strategy asks for it."""
    last, modified, current = _clone(original_last_applied), _clone(modified), _clone(current)
    delta = _diff_maps(current, modified, meta, _Diff(ignore_changes=False, ignore_deletions=True))
    deletions = _diff_maps(last, modified, meta, _Diff(ignore_changes=True, ignore_deletions=False))
    return _merge_map(deletions, delta, meta, False)


def _diff_maps(original: dict, modified: dict, node: PatchMeta, options: _Diff) -> dict:
    patch: dict = {}
    for key, value in modified.items():
        if key not in original or type(original[key]) is not type(value):
            if not options.ignore_changes:
                patch[key] = value
            continue
        old = original[key]
        field = node.field(key)
        if type(value) is dict:
            if field.patch_strategy == _REPLACE:
                if not options.ignore_changes:
                    patch[key] = value
                continue
            diff = _diff_maps(old, value, field.node, options.with_retain_keys(field.retain_keys))
            if diff:
                patch[key] = diff
        elif type(value) is list and field.patch_strategy == _MERGE:
            added, deleted, order = _diff_lists(old, value, field, options.with_retain_keys(field.retain_keys))
            if added:
                patch[key] = added
            if deleted:
                patch[f"{_DELETE_FROM_PRIMITIVE_LIST}/{key}"] = deleted
            if order:
                patch[f"{_SET_ELEMENT_ORDER}/{key}"] = order
        elif not options.ignore_changes and old != value:
            patch[key] = value
    if not options.ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    if options.retain_keys:
        retained = [key for key, value in modified.items() if value is not None]
        dropped = any(value is not None and key not in modified for key, value in original.items())
        if retained and (patch or dropped):
            patch[_RETAIN_KEYS] = sorted(retained, key=_go_v)
    return patch


def _diff_lists(original: list, modified: list, field: FieldMeta, options: _Diff) -> tuple[list, list, list]:
    """Additions/changes, scalar deletions and the `$setElementOrder` list of a merge list."""
    if not original:
        return ([] if options.ignore_changes else modified), [], []
    merge_key = field.merge_key
    if _element_type(original, modified) is dict:
        added, deleted = _diff_lists_of_maps(original, modified, field, options)
        added = _sort_by_order(added, modified, merge_key, True) + deleted
        same_order = len(original) == len(modified) and all(
            _merge_key_equal(a, b, merge_key) for a, b in zip(original, modified, strict=True))
        order = []
        if (not options.ignore_changes and (added or not same_order)) or (not options.ignore_deletions and added):
            order = [{merge_key: item[merge_key]} for item in modified]
        return added, [], order
    added, deleted = _diff_scalars(original, modified, options)
    added = _sort_by_order(added, modified, "", False)
    changed = (not options.ignore_deletions and deleted) or (not options.ignore_changes and original != modified)
    return added, deleted, (modified if changed else [])


def _diff_lists_of_maps(original: list, modified: list, field: FieldMeta, options: _Diff) -> tuple[list, list]:
    merge_key = field.merge_key
    _check_merge_keys(merge_key, original, modified)
    by_key = {_hkey(item[merge_key]): item for item in original}
    wanted = {_hkey(item[merge_key]) for item in modified}
    added = []
    for item in modified:
        old = by_key.get(_hkey(item[merge_key]))
        if old is None:
            if not options.ignore_changes:
                added.append(item)
            continue
        diff = _diff_maps(old, item, field.elem or _UNTYPED, options)
        if diff:
            diff[merge_key] = item[merge_key]
            added.append(diff)
    deleted = []
    if not options.ignore_deletions:
        deleted = [{merge_key: item[merge_key], _DIRECTIVE: _DELETE} for item in sorted(
            original, key=lambda item: _go_v(item[merge_key])) if _hkey(item[merge_key]) not in wanted]
    return added, deleted


def _diff_scalars(original: list, modified: list, options: _Diff) -> tuple[list, list]:
    old = {_hkey(v) for v in original}
    new = {_hkey(v) for v in modified}
    added = [] if options.ignore_changes else [v for v in modified if _hkey(v) not in old]
    deleted = [] if options.ignore_deletions else _dedupe_scalars([v for v in original if _hkey(v) not in new])
    return added, deleted

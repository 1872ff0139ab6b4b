"""Every served kind through the real kubectl: apply, get (table, wide, json, yaml), replace, delete."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from conftest import Cluster, validate_tree
from manifests import CLUSTER_SCOPED, MANIFESTS, resource_arg


def _manifest(key: str, namespace: str) -> dict:
    manifest = copy.deepcopy(MANIFESTS[key])
    text = json.dumps(manifest).replace("NAMESPACE", namespace)
    manifest = json.loads(text)
    if key in CLUSTER_SCOPED:
        manifest["metadata"]["name"] = f"sample-{namespace}"[:63]
    return manifest


@pytest.mark.parametrize("key", sorted(MANIFESTS))
def test_kind_round_trip(cluster: Cluster, namespace: str, key: str):
    manifest = _manifest(key, namespace)
    name = manifest["metadata"]["name"]
    ns_args = [] if key in CLUSTER_SCOPED else ["-n", namespace]
    resource = resource_arg(key)

    out = cluster.kubectl("apply", *ns_args, "-f", "-", input=json.dumps(manifest)).stdout
    assert f"{name} created" in out

    obj = cluster.kubectl_json("get", resource, name, *ns_args)
    assert obj["metadata"]["name"] == name
    assert obj["metadata"]["uid"] and obj["metadata"]["resourceVersion"] and obj["metadata"]["creationTimestamp"]
    assert obj["apiVersion"] == manifest["apiVersion"] and obj["kind"] == manifest["kind"]

    table = cluster.kubectl("get", resource, name, *ns_args).stdout.splitlines()
    assert len(table) == 2
    if key.startswith("events"):  # events print LAST SEEN, TYPE, REASON, OBJECT, MESSAGE; the name only wide
        assert table[0].split()[:2] == ["LAST", "SEEN"] and "Tested" in table[1].split()
    else:
        assert table[0].split()[0] == "NAME" and table[1].split()[0] == name
    wide = cluster.kubectl("get", resource, *ns_args, "-o", "wide").stdout.splitlines()
    assert len(wide[0].split()) >= len(table[0].split())
    assert any(name in line.split() for line in wide[1:])

    as_yaml = yaml.safe_load(cluster.kubectl("get", resource, name, *ns_args, "-o", "yaml").stdout)
    assert as_yaml["metadata"]["uid"] == obj["metadata"]["uid"]

    listed = cluster.kubectl_json("get", resource, *ns_args)
    assert name in [item["metadata"]["name"] for item in listed["items"]]

    # Apply again with a label change: a patch of the existing object (kubectl apply computes it).
    manifest["metadata"]["labels"]["tier"] = "t2"
    cluster.kubectl("label", resource, name, *ns_args, "tier=t2", "--overwrite")
    relabelled = cluster.kubectl_json("get", resource, name, *ns_args)
    assert relabelled["metadata"]["labels"]["tier"] == "t2"
    assert int(relabelled["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])

    # Replace with the live object (kubectl replace GETs nothing: it PUTs what it is given).
    relabelled["metadata"].setdefault("annotations", {})["replaced"] = "yes"
    cluster.kubectl("replace", "-f", "-", input=json.dumps(relabelled))
    replaced = cluster.kubectl_json("get", resource, name, *ns_args)
    assert replaced["metadata"]["annotations"]["replaced"] == "yes"
    validate_tree(replaced)

    if key == "namespaces":
        return  # deleting a namespace waits for the namespace controller, which arrives with the controllers
    deleted = cluster.kubectl("delete", resource, name, *ns_args, "--wait=false").stdout
    assert f"{name}" in deleted and "deleted" in deleted
    assert cluster.kubectl("get", resource, name, *ns_args, check=False).returncode != 0

    # create -f of the same manifest works again once the name is free.
    manifest.pop("status", None)
    out = cluster.kubectl("create", *ns_args, "-f", "-", input=json.dumps(manifest)).stdout
    assert f"{name} created" in out
    again = cluster.kubectl("create", *ns_args, "-f", "-", input=json.dumps(manifest), check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr

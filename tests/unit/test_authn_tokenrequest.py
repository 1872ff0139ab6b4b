"""TokenRequest defaults and validation, and the root-CA ConfigMap the publisher keeps."""

from __future__ import annotations

import pytest

from pyk8s.api.errors import APIError
from pyk8s.apiserver.tokenrequest import decode_spec, validate_spec
from pyk8s.controllers.rootcacert import desired_configmap, needs_update

API = ("https://kubernetes.default.svc.cluster.local",)


def test_defaults():
    assert decode_spec({}, API) == {"audiences": list(API), "expirationSeconds": 3600, "boundObjectRef": None}
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p"}
    assert decode_spec({"spec": {"audiences": ["vault"], "expirationSeconds": 600, "boundObjectRef": ref}},
                       API) == {"audiences": ["vault"], "expirationSeconds": 600, "boundObjectRef": ref}


@pytest.mark.parametrize(("seconds", "message"), [
    (599, "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"),
    ((1 << 32) + 1, "spec.expirationSeconds: Invalid value: 4294967297: may not specify a duration larger than "
                    "2^32 seconds"),
])
def test_expiration_limits(seconds, message):
    with pytest.raises(APIError) as info:
        validate_spec(decode_spec({"spec": {"expirationSeconds": seconds}}, API))
    assert info.value.code == 422
    assert info.value.message == f'TokenRequest.authentication.k8s.io "" is invalid: {message}'


@pytest.mark.parametrize("spec", [{"expirationSeconds": "1h"}, {"expirationSeconds": True}, {"audiences": "x"},
                                  {"boundObjectRef": "pod"}])
def test_malformed_specs_are_bad_requests(spec):
    with pytest.raises(APIError) as info:
        decode_spec({"spec": spec}, API)
    assert info.value.code == 400


def test_root_ca_configmap():
    configmap = desired_configmap("apps", "PEM")
    assert configmap["data"] == {"ca.crt": "PEM"}
    assert not needs_update(configmap, "PEM")
    assert needs_update(configmap, "OTHER PEM")
    assert needs_update({**configmap, "data": {"ca.crt": "PEM", "extra": "x"}}, "PEM")
    assert needs_update({**configmap, "metadata": {"name": "kube-root-ca.crt"}}, "PEM")

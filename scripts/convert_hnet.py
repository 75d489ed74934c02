#!/usr/bin/python3
"""Convert an official H-Net checkpoint (.pt state dict) to dynarch's safetensors.

Names are kept unchanged: the official state-dict names are dynarch's names
(docs/architecture.md, shared/spec/hnet.md §14), so the mapping is 1:1.

  convert_hnet.py IN.pt CONFIG.json OUT_DIR      -> OUT_DIR/{model.safetensors,config.json}
  convert_hnet.py --selftest                     -> round trip on a synthetic checkpoint
  convert_hnet.py --write-synthetic CONFIG.json OUT.pt
                                                 -> random weights with the official names
Needs Debian's python3-torch (and python3-omegaconf for released files, whose
pickles reference an omegaconf class).
"""
import json
import math
import os
import struct
import sys
import tempfile
import zlib

DTYPES = {}  # torch dtype -> safetensors name, filled lazily (torch import is slow)


def _torch():
    import torch
    if not DTYPES:
        DTYPES.update({torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
                       torch.float64: "F64", torch.int64: "I64", torch.int32: "I32"})
    return torch


def parse_layout(s):
    out, i = [], 0
    import re
    for m in re.finditer(r"([mMtT])(\d+)", s):
        if m.start() != i:
            raise ValueError(f"bad layout string {s!r}")
        out += [(m.group(1).lower(), m.group(1).isupper())] * int(m.group(2))
        i = m.end()
    if i != len(s) or not out:
        raise ValueError(f"bad layout string {s!r}")
    return out


def official_keys(cfg):
    """(name, shape) of every tensor in an official H-Net state dict for cfg."""
    ssm = dict(d_state=128, d_conv=4, expand=2, headdim=64)
    ssm.update(cfg.get("ssm_cfg", {}))
    dims, dints = cfg["d_model"], cfg.get("d_intermediate", [0] * len(cfg["d_model"]))
    keys = [("embeddings.weight", (256, dims[0])), ("lm_head.weight", (256, dims[0]))]

    def stack(prefix, layout, s):
        D = dims[s]
        dint = (dints[s] + 127) // 128 * 128 if dints[s] > 0 else 0
        for i, (kind, mlp) in enumerate(parse_layout(layout)):
            p = f"{prefix}.layers.{i}"
            keys.append((f"{p}.norm1.weight", (D,)))
            if kind == "t":
                keys.extend([(f"{p}.mixer.Wqkv.weight", (3 * D, D)), (f"{p}.mixer.out_proj.weight", (D, D))])
            else:
                din, N = ssm["expand"] * D, ssm["d_state"]
                H, conv = din // ssm["headdim"], din + 2 * N
                keys.extend([(f"{p}.mixer.in_proj.weight", (2 * din + 2 * N + H, D)),
                         (f"{p}.mixer.conv1d.weight", (conv, 1, ssm["d_conv"])), (f"{p}.mixer.conv1d.bias", (conv,)),
                         (f"{p}.mixer.dt_bias", (H,)), (f"{p}.mixer.A_log", (H,)), (f"{p}.mixer.D", (H,)),
                         (f"{p}.mixer.norm.weight", (din,)), (f"{p}.mixer.out_proj.weight", (D, din))])
            if mlp:
                keys.extend([(f"{p}.norm2.weight", (D,)), (f"{p}.mlp.fc1.weight", (2 * dint, D)),
                         (f"{p}.mlp.fc2.weight", (D, dint))])
        keys.append((f"{prefix}.rmsnorm.weight", (D,)))

    def stage(prefix, node, s, dprev):
        D = dims[s]
        if D > dprev:
            keys.append((f"{prefix}.pad_dimension", (D - dprev,)))
        if len(node) == 1:
            stack(f"{prefix}.main_network", node[0], s)
            return
        stack(f"{prefix}.encoder", node[0], s)
        keys.extend([(f"{prefix}.routing_module.q_proj_layer.weight", (D, D)),
                 (f"{prefix}.routing_module.k_proj_layer.weight", (D, D)),
                 (f"{prefix}.residual_proj.weight", (D, D)), (f"{prefix}.residual_proj.bias", (D,))])
        stage(f"{prefix}.main_network", node[1], s + 1, D)
        stack(f"{prefix}.decoder", node[2], s)

    stage("backbone", cfg["arch_layout"], 0, dims[0])
    return keys


def find_state_dict(obj):
    torch = _torch()
    if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for k in ("state_dict", "model", "module"):
            if k in obj:
                return find_state_dict(obj[k])
    raise ValueError("no state dict of tensors found in the checkpoint")


def save_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in DTYPES:
            raise ValueError(f"tensor {name}: unsupported dtype {t.dtype}")
        raw = t.view(-1).view(_torch().uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def write_manifest(out_dir, names):
    """manifest.json as dynarch writes it (src/run/manifest.h): size and CRC-32 of each file."""
    files = {}
    for name in names:
        crc, size = 0, 0
        with open(os.path.join(out_dir, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                crc, size = zlib.crc32(block, crc), size + len(block)
        files[name] = {"bytes": size, "crc32": f"{crc:08x}"}
    m = {"format": "dynarch-manifest", "version": 1, "checksum": "crc32", "files": files}
    tmp = os.path.join(out_dir, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(m, f, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(out_dir, "manifest.json"))


def load_safetensors(path):
    torch = _torch()
    inv = {v: k for k, v in DTYPES.items()}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=torch.uint8) if end > b else torch.empty(0, dtype=torch.uint8)
        out[name] = t.view(inv[e["dtype"]]).reshape(e["shape"])
    return out


def convert(pt_path, config_path, out_dir):
    torch = _torch()
    with open(config_path) as f:
        cfg = json.load(f)
    try:
        obj = torch.load(pt_path, map_location="cpu")
    except ModuleNotFoundError as e:
        sys.exit(f"error: {pt_path} needs Python module {e.name} (Debian: apt-get install python3-omegaconf)")
    sd = find_state_dict(obj)
    want = dict(official_keys(cfg))
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    bad = [k for k in want if k in sd and tuple(sd[k].shape) != tuple(want[k])]
    if missing or extra or bad:
        msg = [f"{pt_path} does not match {config_path}:"]
        msg += [f"  missing {k} {want[k]}" for k in missing[:10]]
        msg += [f"  unexpected {k}" for k in extra[:10]]
        msg += [f"  {k}: shape {tuple(sd[k].shape)}, config wants {want[k]}" for k in bad[:10]]
        sys.exit("error: " + "\n".join(msg))
    os.makedirs(out_dir, exist_ok=True)
    # Released weights are fp32; keep fp32 (residual_proj must stay fp32 anyway).
    tensors = {k: sd[k].float() if sd[k].is_floating_point() else sd[k] for k, _ in official_keys(cfg)}
    save_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, {"source": os.path.basename(pt_path)})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_manifest(out_dir, ["config.json", "model.safetensors"])  # last: dynarch verifies against it
    print(f"{len(tensors)} tensors, {sum(t.numel() for t in tensors.values())} parameters -> {out_dir}")


def write_synthetic(config_path, pt_path, seed=0):
    torch = _torch()
    with open(config_path) as f:
        cfg = json.load(f)
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(shape, generator=g) * 0.02 for k, shape in official_keys(cfg)}
    for k in sd:  # keep the SSM parameters in their valid ranges
        if k.endswith("A_log"):
            sd[k] = torch.log(torch.rand(sd[k].shape, generator=g) * 15 + 1)
        if k.endswith(("norm1.weight", "norm2.weight", "rmsnorm.weight", "norm.weight")):
            sd[k] = torch.ones_like(sd[k])
        if "q_proj_layer" in k or "k_proj_layer" in k:
            sd[k] = torch.eye(sd[k].shape[0]) + sd[k]
    torch.save(sd, pt_path)
    return sd


def selftest():
    cfg = {"arch_layout": ["m2", ["T1m1", ["T2"], "m1T1"], "m2"], "d_model": [32, 32, 48],
           "d_intermediate": [0, 64, 100], "vocab_size": 256,
           "ssm_cfg": {"d_state": 8, "d_conv": 4, "expand": 2, "chunk_size": 16, "headdim": 16},
           "attn_cfg": {"num_heads": [2, 2, 4], "rotary_emb_dim": [8, 8, 8], "window_size": [-1, 7, -1]},
           "tie_embeddings": False}
    with tempfile.TemporaryDirectory() as d:
        cpath, pt, out = os.path.join(d, "c.json"), os.path.join(d, "m.pt"), os.path.join(d, "out")
        json.dump(cfg, open(cpath, "w"))
        sd = write_synthetic(cpath, pt)
        convert(pt, cpath, out)
        back = load_safetensors(os.path.join(out, "model.safetensors"))
        assert set(back) == set(sd), "names differ"
        for k in sd:
            assert back[k].dtype == sd[k].dtype and back[k].shape == sd[k].shape, k
            assert bool((back[k] == sd[k]).all()), f"values differ for {k}"
        man = json.load(open(os.path.join(out, "manifest.json")))
        assert man["files"]["model.safetensors"]["bytes"] == os.path.getsize(os.path.join(out, "model.safetensors"))
        assert man["files"]["config.json"]["crc32"] == f"{zlib.crc32(open(os.path.join(out, 'config.json'), 'rb').read()):08x}"
        assert "backbone.main_network.main_network.pad_dimension" in back  # 32 -> 48
        assert "backbone.main_network.pad_dimension" not in back           # 32 -> 32
        assert back["backbone.main_network.main_network.main_network.layers.0.mlp.fc1.weight"].shape == (256, 48)
        # a checkpoint that does not match the config is refused with the tensor named
        del sd["lm_head.weight"]
        _torch().save({"model": sd}, pt)
        try:
            convert(pt, cpath, out)
            raise AssertionError("mismatch not detected")
        except SystemExit as e:
            assert "missing lm_head.weight" in str(e), e
    print("convert_hnet selftest: 1 passed, 0 failed")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a == ["--selftest"]:
        selftest()
    elif len(a) == 3 and a[0] == "--write-synthetic":
        write_synthetic(a[1], a[2])
    elif len(a) == 3:
        convert(*a)
    else:
        sys.exit(__doc__)

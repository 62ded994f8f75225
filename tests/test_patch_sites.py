"""Loud patches: the launcher checks every patch site in the clone it runs before importing it, and refuses a
clone where one was renamed, naming the site and the clone's commit. The contract fixture (the fake Wan2.2
the stand-in tests run, tests/standins/fake_wan) holds every site; the real clone is checked when present."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import REPO, STANDINS

from replace_actor_video.upstream.wan import pin

RUNTIME = REPO / "replace_actor_video" / "upstream" / "wan" / "runtime"
LAUNCHER = RUNTIME / "launcher.py"
WAN22 = Path(os.environ.get("WAN22_DIR", REPO / "Wan2.2"))
needs_clone = pytest.mark.skipif(
    not (WAN22 / "generate.py").is_file(),
    reason=f"no Wan2.2 clone at {WAN22} (CI has no GitHub access); install.sh clones it",
)


def load(stem: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"sites_test_{stem}", RUNTIME / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sites = load("patch_sites")
launcher = load("launcher")


def fixture_clone(root: Path) -> Path:
    """The contract fixture laid out as a clone: the fake `wan` package and the generate.py stand-in."""
    shutil.copytree(STANDINS / "fake_wan" / "wan", root / "wan")
    shutil.copy(STANDINS / "wan_generate.py", root / "generate.py")
    return root


def site_files_of(clone: Path, root: Path) -> Path:
    """Only the files the sites are in, copied from `clone` (the check reads nothing else)."""
    for name in {site.file for site in sites.SITES}:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clone / name, root / name)
    return root


def rename(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def run_launcher(clone: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), "--wan22_dir", str(clone), "--", "--task", "animate-14B"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAV_REPO": str(REPO)},
        check=False,
    )


def test_the_contract_fixture_has_every_site(tmp_path):
    assert [s.describe() for s in sites.missing_sites(str(fixture_clone(tmp_path / "Wan2.2")))] == []


@needs_clone
def test_the_real_clone_has_every_site():
    assert [s.describe() for s in sites.missing_sites(str(WAN22))] == []


def test_every_kind_of_site_is_checked(tmp_path):
    """Each way upstream can move a site (a function renamed, a call gone, a method or parameter renamed, an
    attribute no longer set) is found, so the check can fail."""
    clone = fixture_clone(tmp_path / "Wan2.2")
    rename(clone / "wan" / "modules" / "animate" / "clip.py", "return flash_attention(", "return other(")
    rename(clone / "wan" / "distributed" / "sequence_parallel.py", "def rope_apply(", "def rope_apply_sp(")
    rename(clone / "wan" / "animate.py", 'n_prompt=""', 'negative_prompt=""')
    rename(clone / "wan" / "animate.py", "self.vae = Wan2_1_VAE(", "self.video_vae = Wan2_1_VAE(")
    missing = {s.describe() for s in sites.missing_sites(str(clone))}
    assert missing == {
        "wan/modules/animate/clip.py: a call of flash_attention (patch 2, attention)",
        "wan/distributed/sequence_parallel.py: a module-level rope_apply(x, grid_sizes, freqs) (patch 5, rope)",
        "wan/animate.py: the method WanAnimate.generate(input_prompt, n_prompt) (patch 1, prompt)",
        "wan/animate.py: an assignment to self.vae (--vae_bf16)",
    }
    (clone / "wan" / "modules" / "model.py").unlink()
    assert {s.file for s in sites.missing_sites(str(clone))} >= {"wan/modules/model.py"}


# Each way upstream could change what the colour match (patch 6) and the memory profiles (patch 7) rely on, made in a
# copy of a clone, and the site the check must then name.
COLOUR_AND_MEMORY_CHANGES = [
    (
        "wan/animate.py",
        "out_frames[0, :, -refert_num:]",
        "out_frames[0, :, :refert_num]",
        "wan/animate.py: `out_frames[0, :, -refert_num:]` in WanAnimate.generate (patch 6, colour match)",
    ),
    (
        "wan/animate.py",
        "start += clip_len - refert_num",
        "start += clip_len",
        "wan/animate.py: `start += clip_len - refert_num` in WanAnimate.generate (patch 6, colour match)",
    ),
    (
        "wan/animate.py",
        "out_frames = torch.stack(self.vae.decode(",
        "self.vae.decode([]); out_frames = torch.stack(self.vae.decode(",
        "wan/animate.py: exactly one call of self.vae.decode() in WanAnimate.generate (patch 6, colour match)",
    ),
    (
        "wan/animate.py",
        "def get_valid_len(self, real_len, clip_len=81, overlap=1)",
        "def get_valid_len(self, real_len, clip_len=81, refert=1)",
        "wan/animate.py: the method WanAnimate.get_valid_len(real_len, clip_len, overlap) (patch 6, colour match)",
    ),
    (
        "wan/animate.py",
        "device_map=self.device",
        "device_map=None",
        "wan/animate.py: `device_map=self.device` in WanAnimate.__init__ (patch 7, memory profile)",
    ),
    (
        "wan/modules/animate/model_animate.py",
        "enumerate(self.blocks)",
        "enumerate(self.layers)",
        "wan/modules/animate/model_animate.py: `enumerate(self.blocks)` in WanAnimateModel.forward (patch 7, memory "
        "profile)",
    ),
    (
        "wan/modules/animate/clip.py",
        "def visual(",
        "def encode_visual(",
        "wan/modules/animate/clip.py: the method CLIPModel.visual (patch 7, memory profile)",
    ),
]


@pytest.mark.parametrize("source", ["fixture", pytest.param("clone", marks=needs_clone)])
@pytest.mark.parametrize("file,old,new,site", COLOUR_AND_MEMORY_CHANGES, ids=[c[2] for c in COLOUR_AND_MEMORY_CHANGES])
def test_colour_match_and_memory_sites_are_checked(source, file, old, new, site, tmp_path):
    clone = fixture_clone(tmp_path / "Wan2.2") if source == "fixture" else site_files_of(WAN22, tmp_path / "Wan2.2")
    assert sites.missing_sites(str(clone)) == []
    rename(clone / file, old, new)
    assert [s.describe() for s in sites.missing_sites(str(clone))] == [site]


def launcher_refuses(clone: Path, site: str) -> None:
    res = run_launcher(clone)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr  # one line, before anything is imported: no traceback
    assert site in lines[0] and f"written for Wan2.2 {pin.COMMIT[:12]}" in lines[0], lines[0]
    assert "stand-in WanAnimate.generate" not in res.stdout  # upstream never ran


def test_launcher_refuses_a_fixture_clone_with_a_renamed_site(tmp_path):
    clone = fixture_clone(tmp_path / "Wan2.2")
    (clone / ".rav-commit").write_text("0123456789abcdef\n")
    rename(clone / "wan" / "animate.py", "def _configure_model(", "def _configure(")
    launcher_refuses(clone, "wan/animate.py: the method WanAnimate._configure_model(model) (--lora)")
    assert "(commit 0123456789ab)" in run_launcher(clone).stderr


def test_launcher_refuses_a_fixture_clone_without_a_colour_match_site(tmp_path):
    clone = fixture_clone(tmp_path / "Wan2.2")
    rename(clone / "wan" / "animate.py", "out_frames[0, :, -refert_num:]", "out_frames[0, :, :refert_num]")
    launcher_refuses(
        clone, "wan/animate.py: `out_frames[0, :, -refert_num:]` in WanAnimate.generate (patch 6, colour match)"
    )


@needs_clone
def test_launcher_refuses_a_copy_of_the_real_clone_with_a_renamed_site(tmp_path):
    clone = site_files_of(WAN22, tmp_path / "Wan2.2")
    assert sites.missing_sites(str(clone)) == []
    rename(
        clone / "wan" / "modules" / "animate" / "model_animate.py",
        "def after_patch_embedding(",
        "def embed_after_patch(",
    )
    launcher_refuses(
        clone,
        "wan/modules/animate/model_animate.py: the method "
        "WanAnimateModel.after_patch_embedding(x, pose_latents, face_pixel_values)",
    )


def test_a_patch_that_does_not_take_effect_stops_the_launcher():
    module = types.ModuleType("upstream_module")
    module.flash_attention = lambda: "upstream"
    sys.modules["upstream_module"] = module
    try:
        launcher.PATCHED.clear()
        launcher._patch(("upstream_module",), "flash_attention", len)
        launcher.verify_patches()
        module.flash_attention = lambda: "re-bound by upstream after our patch"
        with pytest.raises(launcher.LauncherError, match="upstream_module.flash_attention did not take effect"):
            launcher.verify_patches()
        with pytest.raises(launcher.LauncherError, match="patch site upstream_module.rope_apply is missing"):
            launcher._patch(("upstream_module",), "rope_apply", len)
    finally:
        launcher.PATCHED.clear()
        del sys.modules["upstream_module"]

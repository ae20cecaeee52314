# SPDX-License-Identifier: Apache-2.0
"""`chvm image import|ls|rm` end to end on small OCI images made here with
umoci (two layers, one whiteout), their docker-archive form (skopeo), and
the stand-in Chromium image from `make images`."""

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from chvmtest import cli, paths, prereq

STANDIN = paths.STANDIN
TOOLS = ("umoci", "skopeo", "mkfs.ext4", "mkfs.erofs", "debugfs", "dumpe2fs")

missing = [t for t in TOOLS if shutil.which(t) is None and
           not os.path.exists("/usr/sbin/" + t) and not os.path.exists("/sbin/" + t)]
if prereq.chvm():
    missing.insert(0, prereq.chvm())
pytestmark = pytest.mark.skipif(bool(missing), reason="missing: " + ", ".join(missing))

ENV = ["PATH=/usr/bin:/bin", "GREETING=hello world"]


def run(*args, check=True, env=None, timeout=300):
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (args, p.returncode, p.stdout, p.stderr))
    return p


def image(state, *args, env=None, **kw):
    """`chvm --state-dir STATE image ARGS`."""
    return cli.chvm(env, "--state-dir", str(state), "image", *args, **kw)


def layer_tar(path, files, dirs=()):
    """A layer tarball: files {name: bytes}, dirs (names), owned by root."""
    with tarfile.open(path, "w") as t:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            t.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An OCI layout, tag `v1`: /hello, /etc/passwd; /gone removed by a
    whiteout in the second layer, which also adds /new."""
    d = tmp_path_factory.mktemp("tiny")
    layout = str(d / "oci")
    l1, l2 = str(d / "l1.tar"), str(d / "l2.tar")
    layer_tar(l1, {"hello": b"hi from layer 1\n", "gone": b"x",
                   "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"}, dirs=["etc", "bin"])
    layer_tar(l2, {".wh.gone": b"", "new": b"layer 2\n"})
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", layout + ":v1")
    run("umoci", "raw", "add-layer", "--image", layout + ":v1", l1)
    run("umoci", "raw", "add-layer", "--image", layout + ":v1", l2)
    args = ["umoci", "config", "--image", layout + ":v1", "--config.entrypoint", "/bin/sh",
            "--config.cmd", "-c", "--config.cmd", "echo hi", "--config.workingdir", "/tmp",
            "--config.user", "1000:1000"]
    for e in ENV:
        args += ["--config.env", e]
    run(*args)
    archive = str(d / "tiny.tar")
    run("skopeo", "copy", "--quiet", "oci:%s:v1" % layout, "docker-archive:%s:tiny:v1" % archive)
    return {"layout": layout, "archive": archive}


def import_json(state, source, *extra):
    p = image(state, "import", "--json", source, *extra)
    return json.loads(p.stdout), p.stderr


def debugfs(image, cmd):
    return run("debugfs", "-R", cmd, image).stdout


def test_import_oci(tiny, tmp_path):
    t0 = time.monotonic()
    img, err = import_json(tmp_path, "oci:%s:v1" % tiny["layout"])
    first = time.monotonic() - t0
    assert not img["cached"] and img["format"] == "ext4" and len(img["id"]) == 64
    entry = tmp_path / "images" / img["id"]
    assert img["rootfs"] == str(entry / "rootfs.ext4")
    meta = json.loads((entry / "image.json").read_text())
    assert meta["Env"] == ENV
    assert meta["Entrypoint"] == ["/bin/sh"] and meta["Cmd"] == ["-c", "echo hi"]
    assert meta["WorkingDir"] == "/tmp" and meta["User"] == "1000:1000"
    assert meta["id"] == img["id"] and meta["rootfs"] == "rootfs.ext4"
    assert meta["source"] == "oci:%s:v1" % os.path.realpath(tiny["layout"])
    # Only the finished entry is left: no temp dirs.
    assert os.listdir(tmp_path / "images") == [img["id"]]

    rootfs = img["rootfs"]
    assert "hi from layer 1" in debugfs(rootfs, "cat /hello")
    assert "layer 2" in debugfs(rootfs, "cat /new")
    listing = debugfs(rootfs, "ls -l /")
    assert "gone" not in listing and ".wh." not in listing
    hdr = run("dumpe2fs", "-h", rootfs).stdout
    assert "Filesystem volume name:   chvm-root" in hdr
    assert "has_journal" not in hdr

    # The same image again is a cache hit, and says so.
    t0 = time.monotonic()
    again, err = import_json(tmp_path, "oci:%s:v1" % tiny["layout"])
    assert again["cached"] and again["id"] == img["id"]
    assert "cache hit" in err
    assert time.monotonic() - t0 < max(1.0, first / 2)


def test_import_docker_archive_and_plain_paths(tiny, tmp_path):
    img, _ = import_json(tmp_path, tiny["archive"])  # a plain file: docker archive
    meta = json.loads((tmp_path / "images" / img["id"] / "image.json").read_text())
    assert meta["Env"] == ENV and meta["Entrypoint"] == ["/bin/sh"]
    assert "layer 2" in debugfs(img["rootfs"], "cat /new")
    same, _ = import_json(tmp_path, "docker-archive:" + tiny["archive"])
    assert same["cached"] and same["id"] == img["id"]
    # A plain directory is an OCI layout; its only image is picked.
    viadir, _ = import_json(tmp_path, tiny["layout"])
    assert viadir["rootfs"].endswith("rootfs.ext4")


def test_import_erofs(tiny, tmp_path):
    img, _ = import_json(tmp_path, "oci:%s:v1" % tiny["layout"], "--format", "erofs")
    assert img["format"] == "erofs" and img["rootfs"].endswith("/rootfs.erofs")
    with open(img["rootfs"], "rb") as f:
        f.seek(1024)
        assert f.read(4) == bytes.fromhex("e2e1f5e0")  # EROFS_SUPER_MAGIC_V1, LE
    # The same image asked for as ext4 is a clear error, not a silent mix-up.
    p = image(tmp_path, "import", "oci:%s:v1" % tiny["layout"], check=False)
    assert p.returncode == 1 and "cached as erofs" in p.stderr


def test_ls_and_rm(tiny, tmp_path):
    p = image(tmp_path, "ls", "--json")
    assert json.loads(p.stdout) == []
    img, _ = import_json(tmp_path, "oci:%s:v1" % tiny["layout"])
    listed = json.loads(image(tmp_path, "ls", "--json").stdout)
    assert [i["id"] for i in listed] == [img["id"]]
    assert img["id"][:12] in image(tmp_path, "ls").stdout
    assert image(tmp_path, "rm", img["id"][:8]).stdout.strip() == img["id"]
    assert json.loads(image(tmp_path, "ls", "--json").stdout) == []
    p = image(tmp_path, "rm", img["id"][:8], check=False)
    assert p.returncode == 1 and "no image" in p.stderr


@pytest.mark.parametrize("source,needle", [
    ("/nonexistent/image", "No such file"),
    ("oci:/nonexistent/layout", "No such file"),
    ("docker-archive:/nonexistent.tar", "No such file"),
    ("EMPTY_DIR", "not an OCI image layout"),
    ("JUNK_FILE", "skopeo failed"),
    ("TINY:nosuchtag", "no image tagged \"nosuchtag\""),
])
def test_import_errors(tiny, tmp_path, source, needle):
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar archive\n" * 100)
    source = (source.replace("EMPTY_DIR", str(empty)).replace("JUNK_FILE", str(junk))
              .replace("TINY", "oci:" + tiny["layout"]))
    p = image(tmp_path / "state", "import", source, check=False)
    assert p.returncode == 1
    lines = [l for l in p.stderr.splitlines() if l.startswith("chvm image import:")]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert not (tmp_path / "state" / "images").exists() or \
        not [e for e in os.listdir(tmp_path / "state" / "images") if not e.startswith(".")]


def test_interrupted_import_leaves_nothing_usable(tiny, tmp_path):
    """A chvm killed in the middle of an import leaves only a hidden temp
    dir, which ls ignores and the next import sweeps away."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mkfs.ext4").write_text("#!/bin/sh\nkill -KILL $PPID\nexit 1\n")
    (fake / "mkfs.ext4").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"]))
    state = tmp_path / "state"
    p = image(state, "import", "oci:%s:v1" % tiny["layout"], check=False, env=env)
    assert p.returncode == -signal.SIGKILL
    left = os.listdir(state / "images")
    assert left and all(e.startswith(".tmp-") for e in left)
    assert json.loads(image(state, "ls", "--json").stdout) == []
    img, _ = import_json(state, "oci:%s:v1" % tiny["layout"])
    assert os.listdir(state / "images") == [img["id"]]


def test_failed_tool_leaves_nothing(tiny, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mkfs.ext4").write_text("#!/bin/sh\necho 'mkfs.ext4: disk on fire' >&2\nexit 3\n")
    (fake / "mkfs.ext4").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"]))
    p = image(tmp_path, "import", "oci:%s:v1" % tiny["layout"], check=False, env=env)
    assert p.returncode == 1 and "disk on fire" in p.stderr
    assert os.listdir(tmp_path / "images") == []


@pytest.mark.skipif(not os.path.exists(os.path.join(STANDIN, "oci", "index.json")),
                    reason="stand-in image not built (make images)")
def test_standin_image():
    meta = json.load(open(os.path.join(STANDIN, "image.json")))
    assert meta["Entrypoint"] == ["/usr/local/bin/standin-entrypoint"]
    assert "DISPLAY_NUM=1" in meta["Env"] and meta["User"] == "root"
    rootfs = os.path.join(STANDIN, "rootfs.ext4")
    assert "chvm-root" in run("dumpe2fs", "-h", rootfs).stdout
    assert "standin-entrypoint" in debugfs(rootfs, "ls /usr/local/bin")
    assert "ssh_host_" not in debugfs(rootfs, "ls /etc/ssh")  # no baked host keys
    for prog in ("/usr/bin/chromium", "/usr/bin/Xvfb", "/usr/bin/socat", "/usr/sbin/sshd",
                 "/usr/sbin/ip"):
        assert "Inode:" in debugfs(rootfs, "stat " + prog), prog
    assert os.path.getsize(os.path.join(STANDIN, "docker-archive.tar")) > 100 << 20


KERNEL = paths.KERNEL_DIR


@pytest.mark.skipif(not os.path.exists(os.path.join(KERNEL, "version")),
                    reason="guest kernel not fetched (make kernel)")
def test_kernel_artifacts(tmp_path):
    """make kernel: bzImage, the ELF vmlinux with the PVH entry note Cloud
    Hypervisor boots through, and the module tree of the same version."""
    ver = open(os.path.join(KERNEL, "version")).read().strip()
    assert "bzImage" in run("file", "-b", os.path.join(KERNEL, "vmlinuz")).stdout
    vmlinux = os.path.join(KERNEL, "vmlinux")
    with open(vmlinux, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    notes = run("readelf", "-n", vmlinux).stdout
    assert any("Xen" in l and "0x00000012" in l for l in notes.splitlines())
    modules = os.path.realpath(os.path.join(KERNEL, "modules"))
    assert os.path.basename(modules) == ver
    assert os.path.exists(os.path.join(modules, "modules.dep"))
    assert os.path.exists(os.path.join(
        modules, "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko"))
    # The extractor refuses what is not a bzImage, with one line.
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 4096)
    p = run(os.path.join(paths.ROOT, "scripts", "extract-vmlinux.py"), str(junk),
            str(tmp_path / "out"), check=False)
    assert p.returncode == 1 and "not a bzImage" in p.stderr
    assert not (tmp_path / "out").exists()

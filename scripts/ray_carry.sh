#!/usr/bin/env bash
# Ray for the lent GPU machine (Python 3.12, no network), whose one device call carries at most 64 MiB: the
# ray wheel alone is 79 MB, so it travels in two halves, in two calls made back to back while the machine is warm.
#
#   bash scripts/ray_carry.sh build      # here (PyPI): .ray-carry/part1 (first half) and .ray-carry/part2 (rest)
#   bash scripts/ray_carry.sh stage1     # there, call 1, carry [".ray-carry/part1"]: keeps the half in /tmp/raycarry
#   bash scripts/ray_carry.sh stage2     # there, call 2, carry [".ray-carry/part2"]: joins, installs /tmp/raysite
#
# Then add /tmp/raysite to PYTHONPATH there. Only the wheels whose package the GPU image lacks are installed, so
# the image's own versions (requests, protobuf, PyYAML, ...) are not shadowed.
set -euo pipefail
cd "$(dirname "$0")/.."
RAY=ray==2.60.0  # the pin of requirements.txt
CARRY=.ray-carry
case "${1:-}" in
  build)
    rm -rf "$CARRY" && mkdir -p "$CARRY/whl" "$CARRY/part1" "$CARRY/part2"
    python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
      -d "$CARRY/whl" "$RAY"
    wheel=$(ls "$CARRY"/whl/ray-*.whl)
    split -b 40M -d "$wheel" "$CARRY/part1/$(basename "$wheel").part"
    mv "$CARRY/part1/$(basename "$wheel").part01" "$CARRY/part2/"
    find "$CARRY/whl" -name '*.whl' ! -name 'ray-*' -exec mv {} "$CARRY/part2/" \;
    rm -rf "$CARRY/whl"
    du -sh "$CARRY"/part1 "$CARRY"/part2
    ;;
  stage1)
    mkdir -p /tmp/raycarry && cp "$CARRY"/part1/* /tmp/raycarry/ && ls -la /tmp/raycarry
    ;;
  stage2)
    cp "$CARRY"/part2/* /tmp/raycarry/
    cd /tmp/raycarry
    name=$(ls ray-*.whl.part00); cat ray-*.whl.part0* > "${name%.part00}" && rm ray-*.whl.part0*
    rm -rf /tmp/raysite && mkdir -p /tmp/raysite
    for whl in *.whl; do
      case "$whl" in
        ray-*) module=ray ;; pyyaml-*) module=yaml ;; protobuf-*) module=google.protobuf ;;
        charset_normalizer-*) module=charset_normalizer ;; jsonschema_specifications-*) module=jsonschema_specifications ;;
        rpds_py-*) module=rpds ;; typing_extensions-*) module=typing_extensions ;; *) module=${whl%%-*} ;;
      esac
      if [ "$module" = ray ] || ! python3 -c "import $module" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/raysite "$whl"
      fi
    done
    PYTHONPATH=/tmp/raysite${PYTHONPATH:+:$PYTHONPATH} python3 -c "import ray; print('ray', ray.__version__)"
    ;;
  *) echo "usage: $0 build|stage1|stage2" >&2; exit 2 ;;
esac

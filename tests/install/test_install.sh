#!/usr/bin/env bash
# ctest `install_tree` (tests/install/CMakeLists.txt): an installed Scion works as a cluster
# user gets it, checked from a directory outside the source and build trees.
#   1. `cmake --install BUILD --prefix T/first`, then the prefix is moved to T/prefix: nothing
#      may depend on where it was installed (RUNPATHs are $ORIGIN-relative).
#   2. The installed `scion plugins` lists exactly what the build's lists, every lib*.so of
#      BUILD/plugins is installed, and each plugin is loaded from the prefix.
#   3. Every shipped graph validates from the prefix's share/scion/graphs, and a shortened run
#      of gpt_pretrain.toml (--set: 1 tiny layer, 2 steps) finds the bundled vocabulary and
#      corpus through Scion's data directory and writes its run.
#   4. sdk/example (as installed, share/scion/sdk/example) builds against the installed SDK
#      package only, `cmake --install` puts it in the prefix's plugin folder, and the
#      installed scion lists its plugins without flags.
#  4b. tests/install/token_source, a data source made of the installed scion/data.h's blocks,
#      builds against the install only; a graph trains on it for 6 steps, and the run resumed
#      from its step-4 checkpoint (as if killed there) logs the same steps.
#   5. (CPU builds) `cpack -G DEB` builds the package; dpkg-deb -I / -c check its fields,
#      dependencies (each an installed Debian package; `apt-get install -s` accepts the
#      package) and contents; it is unpacked with `dpkg-deb -x` into a throwaway root and its
#      scion runs from there. It is NOT installed into the system (that needs root and
#      changes the machine), unless SCION_TEST_DEB_INSTALL=1 as root, e.g. in a throwaway
#      container: then `apt-get install ./scion_*.deb` and /usr/bin/scion is checked too.
# usage: test_install.sh BUILD_DIR SOURCE_DIR [CUDA: ON when the build has the CUDA backend]
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
CUDA="${3:-OFF}"
T=$(mktemp -d "${TMPDIR:-/tmp}/scion-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
unset SCION_PLUGIN_PATH
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
has() { grep -qF -- "$2" "$1" || { echo "--- $1:"; cat "$1"; fail "$1 lacks '$2'"; }; }
W="$T/work"
mkdir -p "$W"
cd "$W"

step "1. install into $T/first, then move it to $T/prefix"
cmake --install "$BUILD" --prefix "$T/first" > "$T/install.log"
mv "$T/first" "$T/prefix"
P="$T/prefix"
[ -x "$P/bin/scion" ] || fail "no bin/scion in the install"
for f in "$P/bin/scion" "$P"/lib/scion/plugins/lib*.so; do
  rp=$(readelf -d "$f" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]$/\1/p')
  case "$rp" in *'$ORIGIN'*) ;; *) fail "$f: RUNPATH '$rp' is not relative to \$ORIGIN" ;; esac
  # (Outside the build tree an absolute entry may stand: a library linked from a private
  # prefix, as scripts/device-build.sh links its unpacked Debian libraries.)
  case "$rp" in *"$BUILD"*) fail "$f: RUNPATH '$rp' names the build tree" ;; esac
done
"$P/bin/scion" --version > version.txt
has version.txt "prefix: $P"
has version.txt "  $P/lib/scion/plugins"
has version.txt "data: $P/share/scion "

step "2. the installed plugins are the build's"
"$BUILD/bin/scion" plugins > built.txt
"$P/bin/scion" plugins > installed.txt 2> installed.err
[ ! -s installed.err ] || { cat installed.err; fail "the installed scion warned"; }
diff built.txt installed.txt || fail "the installed scion lists other plugins than the build's"
n=0
for so in "$BUILD"/plugins/lib*.so; do
  [ -f "$P/lib/scion/plugins/$(basename "$so")" ] || fail "$(basename "$so") is in the build's plugin folder but not installed"
  n=$((n + 1))
done
[ "$n" = "$(ls "$P"/lib/scion/plugins/lib*.so | wc -l)" ] || fail "the install has plugin libraries the build does not"
[ "$n" -ge 4 ] || fail "only $n plugin libraries in $BUILD/plugins"
names=$(awk '{print $1}' installed.txt)
[ "$(echo "$names" | wc -l)" -ge 10 ] || fail "the installed scion lists only: $names"
for name in $names; do
  "$P/bin/scion" plugins "$name" > one.txt
  has one.txt "library: $P/lib/scion/plugins/lib"
done
echo "$n plugin libraries, $(echo "$names" | wc -l) plugins"

step "3. shipped graphs from $P/share/scion/graphs, run from $W"
G="$P/share/scion/graphs"
for g in "$SRC"/graphs/*.toml; do [ -f "$G/$(basename "$g")" ] || fail "graphs/$(basename "$g") is not installed"; done
# A shortened gpt_pretrain; its relative data/ paths resolve in the data directory. Its
# student is then ki_gpt's teacher (runs/gpt-pretrain/student.safetensors, relative to here).
"$P/bin/scion" run "$G/gpt_pretrain.toml" --plain --threads 1 \
  --set stages.0.steps=2 --set nodes.student.layers=1 --set nodes.student.width=16 --set nodes.student.heads=2 \
  --set nodes.corpus.batch_size=2 --set nodes.ppl.batch_size=2 --set nodes.ppl.max_batches=1 > run.txt 2>&1 ||
  { cat run.txt; fail "the shortened gpt_pretrain run failed"; }
R="$W/runs/gpt-pretrain"
[ -f "$R/student.safetensors" ] || { cat run.txt; fail "the run wrote no $R/student.safetensors"; }
[ "$(wc -l < "$R/metrics.jsonl")" -ge 1 ] || fail "the run logged no metrics"
has "$R/graph.toml" "$P/share/scion/data/corpus/*/train.txt"
has "$R/graph.toml" "$P/share/scion/data/gpt2/encoder.json"
# llama_ki's teacher is llama_pretrain's model (runs/llama-pretrain/student.safetensors).
"$P/bin/scion" run "$G/llama_pretrain.toml" --plain --threads 1 \
  --set stages.0.steps=2 --set nodes.student.layers=1 --set nodes.student.width=16 --set nodes.student.heads=2 \
  --set nodes.student.kv_heads=1 --set nodes.student.ffn=32 \
  --set nodes.corpus.batch_size=2 --set nodes.ppl.batch_size=2 --set nodes.ppl.max_batches=1 > run.txt 2>&1 ||
  { cat run.txt; fail "the shortened llama_pretrain run failed"; }
[ -f "$W/runs/llama-pretrain/student.safetensors" ] || { cat run.txt; fail "llama_pretrain wrote no model"; }
# ki_cached reads a teacher cache: the installed scion writes it from gpt_pretrain's model (its
# first update only: α reaches 0 after one update with nodes.inherit.steps=1).
"$P/bin/scion" teacher-cache "$G/ki_cached.toml" --teacher teacher --k 2 --plain --set nodes.inherit.steps=1 > run.txt 2>&1 ||
  { cat run.txt; fail "teacher-cache of ki_cached failed"; }
# Two graphs start from a model that another shipped graph trains at full size (cofi_bert from
# bert_pretrain, elle_prompt_tuning from elle_gpt) and validation checks that checkpoint's
# shapes; tests/lm/test_graphs.cpp validates them in the tree with stand-ins. ki_gpt's and
# llama_ki's teachers are the runs just made.
n=0
for g in "$G"/*.toml; do
  case "$(basename "$g")" in cofi_bert.toml | elle_prompt_tuning.toml) continue ;; esac
  extra=()
  [ "$(basename "$g")" = ki_cached.toml ] && extra=(--set nodes.inherit.steps=1)
  "$P/bin/scion" validate "$g" "${extra[@]}" > validate.txt 2>&1 || { cat validate.txt; fail "$g does not validate"; }
  n=$((n + 1))
done
echo "$n graphs validate (cofi_bert and elle_prompt_tuning need full-size models: tests/lm)"

step "4. sdk/example against the installed SDK"
CXX=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
cmake -S "$P/share/scion/sdk/example" -B "$T/ex" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DScion_DIR="$P/lib/cmake/Scion" > "$T/ex.log" 2>&1 ||
  { cat "$T/ex.log"; fail "configuring the example against the install failed"; }
cmake --build "$T/ex" > "$T/ex.log" 2>&1 || { cat "$T/ex.log"; fail "building the example against the install failed"; }
! grep -qF "$SRC" "$T/ex/compile_commands.json" || fail "the example was compiled against the source tree"
cmake --install "$T/ex" > "$T/ex.log" 2>&1 || { cat "$T/ex.log"; fail "installing the example failed"; }
"$P/bin/scion" plugins > with_example.txt 2> with_example.err
[ ! -s with_example.err ] || { cat with_example.err; fail "the installed scion warned"; }
for name in loss.hidden_l2 op.drop_layers; do
  has with_example.txt "$name"
  "$P/bin/scion" plugins "$name" > one.txt
  has one.txt "library: $P/lib/scion/plugins/libexample_"
done

step "4b. an out-of-tree data source on the installed scion/data.h, in a run"
# tests/install/token_source, copied out of the tree and built against the install only.
cp -r "$SRC/tests/install/token_source" "$T/ts_src"
cmake -S "$T/ts_src" -B "$T/ts" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DScion_DIR="$P/lib/cmake/Scion" > "$T/ts.log" 2>&1 ||
  { cat "$T/ts.log"; fail "configuring the data source against the install failed"; }
cmake --build "$T/ts" > "$T/ts.log" 2>&1 || { cat "$T/ts.log"; fail "building the data source against the install failed"; }
! grep -qF "$SRC" "$T/ts/compile_commands.json" || fail "the data source was compiled against the source tree"
"$P/bin/scion" plugins data.token_file --plugin-dir "$T/ts/plugins" > one.txt
has one.txt "library: $T/ts/plugins/libtoken_source"
cp "$T/ts_src/token_file.toml" "$W/token_file.toml"
seq 0 599 | awk '{ print ($1 * 7 + int($1 / 5)) % 64 }' > "$W/ids.txt"
ts_run() { "$P/bin/scion" run "$W/token_file.toml" --plain --plugin-dir "$T/ts/plugins" "$@"; }
ts_run --out "$W/runs/tf-full" > run.txt 2>&1 || { cat run.txt; fail "the run with data.token_file failed"; }
[ "$(wc -l < "$W/runs/tf-full/metrics.jsonl")" = 6 ] || { cat run.txt; fail "the run with data.token_file did not log 6 steps"; }
# Its position is checkpointed and restored: the run as if killed after step 4's checkpoint
# (the later one and latest.json gone) resumes and logs what the whole run logged.
has "$W/runs/tf-full/checkpoints/step_4/state.json" '"ids"'
cp -r "$W/runs/tf-full" "$W/runs/tf-part"
rm -rf "$W/runs/tf-part/checkpoints/step_6" "$W/runs/tf-part/checkpoints/latest.json"
ts_run --out "$W/runs/tf-part" --resume > run.txt 2>&1 || { cat run.txt; fail "resuming the run with data.token_file failed"; }
has run.txt "resuming $W/runs/tf-part at step 4"
untimed() { sed 's/"tokens_per_s":[^,]*,//; s/,"elapsed_s":[^,}]*//' "$1"; }
diff <(untimed "$W/runs/tf-full/metrics.jsonl") <(untimed "$W/runs/tf-part/metrics.jsonl") ||
  fail "the resumed run with data.token_file logged other steps than the whole run"

step "5. the Debian package"
if [ "$CUDA" = ON ]; then
  # NVIDIA's libraries come from no Debian package (cmake/ScionPackage.cmake): CPU builds only.
  echo "(skipped: a CUDA build; the package is made from a CPU build, -DSCION_CUDA=OFF)"
  echo "install_tree: ok"
  exit 0
fi
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$T/pkg" > "$T/cpack.log" 2>&1 || { cat "$T/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(ls "$T"/pkg/scion_*.deb)
dpkg-deb -I "$deb" > info.txt
has info.txt "Package: scion"
has info.txt "Version: $(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
deps=$(sed -n 's/^ Depends: //p' info.txt)
for lib in libtbb libboost-filesystem libboost-program-options openblas libstdc++6; do
  case "$deps" in *"$lib"*) ;; *) fail "Depends ($deps) lacks $lib" ;; esac
done
# Each dependency is a real Debian package, installed here (the build linked it).
for dep in $(echo "$deps" | tr ',' '\n' | sed 's/[ (].*//; s/^ *//' | sed 's/|.*//'); do
  dpkg-query -W "$dep" > /dev/null 2>&1 || fail "the dependency $dep is not an installed Debian package"
done
dpkg-deb -c "$deb" | awk '{print $NF}' > contents.txt
for f in ./usr/bin/scion ./usr/lib/libscion_core.so ./usr/include/scion/plugin.h ./usr/lib/cmake/Scion/ScionConfig.cmake \
  ./usr/lib/cmake/Scion/ScionTargets.cmake ./usr/lib/cmake/Scion/ScionPlugin.cmake ./usr/share/scion/sdk/example/CMakeLists.txt \
  ./usr/share/scion/data/gpt2/encoder.json ./usr/share/scion/data/gpt2/vocab.bpe ./usr/share/scion/data/bert/vocab.txt \
  ./usr/share/scion/data/corpus/news/train.txt ./usr/share/scion/data/README.md; do
  grep -qxF "$f" contents.txt || fail "the package lacks $f"
done
for so in "$BUILD"/plugins/lib*.so; do grep -qxF "./usr/lib/scion/plugins/$(basename "$so")" contents.txt || fail "the package lacks plugin $(basename "$so")"; done
for g in "$SRC"/graphs/*.toml; do grep -qxF "./usr/share/scion/graphs/$(basename "$g")" contents.txt || fail "the package lacks graphs/$(basename "$g")"; done
! grep -q "libexample_" contents.txt || fail "the package holds the example plugins"
# apt accepts it on this system: every Depends resolves (a simulation; nothing is installed).
apt-get install -s --no-install-recommends "$deb" > apt-sim.txt 2>&1 || { cat apt-sim.txt; fail "apt-get install -s of the package failed"; }
has apt-sim.txt "Inst scion "
dpkg-deb -x "$deb" "$T/root"
"$T/root/usr/bin/scion" plugins > unpacked.txt 2>&1
diff built.txt unpacked.txt || fail "the unpacked package's scion lists other plugins than the build's"
"$T/root/usr/bin/scion" validate "$T/root/usr/share/scion/graphs/bert_pretrain.toml" > validate.txt 2>&1 ||
  { cat validate.txt; fail "the unpacked package's graph does not validate"; }
echo "$deb: $(wc -l < contents.txt) entries; Depends: $deps"
if [ "${SCION_TEST_DEB_INSTALL:-0}" = 1 ] && [ "$(id -u)" = 0 ]; then
  step "5b. apt-get install the package (SCION_TEST_DEB_INSTALL=1)"
  apt-get install -y -qq "$deb" > "$T/apt.log" 2>&1 || { cat "$T/apt.log"; fail "apt-get install of the package failed"; }
  /usr/bin/scion plugins > system.txt
  diff built.txt system.txt || fail "the installed package's scion lists other plugins than the build's"
  /usr/bin/scion validate /usr/share/scion/graphs/gpt_pretrain.toml
else
  echo "(the package is not installed into this system; SCION_TEST_DEB_INSTALL=1 as root does)"
fi
echo "install_tree: ok"

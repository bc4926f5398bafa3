#!/usr/bin/env bash
# Out-of-tree SDK test: installs a Weir build into a fresh prefix, builds a user's plugin project
# against it with find_package(Weir) + weir_add_plugin(), runs the plugin with the installed weir
# binary and compares its output with expected.txt.
#
#   run_test.sh <weir build dir> <weir source dir> <scratch dir>
#
# The scratch dir is wiped first; everything this script writes stays inside it.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 <weir build dir> <weir source dir> <scratch dir>" >&2
  exit 2
fi

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

build_dir=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
here="$source_dir/test/sdk/out_of_tree"
[[ -f "$build_dir/CMakeCache.txt" ]] || fail "$build_dir is not a configured CMake build dir"
[[ -f "$here/project/CMakeLists.txt" ]] || fail "$here/project not found (wrong source dir?)"

# Refuse a scratch dir that is not safe to wipe: it must be a dedicated path, not a tree we need.
scratch_arg=$3
[[ -n "$scratch_arg" ]] || fail "empty scratch dir"
mkdir -p "$scratch_arg"
scratch=$(cd "$scratch_arg" && pwd)
case "$scratch" in
  / | "$HOME" | "$source_dir" | "$build_dir" | "$here" | "$here"/*)
    fail "refusing to use $scratch as the scratch dir (it would be wiped)" ;;
esac
if [[ "$source_dir" == "$scratch"/* || "$build_dir" == "$scratch"/* ]]; then
  fail "refusing to use $scratch as the scratch dir: it contains the source or build dir"
fi
rm -rf "$scratch"
mkdir -p "$scratch"

prefix="$scratch/prefix"
project="$scratch/project"
user_build="$scratch/build"
log="$scratch/logs"
mkdir -p "$log"

# Runs a command with its output in a log file; on failure shows the log and fails.
run_logged() {
  local name=$1
  shift
  if ! "$@" >"$log/$name.log" 2>&1; then
    echo "---- $name log ($log/$name.log) ----" >&2
    tail -n 80 "$log/$name.log" >&2
    echo "----" >&2
    fail "$name failed: $*"
  fi
}

cache_value() {  # cache_value <var>: the value of <var> in the main build's CMakeCache.txt
  sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt" | head -n 1
}

# ---- 1. install -----------------------------------------------------------------------------------
step "installing $build_dir into $prefix"
run_logged install env -u DESTDIR cmake --install "$build_dir" --prefix "$prefix"

[[ -x "$prefix/bin/weir" ]] || fail "install did not produce an executable $prefix/bin/weir"
for h in weir/weir.h weir/sdk_fingerprint.h weir/plugin.h; do
  [[ -f "$prefix/include/$h" ]] || fail "install did not produce $prefix/include/$h"
done
config=$(find "$prefix" -path '*/cmake/Weir/WeirConfig.cmake' -type f | head -n 1)
[[ -n "$config" ]] || fail "install did not produce <prefix>/lib*/cmake/Weir/WeirConfig.cmake"
[[ "$config" == "$prefix"/lib*/cmake/Weir/WeirConfig.cmake ]] ||
  fail "WeirConfig.cmake installed at an unexpected place: $config"
config_dir=$(dirname "$config")
for f in WeirConfigVersion.cmake WeirTargets.cmake WeirPlugin.cmake; do
  [[ -f "$config_dir/$f" ]] || fail "install did not produce $config_dir/$f"
done
echo "   package: $config"

# Every SDK header of the source tree is installed, and every weir/ header an installed header
# includes is installed too (system headers such as xxhash.h and boost are dependencies, not ours).
missing=()
while IFS= read -r h; do
  [[ -f "$prefix/include/$h" ]] || missing+=("$h")
done < <(cd "$source_dir/sdk/include" && find weir -name '*.h' | sort)
while IFS= read -r inc; do
  [[ -f "$prefix/include/$inc" ]] || missing+=("$inc (included by an installed header)")
done < <(find "$prefix/include/weir" -name '*.h' -exec \
           sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\(weir\/[^">]*\)[">].*/\1/p' {} + |
         sort -u)
((${#missing[@]} == 0)) || fail "headers missing from $prefix/include: ${missing[*]}"

# The installed package must not point back into the source or build tree.
# (Lines naming the prefix itself are fine: the scratch dir may live inside the build dir.)
leaks=$(grep -rF -e "$source_dir/" -e "$build_dir/" "$config_dir" | grep -vF -- "$prefix" || true)
[[ -z "$leaks" ]] || fail "the installed CMake package refers to the source or build tree:
$leaks"

# ---- 2. configure and build the user's project against the installed SDK --------------------------
# A copy in the scratch dir: nothing can be found relative to the Weir sources.
cp -R "$here/project" "$project"

generator=$(cache_value CMAKE_GENERATOR)
cxx=$(cache_value CMAKE_CXX_COMPILER)
configure_args=(
  -S "$project" -B "$user_build"
  -G "${generator:-Ninja}"
  -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_PREFIX_PATH="$prefix"
  # Only the prefix: no package registries that might remember a build tree.
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
)
# The plugin's build fingerprint names the compiler: build with the one weir was built with.
if [[ -n "$cxx" ]]; then
  configure_args+=(-DCMAKE_CXX_COMPILER="$cxx")
fi
if ccache=$(command -v ccache); then
  configure_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$ccache")
fi

step "configuring the out-of-tree project ($project)"
run_logged configure env -u Weir_DIR -u Weir_ROOT cmake "${configure_args[@]}"
weir_dir=$(sed -n 's/^Weir_DIR:[A-Z]*=//p' "$user_build/CMakeCache.txt")
[[ "$weir_dir" == "$config_dir" ]] ||
  fail "find_package(Weir) found '$weir_dir', not the installed package in $config_dir"

step "building the out-of-tree plugin"
run_logged build cmake --build "$user_build"
plugin="$user_build/myjob.so"
[[ -f "$plugin" ]] || fail "the build did not produce $plugin"

# It was compiled against the installed headers only.
if grep -F -e "$source_dir/sdk/include" -e "$build_dir/sdk/" "$user_build/compile_commands.json"; then
  fail "the plugin was compiled with include paths into the Weir source or build tree"
fi
grep -qF -- "$prefix/include" "$user_build/compile_commands.json" ||
  fail "the plugin was not compiled with $prefix/include on its include path"

# Only the versioned plugin entry is exported (besides std/boost template instantiations).
if command -v nm >/dev/null && command -v c++filt >/dev/null; then
  nm -D --defined-only "$plugin" | awk 'NF >= 3 { print $3 }' | c++filt >"$log/exports.txt"
  grep -qx 'weir_plugin_v5' "$log/exports.txt" || fail "$plugin does not export weir_plugin_v5"
  # Allowed: linker symbols and names in std/boost (optionally "vtable for ..." and the like, or
  # preceded by a builtin return type such as "void " or "unsigned long* ").
  std_or_boost='^((typeinfo name|typeinfo|vtable|VTT|construction vtable|guard variable) for )?'
  std_or_boost+='([a-z_ ]+[*& ]* )?(std|__gnu_cxx|__cxxabiv1|boost)::'
  unexpected=$(grep -vx 'weir_plugin_v5' "$log/exports.txt" |
    grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' |
    grep -vE "$std_or_boost" || true)
  [[ -z "$unexpected" ]] || fail "$plugin exports more than weir_plugin_v5:
$unexpected"
else
  echo "   (nm or c++filt not found: skipping the exported-symbol check)"
fi

# ---- 3. run it with the installed weir ------------------------------------------------------------
step "running $prefix/bin/weir local $plugin"
status=0
"$prefix/bin/weir" local "$plugin" --parallelism 1 >"$scratch/stdout.txt" 2>"$scratch/stderr.txt" ||
  status=$?
if ((status != 0)); then
  echo "---- stderr ----" >&2
  cat "$scratch/stderr.txt" >&2
  echo "---- stdout ----" >&2
  cat "$scratch/stdout.txt" >&2
  fail "weir local exited with status $status"
fi
if ! diff -u "$here/expected.txt" "$scratch/stdout.txt" >"$log/diff.txt"; then
  cat "$log/diff.txt" >&2
  echo "---- stderr ----" >&2
  cat "$scratch/stderr.txt" >&2
  fail "the plugin's output differs from $here/expected.txt (diff above: expected vs actual)"
fi

echo "PASS: out-of-tree plugin built against $prefix and run by the installed weir"
